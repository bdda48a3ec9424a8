package fastpath_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Subscribers on TLS and websockets, whose connections are written by a
// goroutine rather than directly, get fast-path fan-in complete and in
// order, like one on plain TCP.
func TestTLSAndWebsocketSubscribers(t *testing.T) {
	b := startBrokerTLS(t)
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", b.tls, &tls.Config{RootCAs: b.pki.Pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+b.ws+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	subs := map[string]*client{
		"tls":       login(t, tc, "tls-sub", dialOpts{}),
		"websocket": login(t, &wsClient{Conn: ws}, "ws-sub", dialOpts{}),
		"tcp":       dial(t, b.addr, "tcp-sub", dialOpts{}),
	}
	for _, s := range subs {
		s.subscribe("home/#", 0, false, 0)
	}
	const pubs, each = 3, 5000
	for i := range pubs {
		p := dial(t, b.addr, fmt.Sprintf("sensor%d", i), dialOpts{})
		go p.publishSeq(i, fmt.Sprintf("home/%d", i), each)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(subs))
	for name, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seq seqChecker
			for seq.got < pubs*each {
				m, err := s.recv(20 * time.Second)
				if err == nil {
					err = seq.add(m.payload)
				}
				if err != nil {
					errs <- fmt.Errorf("%s subscriber after %d of %d: %w", name, seq.got, pubs*each, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if b.fast.Taken() == 0 {
		t.Fatal("the fast path took none of the messages")
	}
}

// wsClient is a websocket client connection as a net.Conn: binary messages
// carry the MQTT stream.
type wsClient struct {
	*websocket.Conn
	r  io.Reader
	mu sync.Mutex
}

func (c *wsClient) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsClient) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsClient) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}
