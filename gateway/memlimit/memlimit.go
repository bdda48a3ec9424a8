// Package memlimit applies mosquitto.conf's memory_limit. Go cannot refuse
// one allocation as Mosquitto's allocator does, so the heap is sampled:
// while it is over the limit a new client is refused ("server
// unavailable") and a publisher's message is dropped and the publisher
// disconnected, as Mosquitto does when an incoming message cannot be
// allocated. The Go runtime is also given the limit, so it collects
// harder near it. The hook is only installed when the option is set.
package memlimit

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sampleEvery is how often the heap is measured: reading it costs a few
// microseconds, far too much for every publish.
const sampleEvery = 100 * time.Millisecond

const heapMetric = "/memory/classes/heap/objects:bytes"

// Hook refuses work while the heap is over Limit bytes.
type Hook struct {
	mqtt.HookBase
	server *mqtt.Server
	limit  atomic.Uint64
	over   atomic.Bool
	log    *slog.Logger
	stop   context.CancelFunc
}

// New returns the hook, having measured the heap once; Stop ends its
// sampling.
func New(server *mqtt.Server, limit uint64, log *slog.Logger) *Hook {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hook{server: server, log: log, stop: cancel}
	h.limit.Store(limit)
	debug.SetMemoryLimit(int64(min(limit, 1<<62)))
	h.sample()
	go h.run(ctx)
	return h
}

// Heap is the bytes of heap objects now.
func Heap() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

func (h *Hook) sample() {
	limit := h.limit.Load()
	over := Heap() > limit
	if over != h.over.Swap(over) {
		h.log.Warn(fmt.Sprintf("memory_limit: heap %s the limit", map[bool]string{true: "over", false: "back under"}[over]), "limit", limit)
	}
}

func (h *Hook) run(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.sample()
		}
	}
}

// ID names the hook.
func (h *Hook) ID() string { return "mosquitto-memory-limit" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnPublish || b == mqtt.OnStopped
}

// OnStopped ends the sampling.
func (h *Hook) OnStopped() { h.stop() }

// errOverLimit is returned to mochi after the refusal CONNACK is sent.
var errOverLimit = fmt.Errorf("memory_limit reached")

// OnConnect refuses new clients while over the limit.
func (h *Hook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if !h.over.Load() || cl.Net.Inline {
		return nil
	}
	if err := h.server.SendConnack(cl, packets.ErrServerUnavailable, false, nil); err != nil {
		return fmt.Errorf("refuse client: %w", err)
	}
	return errOverLimit
}

// OnPublish drops the message and disconnects its publisher while over
// the limit.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !h.over.Load() || cl.Net.Inline {
		return pk, nil
	}
	h.log.Info("message dropped and client disconnected: over memory_limit", "client", cl.ID, "topic", pk.TopicName)
	_ = h.server.DisconnectClient(cl, packets.ErrQuotaExceeded)
	return pk, packets.ErrRejectPacket
}
