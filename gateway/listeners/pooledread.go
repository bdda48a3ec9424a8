//go:build unix

package listeners

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// ReadBufferSize is the size of the read buffers TCP connections borrow
// while bytes are pending. It is large so that a burst (a publisher writing
// dozens of packets at once) takes one read(2); it costs nothing per idle
// connection, as no connection holds one while it waits.
const ReadBufferSize = 16 << 10

// readBuffers are the buffers pooledReadConn borrows.
var readBuffers = sync.Pool{New: func() any {
	b := make([]byte, ReadBufferSize)
	return &b
}}

// buffersHeld counts the buffers connections hold with bytes pending (one
// atomic add per read burst); tests read it to see that idle connections
// hold none.
var buffersHeld atomic.Int64

// pooledReadConn is a TCP connection that holds a read buffer only while
// received bytes wait in it. mochi reads each client through a bufio.Reader
// of its own, made when the client arrives and kept for its life: 2 KiB for
// every idle connection. With this connection under it, mochi's buffer can
// be tiny (ClientNetReadBufferSize) while reads stay large: a Read with
// nothing pending waits until the socket is readable, borrows a buffer,
// reads what is there, and hands the buffer back once it is used up.
//
// Only one goroutine reads at a time (mochi's reader, after the TLS
// handshake); writes, deadlines and Close go straight to the TCP connection.
type pooledReadConn struct {
	net.Conn // the *net.TCPConn
	raw      syscall.RawConn

	buf     *[]byte // borrowed; nil when nothing is pending
	pending []byte  // the unread part of *buf
}

// newPooledReadConn wraps c when it is a socket the runtime polls (a TCP
// connection); anything else is returned as it is.
func newPooledReadConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &pooledReadConn{Conn: c, raw: raw}
}

// Unwrap gives the TCP connection: writes pass through unchanged, so the
// QoS 0 fast path (fastpath.Wrap) may write to the socket underneath.
func (c *pooledReadConn) Unwrap() net.Conn { return c.Conn }

// Buffered is how many bytes were read from the socket and not yet handed
// out: the fast path writes its deliveries once a burst is used up. Only
// the reading goroutine may ask.
func (c *pooledReadConn) Buffered() int { return len(c.pending) }

// Read hands out pending bytes, else waits for the socket and reads. A
// caller asking for at least a buffer's worth is read into directly.
func (c *pooledReadConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.pending) == 0 {
		if len(p) >= ReadBufferSize {
			return c.readSocket(p)
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		readBuffers.Put(c.buf)
		buffersHeld.Add(-1)
		c.buf, c.pending = nil, nil
	}
	return n, nil
}

// fill waits for bytes and reads them into a borrowed buffer.
func (c *pooledReadConn) fill() error {
	var n int
	var readErr error
	err := c.raw.Read(func(fd uintptr) bool {
		b := readBuffers.Get().(*[]byte)
		n, readErr = readFD(fd, *b)
		if readErr == syscall.EAGAIN {
			readBuffers.Put(b) // nothing yet: hold no buffer while waiting
			return false
		}
		if n > 0 {
			c.buf, c.pending = b, (*b)[:n]
			buffersHeld.Add(1)
		} else {
			readBuffers.Put(b)
		}
		return true
	})
	return c.result(n, readErr, err)
}

// readSocket reads straight into p.
func (c *pooledReadConn) readSocket(p []byte) (int, error) {
	var n int
	var readErr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, readErr = readFD(fd, p)
		return readErr != syscall.EAGAIN
	})
	if e := c.result(n, readErr, err); e != nil {
		return 0, e
	}
	return n, nil
}

// result turns what a read met into net.Conn's errors: io.EOF when the peer
// closed, and *net.OpError otherwise, as a *net.TCPConn reports them.
func (c *pooledReadConn) result(n int, readErr, waitErr error) error {
	switch {
	case waitErr != nil: // deadline passed, or the connection was closed
		return c.opError(waitErr)
	case readErr != nil:
		return c.opError(os.NewSyscallError("read", readErr))
	case n == 0:
		return io.EOF
	}
	return nil
}

func (c *pooledReadConn) opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// readFD is read(2), retried on EINTR. The socket is non-blocking (the
// runtime polls it), so EAGAIN means nothing is there yet.
func readFD(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}
