package fastpath_test

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/homebox/gateway/gateway/listeners"
)

// TestMochiStillDropsQoS0WhenAQueueIsFull runs mochi without our hook: a
// subscriber that does not read fills its socket, then its outbound queue,
// and mochi drops the messages after that instead of holding the publisher.
//
// When this fails, mochi pushes back on publishers upstream (mochi-mqtt/server
// #150 "Purpose of FanPool" chose drops over blocking; PR #160 keeps
// per-client write queues that drop, still open): drop the counting and
// waiting of mochi's way here (queue.go), keep the fast path.
func TestMochiStillDropsQoS0WhenAQueueIsFull(t *testing.T) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 8
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, srv.AddHook(new(auth.AllowHook), nil))
	l := listeners.NewMQTT(listeners.Config{ID: "bare", Address: "127.0.0.1:0"})
	must(t, srv.AddListener(l))
	must(t, srv.Serve())
	t.Cleanup(func() {
		l.Close(func(string) {}) // clients first: mochi's Close can deadlock (see gateway.Broker.Close)
		_ = srv.Close()
	})

	sub := dial(t, l.Address(), "asleep", dialOpts{rcvbuf: 4096})
	sub.subscribe("sensor/#", 0, false, 0)
	payload := make([]byte, 64<<10)
	// Bounded: past the socket buffers (a few MiB) and 8 queued packets,
	// every publish is dropped; 512 × 64 KiB is 32 MiB.
	for i := 0; i < 512 && atomic.LoadInt64(&srv.Info.MessagesDropped) == 0; i++ {
		must(t, srv.Publish("sensor/power", payload, false, 0))
	}
	if atomic.LoadInt64(&srv.Info.MessagesDropped) == 0 {
		t.Fatal("mochi queued 32 MiB for a subscriber that reads nothing without dropping: it pushes back now; drop our back-pressure on mochi's way")
	}
}
