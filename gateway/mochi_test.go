package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/internal/testkit"
)

// These tests run bare mochi, without the mends in broker.go, and pass
// while mochi still has the fault each mend is for. One failing means mochi
// changed upstream: check, then drop the mend it names.

func bareMochi(t *testing.T, caps *mqtt.Capabilities) *mqtt.Server {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestMochiStillExpiresRetainedAfter24h: mochi's default cap on message
// expiry is a day, and its expiry tick (every second) deletes a retained
// message older than that although its publisher set no expiry.
//
// When this fails, mochi keeps messages without an expiry by default
// (mochi-mqtt/server #444 asked why a day; PR #315, for #306, made an
// unlimited cap possible, which we do not use as it also stops honouring
// publisher expiries): drop retainForever in broker.go.
func TestMochiStillExpiresRetainedAfter24h(t *testing.T) {
	srv := bareMochi(t, mqtt.NewDefaultServerCapabilities())
	if got := srv.Options.Capabilities.MaximumMessageExpiryInterval; got != 24*3600 {
		t.Fatalf("mochi's MaximumMessageExpiryInterval is %d now, not a day: see whether retainForever is still needed", got)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	srv.Topics.RetainMessage(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName:   "homeassistant/sensor/power/config", Payload: []byte("{}"),
		Created: time.Now().Unix() - 24*3600 - 1,
	})
	testkit.WaitFor(t, 1900*time.Millisecond, "mochi to expire a day-old retained message nobody set an expiry on", func() bool {
		return len(srv.Topics.Messages("homeassistant/#")) == 0
	})
}

// TestMochiStillInheritsPropertiesOnAck: by default mochi copies a QoS 1
// PUBLISH's user properties into its PUBACK (MQTT 5 says they are the
// sender's own).
//
// When this fails, mochi no longer inherits them by default (no upstream
// issue found; searched mochi-mqtt/server issues for "puback user
// properties", "NoInheritedPropertiesOnAck"; mochi's own compatibility flag
// says "paho - spec violation"): drop NoInheritedPropertiesOnAck in
// broker.go.
func TestMochiStillInheritsPropertiesOnAck(t *testing.T) {
	srv := bareMochi(t, mqtt.NewDefaultServerCapabilities())
	l := mochilisteners.NewTCP(mochilisteners.Config{ID: "bare", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close(func(string) {})
		_ = srv.Close()
	})
	conn, err := net.DialTimeout("tcp", l.Address(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: "pub", Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "pub", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	resp, err := c.Publish(ctx, &paho.Publish{
		Topic: "light/kitchen", QoS: 1, Payload: []byte("on"),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "source", Value: "wall-switch"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Properties == nil || resp.Properties.User.Get("source") != "wall-switch" {
		t.Fatalf("mochi's PUBACK carries %+v: it no longer copies the PUBLISH's user properties; drop NoInheritedPropertiesOnAck", resp.Properties)
	}
}

// TestMochiStillDeadlocksInGetByListener: Clients.GetByListener, which
// mochi's Server.Close uses to find a listener's clients, read-locks the
// client list twice (the second time in Len); a client added or removed
// between the two locks waits for the first, and the second waits behind
// it: both hang for good, and so would our stop.
//
// When this fails, mochi fixed upstream mochi-mqtt/server #488 (PR #489):
// drop the disconnect-first and ClientsWg wait in Broker.Close and let
// mochi's Close do it.
func TestMochiStillDeadlocksInGetByListener(t *testing.T) {
	srv := bareMochi(t, mqtt.NewDefaultServerCapabilities())
	// Not closed: a deadlocked client list would hang Close. The two
	// goroutines below stay blocked until the test binary exits.
	srv.Clients.Add(&mqtt.Client{ID: "a"})
	var reads, writes atomic.Int64
	var stop atomic.Bool // ends the loops if they never hang (mochi fixed)
	t.Cleanup(func() { stop.Store(true) })
	go func() {
		for !stop.Load() {
			srv.Clients.GetByListener("bare")
			reads.Add(1)
		}
	}()
	go func() {
		for !stop.Load() {
			srv.Clients.Add(&mqtt.Client{ID: "b"})
			srv.Clients.Delete("b")
			writes.Add(1)
		}
	}()
	// Hung: neither side moves for 100 ms. Bounded by 1.5 s.
	deadline := time.Now().Add(1500 * time.Millisecond)
	r, w := reads.Load(), writes.Load()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		nr, nw := reads.Load(), writes.Load()
		if nr == r && nw == w {
			return // deadlocked, as mochi v2.7.9 does
		}
		r, w = nr, nw
	}
	t.Fatalf("%d GetByListener calls and %d client changes ran together for 1.5 s without a deadlock: mochi #488 may be fixed; drop Broker.Close's own disconnects", r, w)
}
