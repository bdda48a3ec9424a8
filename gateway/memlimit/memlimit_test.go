package memlimit

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/internal/testkit"
)

// TestPublisherOverTheLimitIsDisconnected: a client connected while under
// the limit; once the heap is over it, its next PUBLISH is dropped and it
// is disconnected (MQTT 5: DISCONNECT 0x97), as Mosquitto does when it
// cannot allocate an incoming message.
func TestPublisherOverTheLimitIsDisconnected(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	h := New(srv, 1<<62, nil) // far above the heap: under the limit
	addr := testkit.ServeMochi(t, srv, h, new(auth.AllowHook))

	got := make(chan []byte, 1)
	if err := srv.Subscribe("t/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) { got <- pk.Payload }); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	gone := make(chan byte, 1)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) { gone <- d.ReasonCode }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "p", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "t/a", QoS: 0, Payload: []byte("under")}); err != nil {
		t.Fatal(err)
	}
	if p := <-got; string(p) != "under" {
		t.Fatalf("got %q", p)
	}

	h.limit.Store(1) // the next sample finds the heap over it
	testkit.WaitFor(t, 5*time.Second, "the sampler to see the heap over the limit", h.over.Load)
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "t/a", QoS: 0, Payload: []byte("over")}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-gone:
		if code != 0x97 {
			t.Fatalf("DISCONNECT %#x, want 0x97 (quota exceeded)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher was not disconnected")
	}
	select {
	case p := <-got:
		t.Fatalf("a message over the limit was delivered: %q", p)
	default:
	}
}
