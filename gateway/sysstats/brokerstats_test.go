package sysstats

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

func TestRate(t *testing.T) {
	var c counter
	t0 := time.Unix(100, 0)
	if r := rate(&c, 10, t0, false); r != 0 {
		t.Errorf("first value: %v", r)
	}
	if r := rate(&c, 30, t0.Add(2*time.Second), false); r != 10 {
		t.Errorf("20 in 2s: %v", r)
	}
	if r := rate(&c, 5, t0.Add(3*time.Second), false); r != 0 {
		t.Errorf("counter went back (a restart): %v", r)
	}
	// A retained value (the last tick, replayed at subscribe) starts
	// nothing: the live tick just after it is the first value.
	rate(&c, 100, t0.Add(4*time.Second), true)
	if r := rate(&c, 127, t0.Add(4*time.Second+60*time.Millisecond), false); r != 0 {
		t.Errorf("a rate over the retained replay: %v", r)
	}
	if r := rate(&c, 154, t0.Add(5*time.Second+60*time.Millisecond), false); r != 27 {
		t.Errorf("27 in 1s after the replay: %v", r)
	}
}

// TestCollectorReadsMosquittoSys runs a real Mosquitto with a one-second
// sys_interval: the names the collector reads are Mosquitto's own, which
// the gateway's broker publishes too.
func TestCollectorReadsMosquittoSys(t *testing.T) {
	mosquitto := testkit.RequireTool(t, "mosquitto")
	testkit.RequireTool(t, "mosquitto_pub")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(t.TempDir(), "m.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nsys_interval 1\n", port)), 0o644)
	testkit.Start(t, mosquitto, "-c", conf)

	c := Start(Options{BrokerURL: fmt.Sprintf("mqtt://127.0.0.1:%d", port)})
	t.Cleanup(c.Close)
	ch, stop := c.Changed()
	defer stop()
	testkit.WaitFor(t, 15*time.Second, "the collector to connect and read $SYS", func() bool {
		s := c.Snapshot()
		return s.Up && s.Version != "" && s.ClientsConnected >= 1
	})
	<-ch // notified at least once
	// Retained messages and traffic show up within a few ticks.
	r0 := c.Snapshot().Retained
	testkit.Run(t, 10*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "kept/one", "-m", "x", "-r")
	testkit.WaitFor(t, 15*time.Second, "retained count and a traffic history", func() bool {
		testkit.Run(t, 10*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "load/x", "-m", "x", "-q", "1")
		s := c.Snapshot()
		return s.Retained > r0 && len(s.History) >= 2 && s.InPerS > 0
	})
}
