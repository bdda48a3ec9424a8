package listeners

import (
	"errors"
	"fmt"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi v2.7.9 reads a packet by decoding its fixed header and then
// allocating the whole remaining length at once (Client.ReadPacket:
// make([]byte, Remaining)), before a byte of it has arrived: six clients
// claiming 268,435,455 bytes each and sending 1 KB grew the broker past the
// supervisor's max_memory. frameConn sits between the socket (after TLS, or
// the websocket frames) and mochi and follows the MQTT framing in the bytes
// it passes on, in place:
//
//   - a packet of up to passThrough bytes of body passes straight through
//     (mochi allocates at most that ahead of arrival);
//   - for a larger one, the header is held back and the body gathered in
//     chunks that grow with what arrives (never more than arrived plus one
//     chunk), counted in the box-wide budget of Limits.PendingBytes; mochi
//     sees the header once the whole packet is here. A client whose packet
//     would pass the budget is disconnected;
//   - a header claiming more than Limits.MaxPacketSize ends the connection
//     before anything is allocated.
//
// The first complete packet (CONNECT) ends the connection's half-open state.

const (
	// passThrough is the largest packet body mochi may allocate before it
	// has arrived: per connection, bounded, and small.
	passThrough = 4 << 10
	// firstChunk and maxChunk bound what is allocated ahead of arrival: a
	// chunk is made only once the previous one is full, doubling up to
	// maxChunk.
	firstChunk = 4 << 10
	maxChunk   = 64 << 10
	// maxScan bounds one read from the socket while passing through, so
	// that the body bytes read along with a large packet's header always
	// fit in that packet (its body is over passThrough).
	maxScan = passThrough - 8
)

// errMalformedLength is a remaining length of more than four bytes.
var errMalformedLength = errors.New("malformed remaining length (more than 4 bytes)")

type frameConn struct {
	net.Conn
	limits *Limits
	half   *halfOpen // nil once the first packet has been read
	inner  bufferedReader

	through int     // body bytes of the current packet still to pass through
	hdr     [5]byte // the start of a header that a read cut off, not yet given
	hn      int

	// A large packet: its header (out) waits until the body is gathered.
	out       []byte
	gathering bool
	want      int // body bytes
	got       int
	chunks    [][]byte
	reserved  int  // bytes of the budget held (chunk capacities)
	ready     bool // gathered: out, then chunks, are being given

	approved    []byte // scanned bytes a small read could not take, given first
	approvedBuf [5]byte

	err error // to return on the next Read, after bytes already given
}

func newFrameConn(c net.Conn, l *Limits, h *halfOpen) *frameConn {
	l.init()
	f := &frameConn{Conn: c, limits: l, half: h}
	if b, ok := c.(bufferedReader); ok {
		f.inner = b
	}
	return f
}

// bufferedReader is a connection holding bytes read from the socket and not
// yet handed out (pooledReadConn); the fast path asks it when a read burst
// is used up.
type bufferedReader interface{ Buffered() int }

// Unwrap gives the connection underneath: bytes pass unchanged, so the fast
// path may write beneath.
func (f *frameConn) Unwrap() net.Conn { return f.Conn }

// Buffered is how many bytes can be read without waiting for the socket.
func (f *frameConn) Buffered() int {
	n := len(f.approved)
	if f.ready {
		n += len(f.out)
		for _, c := range f.chunks {
			n += len(c)
		}
	}
	if f.inner != nil {
		n += f.inner.Buffered()
	}
	return n
}

// Read gives mochi the stream, holding back the header of a large packet
// until its body is here.
func (f *frameConn) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(f.approved) > 0 {
			n := copy(p, f.approved)
			f.approved = f.approved[n:]
			return n, nil
		}
		if f.gathering {
			if err := f.gather(); err != nil {
				return 0, err
			}
		}
		if f.ready {
			return f.give(p), nil
		}
		if f.hn > 0 && len(p) < f.hn+1 {
			if err := f.completeHeader(); err != nil {
				return 0, err
			}
			continue
		}
		// Pass through: read into p behind any cut-off header, then walk
		// the packets in it. The read is bounded so that the body bytes
		// read along with a large packet's header stay within its body.
		off := copy(p, f.hdr[:f.hn])
		f.hn = 0
		end := min(len(p), off+f.through+maxScan)
		n, err := f.Conn.Read(p[off:end])
		give, scanErr := f.scan(p[:off+n])
		if scanErr != nil {
			if give > 0 {
				f.err = scanErr
				return give, nil
			}
			return 0, scanErr
		}
		if give > 0 || err != nil {
			return give, err
		}
		// Only a cut-off header, or the start of a large packet: read on.
	}
}

// completeHeader reads a cut-off header to its end, byte by byte, for a
// reader whose buffer cannot hold it and more, and scans it: its bytes are
// then approved (given next) or held with a large packet.
func (f *frameConn) completeHeader() error {
	var one [1]byte
	for f.hn < 2 || f.hdr[f.hn-1]&0x80 != 0 {
		if f.hn == len(f.hdr) {
			return fmt.Errorf("mqtt from %s: %w", f.RemoteAddr(), errMalformedLength)
		}
		if _, err := f.Conn.Read(one[:]); err != nil {
			return err
		}
		f.hdr[f.hn] = one[0]
		f.hn++
	}
	var buf [len(f.hdr)]byte
	n := copy(buf[:], f.hdr[:f.hn])
	f.hn = 0
	give, err := f.scan(buf[:n])
	if err != nil {
		return err
	}
	f.approved = append(f.approvedBuf[:0], buf[:give]...)
	return nil
}

// scan walks the bytes just read (b) and reports how many of them may be
// given to mochi: all, or those before a header that is cut off (kept in
// hdr) or that starts a large packet (gathering begins with the body bytes
// that came along).
func (f *frameConn) scan(b []byte) (int, error) {
	i := 0
	for i < len(b) {
		if f.through > 0 {
			k := min(f.through, len(b)-i)
			i += k
			f.through -= k
			if f.through == 0 {
				f.packetDone()
			}
			continue
		}
		// A fixed header starts at i.
		remaining, mult, j := 0, 1, i+1
		complete := false
		for j < len(b) {
			c := b[j]
			j++
			remaining += int(c&0x7f) * mult
			mult *= 128
			if c&0x80 == 0 {
				complete = true
				break
			}
			if j-i == len(f.hdr) {
				return i, fmt.Errorf("mqtt from %s: %w", f.RemoteAddr(), errMalformedLength)
			}
		}
		if !complete {
			f.hn = copy(f.hdr[:], b[i:])
			return i, nil
		}
		if size := remaining + j - i; size > f.limits.MaxPacketSize {
			// As mochi's own check (MaximumPacketSize, [MQTT-3.2.2-15])
			// would, without depending on mochi being told the same limit.
			return i, fmt.Errorf("mqtt from %s: packet of %d bytes refused, over the packet size limit (max_packet_size) of %d: %w",
				f.RemoteAddr(), size, f.limits.MaxPacketSize, packets.ErrPacketTooLarge)
		}
		if remaining > passThrough {
			if err := f.startGathering(b[i:j], b[j:], remaining); err != nil {
				return i, err
			}
			return i, nil
		}
		i = j
		f.through = remaining
		if remaining == 0 {
			f.packetDone()
		}
	}
	return len(b), nil
}

// startGathering holds a large packet's header and the body bytes that
// came with it (fewer than its body: reads are bounded by maxScan).
func (f *frameConn) startGathering(hdr, body []byte, want int) error {
	f.out = append(f.out[:0], hdr...)
	f.gathering, f.want, f.got = true, want, 0
	if len(body) > 0 {
		size := min(max(firstChunk, len(body)), want)
		if !f.reserveChunk(size) {
			return f.overBudget()
		}
		f.chunks[0] = append(f.chunks[0], body...)
		f.got = len(body)
	}
	return nil
}

func (f *frameConn) reserveChunk(size int) bool {
	if !f.limits.reserve(size) {
		return false
	}
	f.reserved += size
	f.chunks = append(f.chunks, make([]byte, 0, size))
	return true
}

func (f *frameConn) overBudget() error {
	return fmt.Errorf("mqtt from %s: packet of %d bytes refused: partly received packets already hold %d of the box-wide %d bytes",
		f.RemoteAddr(), f.want+len(f.out), f.limits.pending.Load(), f.limits.PendingBytes)
}

// gather reads the body of a large packet into chunks until it is all here.
func (f *frameConn) gather() error {
	for f.got < f.want {
		last := len(f.chunks) - 1
		if last < 0 || len(f.chunks[last]) == cap(f.chunks[last]) {
			size := firstChunk
			if last >= 0 {
				size = min(2*cap(f.chunks[last]), maxChunk)
			}
			if !f.reserveChunk(min(size, f.want-f.got)) {
				return f.overBudget()
			}
			last++
		}
		c := f.chunks[last]
		n, err := f.Conn.Read(c[len(c):cap(c)])
		f.chunks[last] = c[:len(c)+n]
		f.got += n
		if err != nil && f.got < f.want {
			return err
		}
	}
	f.gathering, f.ready = false, true
	return nil
}

// give copies the held header, then the gathered body, to p, dropping each
// chunk once given; the budget is given back once the whole packet is.
func (f *frameConn) give(p []byte) int {
	n := copy(p, f.out)
	f.out = f.out[n:]
	for n < len(p) && len(f.chunks) > 0 {
		c := f.chunks[0]
		m := copy(p[n:], c)
		n += m
		if m < len(c) {
			f.chunks[0] = c[m:]
			break
		}
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
	}
	if len(f.out) == 0 && len(f.chunks) == 0 {
		f.limits.release(f.reserved)
		f.out, f.chunks, f.ready, f.reserved = f.out[:0], nil, false, 0
		f.packetDone()
	}
	return n
}

// packetDone: a whole packet has been handed to mochi.
func (f *frameConn) packetDone() {
	if f.half != nil {
		f.half.connected()
		f.half = nil
	}
}

// drop gives back the budget a packet in progress holds. It is called by
// the listener once mochi has stopped reading (establish returned): the
// frame state is the reading goroutine's alone, so Close, which mochi may
// call from anywhere, does not touch it.
func (f *frameConn) drop() {
	if f.reserved > 0 {
		f.limits.release(f.reserved)
		f.reserved = 0
	}
	f.chunks = nil
	f.packetDone()
}
