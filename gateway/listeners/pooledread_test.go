//go:build unix

package listeners

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// smallBufferBroker runs a mochi broker with the smallest read buffer
// bufio allows, so every packet crosses pooledReadConn in pieces, and a
// short outbound queue, so a client's heap is small enough to measure.
func smallBufferBroker(t *testing.T, l *MQTT) *mqtt.Server {
	t.Helper()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64
	return serve(t, &mqtt.Options{ClientNetReadBufferSize: 16, Capabilities: caps}, new(auth.AllowHook), l)
}

// received collects what an inline subscription delivers.
type received struct {
	mu       sync.Mutex
	payloads map[string][]byte // topic -> payload
}

func receive(t *testing.T, srv *mqtt.Server, filter string) *received {
	t.Helper()
	r := &received{payloads: map[string][]byte{}}
	err := srv.Subscribe(filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		r.mu.Lock()
		r.payloads[pk.TopicName] = append([]byte(nil), pk.Payload...)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wait polls until n messages arrived and returns them.
func (r *received) wait(t *testing.T, n int) map[string][]byte {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("%d messages", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.payloads) >= n
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.payloads
}

// connectAnon is an MQTT 3.1.1 CONNECT, clean session, keepalive 60 s.
func connectAnon(id string) []byte {
	return mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, KeepAlive: 60, CleanSession: true})
}

// publishQoS0 is a QoS 0 PUBLISH.
func publishQoS0(topic string, payload []byte) []byte {
	return mqttwire.AppendPublish(nil, topic, 0, 0, payload)
}

// payloadFor is a payload of size bytes that differs per message.
func payloadFor(i, size int) []byte {
	p := make([]byte, size)
	for j := range p {
		p[j] = byte(i*31 + j*7)
	}
	return p
}

// writer sends b over c in some way: all at once, in random pieces, or a
// byte at a time.
type writer func(c net.Conn, b []byte) error

func whole(c net.Conn, b []byte) error {
	_, err := c.Write(b)
	return err
}

func randomPieces(c net.Conn, b []byte) error {
	r := rand.New(rand.NewPCG(1, 2))
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(3000))
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func byteAtATime(c net.Conn, b []byte) error {
	for i := range b {
		if _, err := c.Write(b[i : i+1]); err != nil {
			return err
		}
	}
	return nil
}

// dialer opens a client connection to the listener, plain or TLS.
type dialer func(t *testing.T) net.Conn

// TestPooledReadDeliversIntact publishes, over plain TCP and TLS, messages
// smaller and larger than the pooled buffer, in one write, in random pieces
// and a byte at a time (a slowloris peer), and checks each arrives whole.
func TestPooledReadDeliversIntact(t *testing.T) {
	pki := newTestPKI(t)
	tlsCfg, err := TLSConfig(pki.ServerCert, pki.ServerKey, "", "", false, "tlsv1.2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []struct {
		name string
		tls  *tls.Config
	}{{"tcp", nil}, {"tls", tlsCfg}} {
		t.Run(tr.name, func(t *testing.T) {
			l := NewMQTT(Config{ID: "pooled-" + tr.name, Address: "127.0.0.1:0", TLS: tr.tls})
			srv := smallBufferBroker(t, l)
			dial := func(t *testing.T) net.Conn {
				t.Helper()
				c, err := net.DialTimeout("tcp", l.Address(), 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if tr.tls != nil {
					c = tls.Client(c, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
				}
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			for _, w := range []struct {
				name string
				fn   writer
				big  bool // also a message of 3 pooled buffers
			}{{"whole", whole, true}, {"pieces", randomPieces, true}, {"bytewise", byteAtATime, false}} {
				t.Run(w.name, func(t *testing.T) {
					checkDelivery(t, srv, dial, w.fn, w.big)
				})
			}
		})
	}
}

// checkDelivery connects, publishes a batch of small messages plus some
// larger ones in one stream written by w, and checks every payload.
func checkDelivery(t *testing.T, srv *mqtt.Server, dial dialer, w writer, big bool) {
	prefix := "pooled/" + t.Name() + "/"
	got := receive(t, srv, prefix+"#")
	sizes := []int{0, 1, 15, 16, 17, 100, 1000, 2047, 2048, 2049}
	if big {
		sizes = append(sizes, ReadBufferSize-1, ReadBufferSize, ReadBufferSize+1, 3*ReadBufferSize+5)
		for range 400 { // more than a pooled buffer of small packets in one stream
			sizes = append(sizes, 64)
		}
	}
	stream := connectAnon("pub-" + t.Name())
	want := map[string][]byte{}
	for i, size := range sizes {
		topic := fmt.Sprintf("%s%d", prefix, i)
		want[topic] = payloadFor(i, size)
		stream = append(stream, publishQoS0(topic, want[topic])...)
	}
	c := dial(t)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := w(c, stream); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK % x, %v", ack, err)
	}
	for topic, p := range got.wait(t, len(want)) {
		if !bytes.Equal(p, want[topic]) {
			t.Fatalf("%s: got %d bytes, want %d, or different bytes", topic, len(p), len(want[topic]))
		}
	}
}

// TestPooledReadErrors checks what mochi's reader sees: io.EOF when the
// peer hangs up, a deadline error, and net.ErrClosed after Close.
func TestPooledReadErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (server net.Conn, client net.Conn) {
		t.Helper()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close(); _ = s.Close() })
		pc := newPooledReadConn(s)
		if _, ok := pc.(*pooledReadConn); !ok {
			t.Fatalf("a TCP connection was not wrapped: %T", pc)
		}
		return pc, client
	}

	s, c := pair()
	if _, err := c.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "abc" {
		t.Fatalf("read %q, %v; want \"abc\" then EOF", got, err)
	}

	s, _ = pair()
	_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}

	s, _ = pair()
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 8))
		done <- err
	}()
	_ = s.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
	}
}

// TestIdleConnectionsHoldNoReadBuffer connects clients that each publish
// once and then idle: their heap must not include a pooled buffer each.
func TestIdleConnectionsHoldNoReadBuffer(t *testing.T) {
	l := NewMQTT(Config{ID: "idle", Address: "127.0.0.1:0"})
	srv := smallBufferBroker(t, l)
	got := receive(t, srv, "idle/#")
	before := buffersHeld.Load() // other tests' connections may have closed holding one
	const n = 200
	for i := range n {
		c, err := net.Dial("tcp", l.Address())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		msg := append(connectAnon(fmt.Sprintf("idle-%d", i)), publishQoS0(fmt.Sprintf("idle/%d", i), payloadFor(i, 100))...)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	got.wait(t, n)
	// Every connection has sent all it will and mochi has read it: each
	// reader is back waiting on its socket, holding no buffer.
	testkit.WaitFor(t, 5*time.Second, "idle connections to give their read buffers back", func() bool {
		return buffersHeld.Load() == before
	})
}

// TestPooledReadKeepaliveExpires checks that mochi's read deadline still
// works through the pooled reads: a client that goes silent past 1.5 ×
// its keepalive is disconnected.
func TestPooledReadKeepaliveExpires(t *testing.T) {
	l := NewMQTT(Config{ID: "keepalive", Address: "127.0.0.1:0"})
	smallBufferBroker(t, l)
	c, err := net.Dial("tcp", l.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: "silent", KeepAlive: 1, CleanSession: true})); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
		t.Fatalf("CONNACK % x, %v", ack, err)
	}
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent client still connected: read %d bytes, %v", n, err)
	}
}

// The fast path finds the TCP socket under our reading wrapper (through
// Unwrap) to write to it without a goroutine; without Unwrap every fast-path
// delivery would wait for a writer goroutine.
func TestPooledReadConnUnwrapsToTheSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	wrapped := newPooledReadConn(server)
	u, ok := wrapped.(interface{ Unwrap() net.Conn })
	if !ok {
		t.Fatal("the pooled reader has no Unwrap")
	}
	if _, ok := u.Unwrap().(*net.TCPConn); !ok {
		t.Fatalf("Unwrap gave %T, want *net.TCPConn", u.Unwrap())
	}
}
