package listeners

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn presents the MQTT byte stream carried by a websocket as a net.Conn.
// MQTT over websockets puts packets in binary frames with no alignment
// promise: a packet may span frames and a frame may hold several packets,
// so Read streams across frame boundaries.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader // current frame, nil between frames

	wmu       sync.Mutex
	wdeadline atomic.Pointer[time.Time] // applied by Write, under wmu
	closeOnce sync.Once
	closeErr  error
}

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

// Read reads from the current binary frame, moving on to the next one when
// it is used up; it never returns 0 bytes with a nil error.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, fmt.Errorf("websocket from %s: text frame where MQTT needs binary frames", c.RemoteAddr())
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Write sends p as one binary frame.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var dl time.Time
	if p := c.wdeadline.Load(); p != nil {
		dl = *p
	}
	if err := c.ws.SetWriteDeadline(dl); err != nil {
		return 0, err
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close sends a close frame when the socket can take it at once, then closes
// the connection.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(100*time.Millisecond))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

// LocalAddr is the listener's side of the TCP connection.
func (c *wsConn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr is the TCP peer; request headers never change it.
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline is kept for the next Write: gorilla applies its own
// deadline to the socket before every write, and its setter must not run
// concurrently with a write (mochi sets deadlines from its read loop).
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wdeadline.Store(&t)
	return nil
}
