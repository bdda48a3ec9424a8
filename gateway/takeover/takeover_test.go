package takeover_test

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/gateway/takeover"
	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"
)

// client is a raw MQTT 3.1.1 connection.
type client struct {
	c net.Conn
	r *mqttwire.Reader
}

func connect(t *testing.T, addr, id string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{c: c, r: mqttwire.NewReader(c, 4096, 1<<20)}
	cl.send(t, mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, CleanSession: true, KeepAlive: 60}))
	if code, err := mqttwire.ConnackCode(cl.next(t, 5*time.Second)); err != nil || code != 0 {
		t.Fatalf("%s: CONNACK %d %v", id, code, err)
	}
	return cl
}

func (cl *client) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := cl.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (cl *client) next(t *testing.T, within time.Duration) mqttwire.Packet {
	t.Helper()
	p, err := cl.tryNext(within)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return p
}

func (cl *client) tryNext(within time.Duration) (mqttwire.Packet, error) {
	_ = cl.c.SetReadDeadline(time.Now().Add(within))
	return cl.r.Next()
}

func (cl *client) subscribe(t *testing.T, filter string) {
	t.Helper()
	cl.send(t, mqttwire.AppendSubscribe(nil, 1, filter, 0))
	if p := cl.next(t, 5*time.Second); p.Type != mqttwire.SUBACK {
		t.Fatalf("want SUBACK, got type %d", p.Type)
	}
}

// mochiWith serves a plain mochi broker with the given hooks on loopback.
func mochiWith(t *testing.T, hooks ...func(*mqtt.Server) mqtt.Hook) string {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true})
	all := []mqtt.Hook{new(auth.AllowHook)}
	for _, h := range hooks {
		all = append(all, h(s))
	}
	return testkit.ServeMochi(t, s, all...)
}

// reconnects runs rounds of a device that subscribes, goes (by DISCONNECT,
// or by being taken over while connected) and comes straight back under
// the same id and subscribes again; each round a message is published and
// must reach the new connection. It returns how many rounds lost it.
func reconnects(t *testing.T, addr string, rounds int, disconnectFirst bool) int {
	t.Helper()
	pub := connect(t, addr, "publisher")
	lost := 0
	for i := 0; i < rounds; i++ {
		old := connect(t, addr, "device")
		old.subscribe(t, "lamp")
		if disconnectFirst {
			old.send(t, mqttwire.AppendDisconnect(nil))
			old.c.Close()
		}
		cur := connect(t, addr, "device")
		cur.subscribe(t, "lamp")
		pub.send(t, mqttwire.AppendPublish(nil, "lamp", 0, 0, []byte(fmt.Sprint(i))))
		// 2 s: a message that has not come by then is not coming (loopback).
		if p, err := cur.tryNext(2 * time.Second); err != nil || p.Type != mqttwire.PUBLISH {
			lost++
		}
		old.c.Close()
		cur.c.Close()
	}
	return lost
}

// A device that reconnects under its own id keeps receiving, every time:
// with the hook on plain mochi, and in `gatewayd broker`, which adds it.
// Without the hook the same rounds lose 1-4 in 100 (measured).
func TestReconnectsKeepTheNewClient(t *testing.T) {
	const rounds = 150
	bin := testkit.Build(t, "./cmd/gatewayd")
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	port := testkit.FreePort(t)
	testkit.WriteFile(t, conf, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n", port, dir))
	box := testkit.Start(t, bin, "broker", "--config", conf)
	box.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="broker running"`))

	for name, addr := range map[string]string{
		"mochi with the hook": mochiWith(t, func(s *mqtt.Server) mqtt.Hook { return takeover.New(s, nil) }),
		"gatewayd broker":     fmt.Sprintf("127.0.0.1:%d", port),
	} {
		for _, disconnectFirst := range []bool{true, false} {
			if lost := reconnects(t, addr, rounds, disconnectFirst); lost > 0 {
				t.Errorf("%s, DISCONNECT first %v: %d of %d reconnects received nothing", name, disconnectFirst, lost, rounds)
			}
		}
	}
}

// stallOldCleanup holds the first clean-up of the old "device" connection
// (mochi's unsubscribe, between its "not taken over" check and its delete
// of the id) until the new connection is registered, or for at most wait:
// the interleaving that loses the new client, made certain.
type stallOldCleanup struct {
	mqtt.HookBase
	wait       time.Duration
	once       atomic.Bool
	registered chan struct{}
	closeOnce  sync.Once
}

func (h *stallOldCleanup) ID() string { return "stall-old-cleanup" }
func (h *stallOldCleanup) Provides(b byte) bool {
	return b == mqtt.OnUnsubscribed || b == mqtt.OnSessionEstablished
}
func (h *stallOldCleanup) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID == "device" && cl.Closed() && h.once.CompareAndSwap(false, true) {
		select {
		case <-h.registered:
		case <-time.After(h.wait):
		}
	}
}
func (h *stallOldCleanup) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID == "device" && h.once.Load() {
		h.closeOnce.Do(func() { close(h.registered) })
	}
}

// oldLeavesThenNewArrives stalls the old connection's clean-up, reconnects,
// and reports whether the new connection is still in mochi's client map
// once the old one is gone.
func oldLeavesThenNewArrives(t *testing.T, withMend bool) bool {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true})
	stall := &stallOldCleanup{wait: 500 * time.Millisecond, registered: make(chan struct{})}
	hooks := []mqtt.Hook{new(auth.AllowHook), stall}
	if withMend {
		hooks = append(hooks, takeover.New(s, nil))
	}
	addr := testkit.ServeMochi(t, s, hooks...)
	old := connect(t, addr, "device")
	old.subscribe(t, "lamp")
	old.send(t, mqttwire.AppendDisconnect(nil))
	old.c.Close()
	testkit.WaitFor(t, 5*time.Second, "the old connection's clean-up to start", stall.once.Load)
	cur := connect(t, addr, "device")
	cur.subscribe(t, "lamp")
	// mochi counts a connection out when its goroutine ends, after the
	// clean-up's delete: then the map says who holds the id.
	testkit.WaitFor(t, 5*time.Second, "the old connection's clean-up to end", func() bool {
		return atomic.LoadInt64(&s.Info.ClientsConnected) == 1
	})
	got, ok := s.Clients.Get("device")
	// Closed by hand: a client dropped from the map is out of reach of
	// the server's own Close, which would wait for its keep-alive.
	cur.c.Close()
	return ok && !got.Closed()
}

// mochi still deletes the new connection of a client id when the old
// one's clean-up runs late (its check before, its delete after the new
// registration). When this fails, mochi orders them itself: drop the hook.
func TestMochiStillDropsTheNewClientOnAReconnect(t *testing.T) {
	if oldLeavesThenNewArrives(t, false) {
		t.Fatal("mochi kept the new connection: its clean-up no longer races a reconnect; remove gateway/takeover")
	}
	if !oldLeavesThenNewArrives(t, true) {
		t.Fatal("with the hook, the new connection was still dropped")
	}
}
