package fastpath_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/mqttwire"
)

func TestFanInArrivesCompleteAndInOrder(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("home/#", 0, false, 0)
	const pubs, each = 8, 20000
	var wg sync.WaitGroup
	for i := range pubs {
		p := dial(t, b.addr, fmt.Sprintf("sensor%d", i), dialOpts{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.publishSeq(i, fmt.Sprintf("home/sensor%d", i), each)
		}()
	}
	var seq seqChecker
	for seq.got < pubs*each {
		m, err := sub.recv(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d: %v", seq.got, pubs*each, err)
		}
		if err := seq.add(m.payload); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if b.fast.Taken() == 0 {
		t.Fatal("the fast path took none of the messages")
	}
	if d := b.srv.Info.MessagesDropped; d != 0 {
		t.Fatalf("%d dropped", d)
	}
	if s := b.srv.Info.MessagesSent; s < pubs*each {
		t.Fatalf("Info.MessagesSent %d, want at least %d", s, pubs*each)
	}
}

func TestFanOutArrivesCompleteAndInOrder(t *testing.T) {
	b := startBroker(t, allowAll)
	const subs, n = 20, 5000
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	for i := range subs {
		s := dial(t, b.addr, fmt.Sprintf("screen%d", i), dialOpts{})
		s.subscribe("lights/+", 0, false, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seq seqChecker
			for seq.got < n {
				m, err := s.recv(10 * time.Second)
				if err == nil {
					err = seq.add(m.payload)
				}
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after %d: %w", i, seq.got, err)
					return
				}
			}
		}()
	}
	p := dial(t, b.addr, "switch", dialOpts{})
	p.publishSeq(0, "lights/kitchen", n)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if b.fast.Taken() == 0 {
		t.Fatal("the fast path took none of the messages")
	}
}

// A subscriber that also gets QoS 1 and retained messages through mochi
// gets every one of them, whole: frames never interleave mid-packet (the
// reader parses every byte of the stream).
func TestMixedWithMochiDeliveries(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("mix/#", 1, false, 0)
	const fast, qos1, retained = 20000, 500, 300
	fastPub := dial(t, b.addr, "fast", dialOpts{})
	qosPub := dial(t, b.addr, "qos1", dialOpts{})
	retPub := dial(t, b.addr, "retained", dialOpts{})
	go func() { // QoS 1 publisher's PUBACKs
		_ = qosPub.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, err := qosPub.r.Next(); err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); fastPub.publishSeq(0, "mix/fast", fast) }()
	go func() {
		defer wg.Done()
		for i := range qos1 {
			qosPub.write(mqttwire.AppendPublish(nil, "mix/qos1", 1, uint16(i+1), seqPayload(1, i, 8)))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range retained {
			retPub.write(retainedPublish("mix/retained", seqPayload(2, i, 8)))
		}
	}()
	seq := map[string]*seqChecker{"mix/fast": {}, "mix/qos1": {}, "mix/retained": {}}
	for total := 0; total < fast+qos1+retained; total++ {
		m, err := sub.recv(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d: %v", total, err)
		}
		s, ok := seq[m.topic]
		if !ok {
			t.Fatalf("message on %q", m.topic)
		}
		if err := s.add(m.payload); err != nil {
			t.Fatalf("%s: %v", m.topic, err)
		}
		if (m.topic == "mix/qos1") != (m.qos == 1) || m.retain {
			t.Fatalf("%s arrived with QoS %d retain %v", m.topic, m.qos, m.retain)
		}
	}
	wg.Wait()
	// Plain messages go mochi's way too while it still holds messages for
	// the subscriber; the others take the fast path.
	if got := b.fast.Taken(); got == 0 || got > fast {
		t.Fatalf("the fast path took %d messages, want some of the %d plain QoS 0 ones", got, fast)
	}
}

// retainedPublish is a retained QoS 0 PUBLISH (MQTT 3.1.1).
func retainedPublish(topic string, payload []byte) []byte {
	p := mqttwire.AppendPublish(nil, topic, 0, 0, payload)
	p[0] |= 1
	return p
}

// A publisher's messages on one topic arrive in order even when some of
// them (retained ones) go mochi's way and the rest the fast path: a plain
// message must not overtake a retained one still queued in mochi.
func TestRetainedAndPlainOnOneTopicStayInOrder(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("order/#", 0, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{})
	const n = 20000
	go func() {
		var buf []byte
		for i := range n {
			p := mqttwire.AppendPublish(nil, "order/x", 0, 0, seqPayload(0, i, 8))
			if i%3 == 0 {
				p[0] |= 1 // retained: mochi's way
			}
			buf = append(buf, p...)
			if len(buf) > 4<<10 || i == n-1 {
				if _, err := pub.c.Write(buf); err != nil {
					return // the test has ended
				}
				buf = buf[:0]
			}
		}
	}()
	var seq seqChecker
	for seq.got < n {
		m, err := sub.recv(10 * time.Second)
		if err == nil {
			err = seq.add(m.payload)
		}
		if err != nil {
			t.Fatalf("after %d of %d: %v", seq.got, n, err)
		}
	}
	if b.fast.Taken() == 0 {
		t.Fatal("the fast path took none of the messages")
	}
}
