package bridge

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/testkit"
)

// persistentRemote is a mosquitto that keeps sessions across restarts,
// so the test's watcher misses nothing while the bridge reconnects.
func persistentRemote(t *testing.T) *mosq {
	dir := t.TempDir()
	return startMosquitto(t, fmt.Sprintf("persistence true\npersistence_location %s/\n", dir))
}

// watcher is a QoS 1 persistent-session subscriber of the remote.
func watcher(t *testing.T, addr string, c *collector) paho3.Client {
	t.Helper()
	o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("watcher").SetCleanSession(false).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			c.add(got{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), retain: m.Retained()})
		})
	cl := paho3.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	if tok := cl.Subscribe("up/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	return cl
}

func payloads(c *collector, topic string) []string {
	var out []string
	for _, g := range c.all() {
		if g.topic == topic {
			out = append(out, g.payload)
		}
	}
	return out
}

// TestOutage stops the remote, publishes QoS 1 locally, starts the remote
// again on the same port: every message arrives once, in order, and the
// local state topic goes 1 -> 0 -> 1. A clean Stop then publishes 0 on
// both sides.
func TestOutage(t *testing.T) {
	remote := persistentRemote(t)
	seen := &collector{}
	w := watcher(t, remote.addr(), seen)
	local, localAddr := newMochi(t, false)
	b := conn("cloud", remote.addr(), topic("#", "out", 1, "", "up/"))
	m := startManager(t, local, t.TempDir(), b)
	testkit.WaitFor(t, 10*time.Second, "bridge up", func() bool { return m.Stats()[0].State == "up" })
	state := localWatch(t, local, "$SYS/broker/connection/box.cloud/state", 900)
	testkit.WaitFor(t, 5*time.Second, "state 1", func() bool {
		return slices.Equal(payloads(state, "$SYS/broker/connection/box.cloud/state"), []string{"1"})
	})

	w.Disconnect(100)
	remote.term()
	testkit.WaitFor(t, 10*time.Second, "bridge down", func() bool { return m.Stats()[0].State == "down" })

	pub, _ := client(t, localAddr, "pub", "")
	const n = 50
	for i := range n {
		publish(t, pub, "data", 1, false, fmt.Sprint(i))
	}
	// The PUBACK may come before the bridge has queued the message.
	testkit.WaitFor(t, 5*time.Second, fmt.Sprintf("%d queued", n), func() bool { return m.Stats()[0].Queued == n })

	remote.start()
	testkit.WaitFor(t, 15*time.Second, "bridge up again", func() bool { return m.Stats()[0].State == "up" })
	w = watcher(t, remote.addr(), seen)
	defer w.Disconnect(100)
	testkit.WaitFor(t, 15*time.Second, "all messages at the remote", func() bool { return len(payloads(seen, "up/data")) >= n })
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	if got := payloads(seen, "up/data"); !slices.Equal(got, want) {
		t.Errorf("remote got %v, want each of 0..%d once in order", got, n-1)
	}
	if got := payloads(state, "$SYS/broker/connection/box.cloud/state"); !slices.Equal(got, []string{"1", "0", "1"}) {
		t.Errorf("state went %v, want 1 0 1", got)
	}
	testkit.WaitFor(t, 5*time.Second, "queue drained", func() bool { return m.Stats()[0].Queued == 0 })

	// A clean stop: 0 locally and on the remote (retained there).
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := payloads(state, "$SYS/broker/connection/box.cloud/state"); !slices.Equal(got, []string{"1", "0", "1", "0"}) {
		t.Errorf("state after stop %v, want 1 0 1 0", got)
	}
	_, sys := client(t, remote.addr(), "sys", "$SYS/broker/connection/#")
	testkit.WaitFor(t, 5*time.Second, "remote retained state 0", func() bool {
		g, ok := sys.find("$SYS/broker/connection/box.cloud/state", "0")
		return ok && g.retain
	})
}

// TestRemoteDownAtStart: the queue is kept on disk across a Manager
// restart while the remote is down, and delivered when it comes up.
func TestRemoteDownAtStart(t *testing.T) {
	remote := persistentRemote(t)
	seen := &collector{}
	watcher(t, remote.addr(), seen).Disconnect(100)
	remote.term()

	local, _ := newMochi(t, false)
	store := t.TempDir()
	b := conn("cloud", remote.addr(), topic("#", "out", 2, "", "up/"))
	m1, err := New(Options{Server: local, Bridges: []mosquittoconf.Bridge{b}, StoreDir: store, Hostname: "box", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m1.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "bridge trying", func() bool {
		s := m1.Stats()[0]
		return s.State == "down" && s.LastError != ""
	})
	if s := m1.Stats()[0]; !strings.Contains(s.LastError, remote.addr()) {
		t.Errorf("last error %q does not name the address", s.LastError)
	}
	for i := range 5 {
		if err := local.Publish("data", []byte(fmt.Sprint(i)), false, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := m1.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := filepathGlob(store); err != nil {
		t.Fatal(err)
	}

	m2 := startManager(t, local, store, b)
	if q := m2.Stats()[0].Queued; q != 5 {
		t.Fatalf("reloaded queue has %d, want 5", q)
	}
	remote.start()
	w := watcher(t, remote.addr(), seen)
	defer w.Disconnect(100)
	testkit.WaitFor(t, 15*time.Second, "queued messages delivered", func() bool { return len(payloads(seen, "up/data")) >= 5 })
	if got := payloads(seen, "up/data"); !slices.Equal(got, []string{"0", "1", "2", "3", "4"}) {
		t.Errorf("remote got %v", got)
	}
}

func filepathGlob(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "bridge-*.db"))
	if err == nil && len(files) != 1 {
		err = fmt.Errorf("store files %v, want one bridge-cloud.db", files)
	}
	return files, err
}
