package takeover

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/internal/testkit"
)

// gate holds the old connection's goroutine in OnDisconnect, inside the
// window where mochi has stopped the client and not yet deleted its
// session, until release is closed. connecting is closed when a second
// CONNECT for the id arrives.
type gate struct {
	mqtt.HookBase
	held, release, connecting chan struct{}
	connects                  atomic.Int32
}

func (g *gate) ID() string { return "gate" }
func (g *gate) Provides(b byte) bool {
	return b == mqtt.OnDisconnect || b == mqtt.OnConnect
}
func (g *gate) OnConnect(*mqtt.Client, packets.Packet) error {
	if g.connects.Add(1) == 2 {
		close(g.connecting)
	}
	return nil
}
func (g *gate) OnDisconnect(*mqtt.Client, error, bool) {
	select {
	case <-g.held:
		return
	default:
	}
	close(g.held)
	<-g.release
}

// reconnectRace connects id "x" with session expiry 0, subscribes,
// disconnects, and connects again with clean start 0 while the old
// connection's goroutine is held in the window. It returns the second
// CONNACK's session present flag. releaseAfterConnack says when the window ends:
// once the second CONNECT is in (mend), or after its CONNACK (bare mochi).
func reconnectRace(t *testing.T, mend, releaseAfterConnack bool) bool {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	g := &gate{held: make(chan struct{}), release: make(chan struct{}), connecting: make(chan struct{})}
	if err := s.AddHook(g, nil); err != nil {
		t.Fatal(err)
	}
	if mend {
		if err := s.AddHook(New(s, nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	connect := func(clean bool) (*paho5.Client, *paho5.Connack) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := paho5.NewClient(paho5.ClientConfig{Conn: conn})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		zero := uint32(0)
		ca, err := c.Connect(ctx, &paho5.Connect{ClientID: "x", CleanStart: clean, Properties: &paho5.ConnectProperties{SessionExpiryInterval: &zero}})
		if err != nil {
			t.Fatal(err)
		}
		return c, ca
	}
	old, _ := connect(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := old.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "t/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	_ = old.Disconnect(&paho5.Disconnect{})
	select {
	case <-g.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the old connection's OnDisconnect never ran")
	}
	if !releaseAfterConnack {
		go func() { <-g.connecting; close(g.release) }()
	}
	_, ca := connect(false)
	if releaseAfterConnack {
		close(g.release)
	}
	return ca.SessionPresent
}

func TestReconnectAfterDisconnectFindsNoSession(t *testing.T) {
	if reconnectRace(t, true, false) {
		t.Fatal("session present: the session that ended with its connection was resumed")
	}
}

// TestMochiStillResumesAnEndedSession runs bare mochi: a client id that
// connects again while the old connection's goroutine has stopped it (on
// its DISCONNECT with session expiry 0) but not yet deleted its session
// resumes that session. When this fails, mochi deletes such a session
// before it is found again: drop gateway/takeover. No upstream issue
// found (searched mochi-mqtt/server issues: "session expiry 0 reconnect
// session present"; #216 is about expiry 0 at disconnect).
func TestMochiStillResumesAnEndedSession(t *testing.T) {
	if !reconnectRace(t, false, true) {
		t.Fatal("mochi no longer resumes the ended session: drop gateway/takeover")
	}
}
