package fastpath

import "sync"

// chunks are bytes in order, held in pooled 64 KiB buffers: appending never
// copies what is already queued (one growing slice did, and showed in fan-in
// profiles), and an idle connection holds none.
type chunks struct {
	bufs [][]byte
	n    int // bytes in all bufs
}

const chunkSize = 64 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

func getChunk() []byte { return (*chunkPool.Get().(*[]byte))[:0] }

func putChunk(b []byte) {
	if cap(b) != chunkSize {
		return // a big frame's own buffer
	}
	b = b[:0]
	chunkPool.Put(&b)
}

func (q *chunks) len() int { return q.n }

// add appends p.
func (q *chunks) add(p []byte) {
	q.n += len(p)
	if k := len(q.bufs) - 1; k >= 0 && cap(q.bufs[k])-len(q.bufs[k]) >= len(p) {
		q.bufs[k] = append(q.bufs[k], p...)
		return
	}
	var b []byte
	if len(p) <= chunkSize {
		b = getChunk()
	} else {
		b = make([]byte, 0, len(p))
	}
	q.bufs = append(q.bufs, append(b, p...))
}

// take empties q, handing its bytes over.
func (q *chunks) take() chunks {
	out := *q
	*q = chunks{}
	return out
}

// pushFront puts rest (what a write did not take) back before q's bytes.
func (q *chunks) pushFront(rest chunks) {
	if rest.n == 0 {
		rest.release()
		return
	}
	rest.bufs = append(rest.bufs, q.bufs...)
	rest.n += q.n
	*q = rest
}

// consume drops the first n bytes, recycling emptied buffers.
func (q *chunks) consume(n int) {
	q.n -= n
	for n > 0 && len(q.bufs) > 0 {
		b := q.bufs[0]
		if n < len(b) {
			m := copy(b, b[n:]) // keep the buffer's start, for the pool
			q.bufs[0] = b[:m]
			return
		}
		n -= len(b)
		putChunk(b)
		q.bufs[0] = nil
		q.bufs = q.bufs[1:]
	}
}

// release recycles every buffer.
func (q *chunks) release() {
	for _, b := range q.bufs {
		putChunk(b)
	}
	*q = chunks{}
}
