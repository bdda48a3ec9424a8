package listeners

import (
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a lingering close: how long and how much the broker still
// reads from a peer after its last answer, so that the kernel does not
// reset the connection over unread input (a reset makes the peer drop the
// DISCONNECT or refusal CONNACK it had not read yet).
const (
	lingerTimeout = time.Second
	lingerBytes   = 64 << 10
)

// answerConn sits under mochi's view of a connection, for the broker's last
// and first words to the peer:
//   - Close half-closes (the peer reads everything and then EOF), reads and
//     drops what the peer still sends, bounded, and only then closes, in
//     the background: closing a socket with unread input makes the kernel
//     reset it, and the peer then loses the DISCONNECT or refusal CONNACK
//     it had not read yet;
//   - Replace lets gateway/mosquittowire write a CONNACK or DISCONNECT in
//     Mosquitto's bytes (mochi orders properties its own way, and always
//     writes a DISCONNECT's property length).
type answerConn struct {
	net.Conn
	mu       sync.Mutex
	replaces []replacement // in the order mochi will write them
	closing  atomic.Bool
}

// replacement is one packet mochi will write (orig) and what goes instead.
type replacement struct{ orig, with []byte }

func newAnswerConn(c net.Conn) *answerConn { return &answerConn{Conn: c} }

// Unwrap gives the connection underneath: the fast path writes beneath
// (its frames follow the CONNACK; a DISCONNECT goes through mochi's Write).
func (c *answerConn) Unwrap() net.Conn { return c.Conn }

// Replace makes the next packet written that is orig, byte for byte, go
// out as with. A packet the fast path writes beneath this connection is
// not seen here and goes out as mochi wrote it (still valid MQTT).
func (c *answerConn) Replace(orig, with []byte) {
	c.mu.Lock()
	c.replaces = append(c.replaces, replacement{orig, with})
	c.mu.Unlock()
}

func (c *answerConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.replaces) == 0 {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	out := c.replaceLocked(p)
	c.mu.Unlock()
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// replaceLocked walks the packets in p (mochi writes whole packets) and
// swaps those awaited. A replacement is for the next packet of its type:
// when that one differs (the hook misjudged mochi's bytes), it is dropped,
// so that writes do not stay on this slower path.
func (c *answerConn) replaceLocked(p []byte) []byte {
	var out []byte
	for off := 0; off < len(p); {
		n := packetLen(p[off:])
		if n == 0 {
			return append(out, p[off:]...)
		}
		pk := p[off : off+n]
		off += n
		for i, r := range c.replaces {
			if r.orig[0]>>4 != pk[0]>>4 {
				continue
			}
			if bytes.Equal(r.orig, pk) {
				pk = r.with
			}
			c.replaces = append(c.replaces[:i], c.replaces[i+1:]...)
			break
		}
		out = append(out, pk...)
	}
	return out
}

// packetLen is the length of the whole packet at the start of p, or 0 when
// p does not hold all of it.
func packetLen(p []byte) int {
	n, shift := 0, 0
	for i := 1; i < len(p) && i < 5; i++ {
		n |= int(p[i]&0x7f) << shift
		shift += 7
		if p[i]&0x80 == 0 {
			if i+1+n > len(p) {
				return 0
			}
			return i + 1 + n
		}
	}
	return 0
}

// Close ends the connection after its last bytes were handed to the kernel
// (fastpath.Conn calls it once they are). The first call lingers; later
// ones return at once.
func (c *answerConn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return nil
	}
	tcp, tc := bottom(c.Conn)
	if tcp == nil {
		return c.Conn.Close()
	}
	go c.linger(tcp, tc)
	return nil
}

// linger half-closes and reads until the peer closes too, at most
// lingerBytes for lingerTimeout, then closes. The read deadline is set
// anew: fastpath.Conn's Close set it to "now" to wake mochi's reader, which
// has woken by the time the last bytes are written and this runs.
func (c *answerConn) linger(tcp *net.TCPConn, tc *tls.Conn) {
	defer c.Conn.Close()
	deadline := time.Now().Add(lingerTimeout)
	if tc != nil {
		_ = tc.SetWriteDeadline(deadline)
		_ = tc.CloseWrite() // close_notify
	}
	if tcp.CloseWrite() != nil || tcp.SetReadDeadline(deadline) != nil {
		return
	}
	buf := make([]byte, 4096)
	for read := 0; read < lingerBytes; {
		n, err := tcp.Read(buf)
		read += n
		if err != nil {
			return
		}
	}
}

// bottom finds the TCP connection under c, and the TLS one above it if any.
func bottom(c net.Conn) (*net.TCPConn, *tls.Conn) {
	var tc *tls.Conn
	for range 8 {
		switch x := c.(type) {
		case *net.TCPConn:
			return x, tc
		case *tls.Conn:
			tc = x
			c = x.NetConn()
		case interface{ Unwrap() net.Conn }:
			c = x.Unwrap()
		default:
			return nil, nil
		}
	}
	return nil, nil
}
