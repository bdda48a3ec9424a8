package fanout_test

import (
	"fmt"
	"sync"
	"testing"
	"time"
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
