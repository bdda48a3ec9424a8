package listeners

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/internal/mqttwire"
)

// pieceConn serves a stream in pieces of random sizes (1 to max bytes).
type pieceConn struct {
	net.Conn
	data []byte
	rnd  *rand.Rand
	max  int
}

func (c *pieceConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rnd.IntN(c.max))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *pieceConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 1} }

// The framer passes any stream of packets through unchanged, whatever the
// sizes of the socket's reads and of the reader's buffer, and gives the
// budget back.
func TestFramerPassesTheStreamUnchanged(t *testing.T) {
	build := func(sizes ...int) []byte {
		var b []byte
		for _, n := range sizes {
			b = mqttwire.AppendPublish(b, "t", 0, 0, pattern(n))
			b = mqttwire.AppendPingreq(b)
		}
		return b
	}
	small := build(0, 1, 40, passThrough-3, passThrough-2, passThrough-1, passThrough, passThrough+1,
		maxScan-4, maxScan, maxScan+1, 70<<10, 3, 16383, 16384, 5)
	big := build(40, 2097151, 2097152, 1) // 3- and 4-byte lengths
	for seed := range uint64(24) {
		rnd := rand.New(rand.NewPCG(seed, 14))
		maxPiece := []int{1, 2, 7, 300, 20000, 1 << 20}[seed%6]
		stream := small
		if maxPiece >= 300 {
			stream = append(append([]byte(nil), small...), big...)
		}
		l := NewLimits()
		f := newFrameConn(&pieceConn{data: stream, rnd: rnd, max: maxPiece}, l, nil)
		var got bytes.Buffer
		buf := make([]byte, 1<<17)
		for {
			size := []int{1, 2, 3, 5, 6, 128, 4096, 1 << 17}[rnd.IntN(8)]
			n, err := f.Read(buf[:size])
			got.Write(buf[:n])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("seed %d: %v after %d bytes", seed, err, got.Len())
			}
		}
		if !bytes.Equal(got.Bytes(), stream) {
			t.Fatalf("seed %d (pieces up to %d): stream changed: %d bytes of %d", seed, maxPiece, got.Len(), len(stream))
		}
		if p := l.Stats().PendingBytes; p != 0 {
			t.Fatalf("seed %d: %d bytes of budget still held", seed, p)
		}
	}
}

// A large packet's header is not given before its body has arrived.
func TestFramerHoldsALargeHeaderUntilItsBody(t *testing.T) {
	pkt := mqttwire.AppendPublish(nil, "t", 0, 0, pattern(100<<10))
	r, w := net.Pipe()
	defer r.Close()
	f := newFrameConn(r, NewLimits(), nil)
	got := make(chan int, 1)
	go func() {
		n, _ := f.Read(make([]byte, 128))
		got <- n
	}()
	if _, err := w.Write(pkt[:len(pkt)-1]); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		t.Fatalf("%d bytes given before the packet was complete", n)
	default:
	}
	if _, err := w.Write(pkt[len(pkt)-1:]); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 128 {
		t.Fatalf("first read gave %d bytes, want 128", n)
	}
	w.Close()
}

func TestFramerRefusesOversizeAndMalformed(t *testing.T) {
	l := &Limits{MaxPacketSize: 1 << 20}
	for name, stream := range map[string][]byte{
		"oversize":  append(mqttwire.AppendPingreq(nil), claimHeader(1<<20)...),
		"malformed": append(mqttwire.AppendPingreq(nil), 0x30, 0x80, 0x80, 0x80, 0x80, 0x01),
	} {
		f := newFrameConn(&pieceConn{data: stream, rnd: rand.New(rand.NewPCG(1, 2)), max: 1 << 10}, l, nil)
		var got []byte
		var err error
		buf := make([]byte, 128)
		for err == nil {
			var n int
			n, err = f.Read(buf)
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, mqttwire.AppendPingreq(nil)) {
			t.Errorf("%s: gave % x, want only the PINGREQ before the bad header", name, got)
		}
		if name == "oversize" && !errors.Is(err, packets.ErrPacketTooLarge) {
			t.Errorf("%s: %v, want ErrPacketTooLarge", name, err)
		}
		if name == "malformed" && !errors.Is(err, errMalformedLength) {
			t.Errorf("%s: %v, want errMalformedLength", name, err)
		}
	}
}
