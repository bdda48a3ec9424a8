package fastpath

import (
	"bytes"
	"testing"
)

func (q *chunks) bytes() []byte {
	var out []byte
	for _, b := range q.bufs {
		out = append(out, b...)
	}
	return out
}

// Bytes come out in order across buffers, partial writes and frames
// bigger than a buffer.
func TestChunksKeepOrder(t *testing.T) {
	var q chunks
	var want []byte
	add := func(n int, c byte) {
		p := bytes.Repeat([]byte{c}, n)
		q.add(p)
		want = append(want, p...)
	}
	for i := range 40 {
		add(3000+i, byte(i))
	}
	add(chunkSize+5, 'B') // its own buffer
	add(10, 'x')
	if q.len() != len(want) || !bytes.Equal(q.bytes(), want) {
		t.Fatal("bytes differ after adds")
	}

	batch := q.take()
	add(7, 'n') // queued while the batch is written
	batch.consume(chunkSize + 123)
	q.pushFront(batch)
	want = want[chunkSize+123:]
	if q.len() != len(want) || !bytes.Equal(q.bytes(), want) {
		t.Fatalf("bytes differ after a partial write: %d vs %d", q.len(), len(want))
	}

	all := q.take()
	all.consume(all.len())
	q.pushFront(all)
	if q.len() != 0 || len(q.bufs) != 0 {
		t.Fatalf("%d bytes, %d buffers left after writing all", q.len(), len(q.bufs))
	}
}
