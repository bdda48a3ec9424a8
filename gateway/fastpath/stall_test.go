package fastpath_test

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/mqttwire"
)

// slowReader reads 4 KiB a millisecond at most: about 4 MB/s, slower than
// any publisher here, but always reading.
type slowReader struct{ c net.Conn }

func (r slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond) // the reader's pace, not a wait for an event
	return r.c.Read(p[:min(len(p), 4096)])
}

// A subscriber that never reads holds the others up for StallAfter at most,
// then loses its messages; the one that reads gets all of them.
func TestStuckSubscriberDoesNotStallOthers(t *testing.T) {
	b := startBroker(t, allowAll)
	stuck := dial(t, b.addr, "stuck", dialOpts{rcvbuf: 4096})
	stuck.subscribe("big/#", 0, false, 0)
	healthy := dial(t, b.addr, "healthy", dialOpts{})
	healthy.subscribe("big/#", 0, false, 0)
	const n, size = 20000, 1024 // 20 MB: far past HighWater and the socket buffers
	pub := dial(t, b.addr, "pub", dialOpts{})
	go pub.publishSized(0, "big/x", n, size)
	var seq seqChecker
	for seq.got < n {
		m, err := healthy.recv(20 * time.Second)
		if err == nil {
			err = seq.add(m.payload)
		}
		if err != nil {
			t.Fatalf("healthy subscriber after %d of %d: %v", seq.got, n, err)
		}
	}
	if b.fast.Stalls() == 0 {
		t.Fatal("the stuck subscriber was never judged stuck")
	}
	if atomic.LoadInt64(&b.srv.Info.MessagesDropped) == 0 {
		t.Fatal("nothing counted as dropped for the stuck subscriber")
	}
}

// A subscriber that reads, however slowly, loses nothing: publishers wait
// for it.
func TestSlowSubscriberLosesNothing(t *testing.T) {
	b := startBroker(t, allowAll)
	slow := dial(t, b.addr, "slow", dialOpts{rcvbuf: 4096})
	slow.subscribe("big/#", 0, false, 0)
	slow.r = mqttwire.NewReader(slowReader{slow.c}, 64<<10, 1<<20)
	const pubs, n, size = 2, 4000, 1024 // 8 MB
	for i := range pubs {
		p := dial(t, b.addr, fmt.Sprintf("pub%d", i), dialOpts{})
		go p.publishSized(i, fmt.Sprintf("big/%d", i), n, size)
	}
	var seq seqChecker
	for seq.got < pubs*n {
		m, err := slow.recv(20 * time.Second)
		if err == nil {
			err = seq.add(m.payload)
		}
		if err != nil {
			t.Fatalf("after %d of %d: %v (waits %d, stalls %d, dropped %d)", seq.got, pubs*n, err, b.fast.Waits(), b.fast.Stalls(), atomic.LoadInt64(&b.srv.Info.MessagesDropped))
		}
	}
	if d := atomic.LoadInt64(&b.srv.Info.MessagesDropped); d != 0 {
		t.Fatalf("%d dropped for a subscriber that kept reading", d)
	}
	if b.fast.Waits() == 0 {
		t.Fatal("publishers never waited: the test did not reach HighWater")
	}
}

// Deadlines are passed on sparingly (Conn.SetDeadline): a client that keeps
// its keep-alive stays, a silent one is still cut off.
func TestKeepAliveStillHolds(t *testing.T) {
	b := startBroker(t, allowAll)
	pinger := dialKeepAlive(t, b.addr, "pinger", 2)
	silent := dialKeepAlive(t, b.addr, "silent", 1)
	done := time.Now().Add(4 * time.Second)
	for time.Now().Before(done) {
		time.Sleep(time.Second) // the client's keep-alive pace, not a wait
		pinger.write(mqttwire.AppendPingreq(nil))
		if p := pinger.next1(5 * time.Second); p.Type != mqttwire.PINGRESP {
			t.Fatalf("got packet type %d, want PINGRESP", p.Type)
		}
	}
	// 1.5 × 1 s without a packet: the broker has closed the silent one.
	_ = silent.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.r.Next(); err == nil {
		t.Fatal("the silent client got a packet, want its connection closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the silent client was not cut off")
	}
}

func dialKeepAlive(t *testing.T, addr, id string, seconds uint16) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cl := &client{t: t, c: c, r: mqttwire.NewReader(c, 64<<10, 1<<20)}
	cl.write(mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, KeepAlive: seconds, CleanSession: true}))
	if p := cl.next1(5 * time.Second); p.Type != mqttwire.CONNACK {
		t.Fatalf("%s: got packet type %d, want CONNACK", id, p.Type)
	}
	return cl
}
