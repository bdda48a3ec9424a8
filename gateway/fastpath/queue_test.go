package fastpath

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/homebox/gateway/gateway/listeners"
	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"
)

// startBroker runs a real mochi broker on a free loopback port with outbound
// queues of `pending` packets and the hook, with mochi delivering everything
// (its listener's connections are not Conns): back-pressure alone.
func startBroker(t *testing.T, pending int32) (string, *mqtt.Server, *Hook) {
	t.Helper()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = pending
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true, // retained messages are published by the test itself
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	h := New(srv, Config{StallAfter: 200 * time.Millisecond})
	if err := srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewMQTT(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return l.Address(), srv, h
}

// dial connects and logs in as id; rcvbuf > 0 shrinks the socket's receive
// buffer first (a subscriber that will not read).
func dial(t *testing.T, addr, id string, rcvbuf int) (net.Conn, *mqttwire.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write(mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, KeepAlive: 60, CleanSession: true})); err != nil {
		t.Fatal(err)
	}
	r := mqttwire.NewReader(c, 64<<10, 1<<20)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := r.Next()
	if err != nil || p.Type != mqttwire.CONNACK {
		t.Fatalf("%s: no CONNACK: %v %v", id, p.Type, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, r
}

func subscribe(t *testing.T, c net.Conn, r *mqttwire.Reader, filter string) {
	t.Helper()
	if _, err := c.Write(mqttwire.AppendSubscribe(nil, 1, filter, 0)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if p, err := r.Next(); err != nil || p.Type != mqttwire.SUBACK {
		t.Fatalf("no SUBACK: %v %v", p.Type, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

// publish sends n QoS 0 messages on topic, 100 to a write; each payload
// carries its sequence number, padded to size bytes.
func publish(c net.Conn, topic string, n, size int) error {
	payload := make([]byte, size)
	var buf []byte
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(payload, uint32(i))
		buf = mqttwire.AppendPublish(buf, topic, 0, 0, payload)
		if (i+1)%100 == 0 || i == n-1 {
			if _, err := c.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return nil
}

// receive reads want messages, checking that each publisher's arrive in
// order, until done or the deadline.
func receive(c net.Conn, r *mqttwire.Reader, want int, deadline time.Time) (int, error) {
	_ = c.SetReadDeadline(deadline)
	next := map[string]uint32{}
	got := 0
	for got < want {
		p, err := r.Next()
		if err != nil {
			return got, err
		}
		pub, err := mqttwire.ParsePublish(p)
		if err != nil {
			return got, err
		}
		seq := binary.BigEndian.Uint32(pub.Payload)
		if seq != next[string(pub.Topic)] {
			return got, fmt.Errorf("%s: message %d arrived when %d was due (lost or reordered)", pub.Topic, seq, next[string(pub.Topic)])
		}
		next[string(pub.Topic)] = seq + 1
		got++
	}
	return got, nil
}

func TestFanInLosesNothingWhileTheSubscriberReads(t *testing.T) {
	const pubs, each = 6, 5000
	// A 32-packet queue overflows at once without back-pressure: six
	// publishers' readers outrun the one writer of the subscriber.
	addr, srv, h := startBroker(t, 32)
	sc, sr := dial(t, addr, "sink", 0)
	subscribe(t, sc, sr, "fan/#")

	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := range pubs {
		c, _ := dial(t, addr, fmt.Sprintf("pub%d", p), 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- publish(c, fmt.Sprintf("fan/%d", p), each, 16)
		}()
	}
	got, err := receive(sc, sr, pubs*each, time.Now().Add(60*time.Second))
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			t.Fatal(e)
		}
	}
	if err != nil {
		t.Fatalf("received %d of %d: %v (dropped by the broker: %d)", got, pubs*each, err, atomic.LoadInt64(&srv.Info.MessagesDropped))
	}
	if d := atomic.LoadInt64(&srv.Info.MessagesDropped); d != 0 {
		t.Fatalf("broker dropped %d messages", d)
	}
	if h.Waits() == 0 {
		t.Fatal("no publisher ever waited: the load did not reach the watermark, the test proves nothing")
	}
	t.Logf("%d messages, publishers waited %d times, %d stalls", got, h.Waits(), h.Stalls())
}

func TestStuckSubscriberDoesNotStallTheOthers(t *testing.T) {
	const pubs, each, size = 2, 2000, 1024
	addr, srv, h := startBroker(t, 32)
	// stuck subscribes and never reads: its socket buffers fill, its queue
	// in the broker fills.
	stc, str := dial(t, addr, "stuck", 4096)
	subscribe(t, stc, str, "fan/#")
	sc, sr := dial(t, addr, "healthy", 0)
	subscribe(t, sc, sr, "fan/#")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for p := range pubs {
		c, _ := dial(t, addr, fmt.Sprintf("pub%d", p), 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = publish(c, fmt.Sprintf("fan/%d", p), each, size)
		}()
	}
	deadline, _ := ctx.Deadline()
	got, err := receive(sc, sr, pubs*each, deadline)
	wg.Wait()
	if err != nil {
		t.Fatalf("healthy subscriber received %d of %d: %v", got, pubs*each, err)
	}
	if h.Stalls() == 0 {
		t.Fatal("the stuck subscriber was never judged stuck")
	}
	t.Logf("healthy got all %d; stalls %d, waits %d, dropped for the stuck one %d", got, h.Stalls(), h.Waits(), atomic.LoadInt64(&srv.Info.MessagesDropped))
}

func TestRoutesFollowSubscriptions(t *testing.T) {
	addr, _, h := startBroker(t, 32)
	if n := len(h.route("room/temp").targets); n != 0 {
		t.Fatalf("%d targets before any subscriber", n)
	}
	c, r := dial(t, addr, "ha", 0)
	subscribe(t, c, r, "room/#")
	if n := len(h.route("room/temp").targets); n != 1 {
		t.Fatalf("%d targets after a subscribe, want 1 (cache not voided)", n)
	}
	if n := len(h.route("hall/temp").targets); n != 0 {
		t.Fatalf("%d targets for a topic nobody subscribed to", n)
	}
	_ = c.Close()
	testkit.WaitFor(t, 10*time.Second, "the disconnected subscriber to stop being a target", func() bool {
		return len(h.route("room/temp").targets) == 0
	})
	n := 0
	h.queues.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d queue counts kept after the only subscriber left", n)
	}
}

// A new subscription's retained messages are queued by mochi all at once,
// on the subscriber's own reader, and dropped past the queue's capacity:
// with a queue of 64 and 1,000 retained topics (Home Assistant's discovery
// configs, say), the subscriber must still get every one.
func TestRetainedBurstOnSubscribeLosesNothing(t *testing.T) {
	addr, srv, _ := startBroker(t, 64)
	const n = 1000
	for i := range n {
		payload := make([]byte, 4)
		binary.BigEndian.PutUint32(payload, uint32(i))
		if err := srv.Publish(fmt.Sprintf("homeassistant/sensor/%04d/config", i), payload, true, 0); err != nil {
			t.Fatal(err)
		}
	}
	c, r := dial(t, addr, "ha", 0)
	subscribe(t, c, r, "homeassistant/#")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	seen := map[string]bool{}
	for len(seen) < n {
		p, err := r.Next()
		if err != nil {
			t.Fatalf("after %d of %d retained messages: %v (dropped: %d)", len(seen), n, err, srv.Info.MessagesDropped)
		}
		pub, err := mqttwire.ParsePublish(p)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(pub.Topic)] = true
	}
	if d := atomic.LoadInt64(&srv.Info.MessagesDropped); d != 0 {
		t.Fatalf("%d retained messages dropped", d)
	}
}
