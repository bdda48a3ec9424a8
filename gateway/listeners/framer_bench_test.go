package listeners

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/homebox/gateway/internal/mqttwire"
)

// memConn serves a byte stream in reads of at most 16 KiB and says how
// much of the current read is left, as pooledReadConn does.
type memConn struct {
	net.Conn
	data    []byte
	pending []byte
}

func (m *memConn) Read(p []byte) (int, error) {
	if len(m.pending) == 0 {
		if len(m.data) == 0 {
			return 0, io.EOF
		}
		n := min(len(m.data), ReadBufferSize)
		m.pending, m.data = m.data[:n], m.data[n:]
	}
	n := copy(p, m.pending)
	m.pending = m.pending[n:]
	return n, nil
}

func (m *memConn) Buffered() int { return len(m.pending) }

// BenchmarkReadSmallPackets reads 64-byte PUBLISH packets as mochi does
// (a 128-byte bufio.Reader, fixed header then body), straight from the
// connection and through the framer: the framer's cost per packet.
func BenchmarkReadSmallPackets(b *testing.B) {
	var stream []byte
	for range 4096 {
		stream = mqttwire.AppendPublish(stream, "sensors/kitchen/temp", 0, 0, make([]byte, 40))
	}
	read := func(b *testing.B, wrap func(net.Conn) net.Conn) {
		b.SetBytes(int64(len(stream)))
		hdr := make([]byte, 0, 5)
		for b.Loop() {
			r := bufio.NewReaderSize(wrap(&memConn{data: stream}), 128)
			for {
				hdr = hdr[:0]
				t, err := r.ReadByte()
				if err != nil {
					break
				}
				hdr = append(hdr, t)
				n, mult := 0, 1
				for {
					c, _ := r.ReadByte()
					n += int(c&0x7f) * mult
					mult *= 128
					if c&0x80 == 0 {
						break
					}
				}
				body := make([]byte, n)
				if _, err := io.ReadFull(r, body); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("direct", func(b *testing.B) { read(b, func(c net.Conn) net.Conn { return c }) })
	b.Run("framer", func(b *testing.B) {
		l := NewLimits()
		read(b, func(c net.Conn) net.Conn { return newFrameConn(c, l, nil) })
	})
}
