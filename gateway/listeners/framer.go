package listeners

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi v2.7.9 reads a packet by decoding its fixed header and then
// allocating the whole remaining length at once (Client.ReadPacket:
// make([]byte, Remaining)), before a byte of it has arrived: six clients
// claiming 268,435,455 bytes each and sending 1 KB grew the broker past the
// supervisor's max_memory. frameConn sits between the socket (after TLS, or
// the websocket frames) and mochi, follows the MQTT framing, and hands mochi
// the header of a packet larger than passThrough only once the whole packet
// has arrived: mochi's allocation then matches bytes that are here. Until
// then the packet is kept in chunks that grow with what arrives (never more
// than arrived plus one chunk), counted in the box-wide budget of
// Limits.PendingBytes; a client whose packet would pass it is disconnected.
// A header claiming more than Limits.MaxPacketSize ends the connection
// before anything is allocated.
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
)

// errMalformedLength is a remaining length of more than four bytes.
var errMalformedLength = errors.New("malformed remaining length (more than 4 bytes)")

type frameConn struct {
	net.Conn
	limits *Limits
	half   *halfOpen // nil once the first packet has been read
	inner  bufferedReader

	hdr [5]byte // fixed header being read
	hn  int
	out []byte // header bytes ready for mochi

	through int // body bytes still to pass straight through

	// A packet being gathered: want bytes of body, in chunks.
	gathering bool
	want      int
	got       int
	chunks    [][]byte
	reserved  int // bytes of the budget held (chunk capacities)
	ready     bool
	err       error // to return on the next Read, after bytes already given
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
	n := len(f.out)
	if f.ready {
		for _, c := range f.chunks {
			n += len(c)
		}
	}
	if f.inner != nil {
		n += f.inner.Buffered()
	}
	return n
}

// Read gives mochi whole headers of packets that are here, and keeps going
// while more can be given without waiting for the socket.
func (f *frameConn) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for n < len(p) {
		if n > 0 && f.Buffered() == 0 {
			break
		}
		m, err := f.step(p[n:])
		n += m
		if err != nil {
			if n > 0 {
				f.err = err
				return n, nil
			}
			return 0, err
		}
	}
	return n, nil
}

// step moves one piece of the stream into p.
func (f *frameConn) step(p []byte) (int, error) {
	switch {
	case f.gathering: // the header waits in out until the body is here
		return 0, f.gather()
	case len(f.out) > 0:
		n := copy(p, f.out)
		f.out = f.out[n:]
		if len(f.out) == 0 && !f.gathering && f.through == 0 {
			f.packetDone()
		}
		return n, nil
	case f.ready:
		return f.giveChunk(p), nil
	case f.through > 0:
		n, err := f.Conn.Read(p[:min(len(p), f.through)])
		f.through -= n
		if f.through == 0 && n > 0 {
			f.packetDone()
		}
		return n, err
	}
	return 0, f.readHeader()
}

// readHeader reads one fixed header and decides how its body goes.
func (f *frameConn) readHeader() error {
	for {
		if _, err := io.ReadFull(f.Conn, f.hdr[f.hn:f.hn+1]); err != nil {
			return err
		}
		f.hn++
		if f.hn == 1 {
			continue
		}
		if f.hdr[f.hn-1]&0x80 != 0 {
			if f.hn == 5 {
				return fmt.Errorf("mqtt from %s: %w", f.RemoteAddr(), errMalformedLength)
			}
			continue
		}
		break
	}
	remaining, mult := 0, 1
	for _, b := range f.hdr[1:f.hn] {
		remaining += int(b&0x7f) * mult
		mult *= 128
	}
	f.out = append(f.out[:0], f.hdr[:f.hn]...)
	f.hn = 0
	switch {
	case remaining+1 > f.limits.MaxPacketSize:
		// As mochi's own check (MaximumPacketSize, [MQTT-3.2.2-15]) would,
		// without depending on mochi being told the same limit.
		size := remaining + len(f.out)
		f.out = f.out[:0]
		return fmt.Errorf("mqtt from %s: packet of %d bytes refused, over the packet size limit (max_packet_size) of %d: %w",
			f.RemoteAddr(), size, f.limits.MaxPacketSize, packets.ErrPacketTooLarge)
	case remaining <= passThrough:
		f.through = remaining
	default:
		f.gathering, f.want, f.got = true, remaining, 0
	}
	return nil
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
			size = min(size, f.want-f.got)
			if !f.limits.reserve(size) {
				return fmt.Errorf("mqtt from %s: packet of %d bytes refused: partly received packets already hold %d of the box-wide %d bytes",
					f.RemoteAddr(), f.want, f.limits.pending.Load(), f.limits.PendingBytes)
			}
			f.reserved += size
			f.chunks = append(f.chunks, make([]byte, 0, size))
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

// giveChunk copies gathered bytes to p, dropping each chunk once given; the
// budget is given back when the whole packet has been.
func (f *frameConn) giveChunk(p []byte) int {
	n := 0
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
	if len(f.chunks) == 0 {
		f.limits.release(f.reserved)
		f.chunks, f.ready, f.reserved = nil, false, 0
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
