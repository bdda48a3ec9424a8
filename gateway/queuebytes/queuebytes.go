// Package queuebytes applies max_queued_bytes: a session may hold QoS 1
// and 2 messages up to this many payload bytes, and the next ones are
// dropped, as Mosquitto drops them. mochi bounds a session's queue by
// count only (max_queued_messages).
//
// mochi has no hook before it adds a message to a session's queue, so the
// hook takes it out again from OnQosPublish, which mochi calls right after
// adding it. That works while the client is disconnected: mochi then stops
// there. For a connected client mochi writes the message next; Mosquitto
// too sends at once what fits in flight, so nothing is dropped then. Left
// to max_queued_messages alone: an MQTT 5 client whose Receive Maximum is
// taken by messages waiting (connected, or kept while away), whose next
// messages mochi holds itself after the hooks ran; one the hook took out
// then stays with mochi, though not in the store.
//
// Bytes are counted as Mosquitto counts them: payload bytes of the QoS 1/2
// messages the session holds, in flight or waiting; a message is let in
// while the count is below the limit, so the one that crosses it stays.
package queuebytes

import (
	"log/slog"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Config is what the hook needs.
type Config struct {
	Server *mqtt.Server
	Limit  int64 // max_queued_bytes, > 0
	// Dropped tells the store a message it was given is gone (the storage
	// hook's OnQosDropped); nil without persistence. The hook must come
	// after the storage hook, which saves the message first.
	Dropped func(cl *mqtt.Client, pk packets.Packet)
	Logger  *slog.Logger
}

// Hook counts each session's queued bytes and drops what is over.
type Hook struct {
	mqtt.HookBase
	c Config

	mu       sync.Mutex
	sessions map[string]*session // by client id, as mochi keeps sessions
}

// session is what the hook knows of one session's queue: the payload size
// of each QoS 1/2 PUBLISH in it, by packet id.
type session struct {
	sizes map[uint16]int64
	total int64
	other int // entries of mochi's queue that are not PUBLISH (its PUBRECs of inbound QoS 2)
}

// New returns the hook.
func New(c Config) *Hook {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return &Hook{c: c, sessions: map[string]*session{}}
}

// ID names the hook.
func (h *Hook) ID() string { return "mosquitto-max-queued-bytes" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// OnQosPublish counts a message mochi added to a session's queue, or takes
// it out again when the session was already at the limit and its client is
// away. mochi also calls it for messages already counted (resends on
// reconnect) and for its own PUBREC of an inbound QoS 2 publish.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return
	}
	size := int64(len(pk.Payload))
	h.mu.Lock()
	s := h.sessionLocked(cl, pk.PacketID)
	if old, counted := s.sizes[pk.PacketID]; counted {
		s.total += size - old
		s.sizes[pk.PacketID] = size
		h.mu.Unlock()
		return
	}
	drop := s.total >= h.c.Limit && (cl.Closed() || cl.Net.Conn == nil)
	if !drop {
		s.sizes[pk.PacketID] = size
		s.total += size
	}
	h.mu.Unlock()
	if !drop {
		return
	}
	if cl.State.Inflight.Delete(pk.PacketID) {
		// mochi takes one of an MQTT 5 client's Receive Maximum for the
		// message right after this hook; no acknowledgement will give it
		// back, and at 0 mochi would keep every next message itself.
		cl.State.Inflight.IncreaseSendQuota()
		atomic.AddInt64(&h.c.Server.Info.Inflight, -1)
		atomic.AddInt64(&h.c.Server.Info.InflightDropped, 1)
		if h.c.Dropped != nil {
			h.c.Dropped(cl, pk)
		}
		h.c.Logger.Debug("message dropped: max_queued_bytes reached", "client", cl.ID, "topic", pk.TopicName, "bytes", size)
	}
}

// sessionLocked is the count of cl's session, made again from mochi's
// queue when it does not hold what mochi holds besides the message id
// being added (a store loaded at start, a queue mochi cleared): an exact
// count, paid for only when the two disagree.
func (h *Hook) sessionLocked(cl *mqtt.Client, adding uint16) *session {
	s := h.sessions[cl.ID]
	if s == nil {
		s = &session{sizes: map[uint16]int64{}}
		h.sessions[cl.ID] = s
	}
	want := cl.State.Inflight.Len()
	if _, counted := s.sizes[adding]; !counted {
		want-- // the message being added is in mochi's queue already
	}
	if len(s.sizes)+s.other == want {
		return s
	}
	s.sizes, s.total, s.other = map[uint16]int64{}, 0, 0
	for _, m := range cl.State.Inflight.GetAll(false) {
		switch {
		case m.PacketID == adding:
		case m.FixedHeader.Type == packets.Publish:
			s.sizes[m.PacketID] = int64(len(m.Payload))
			s.total += int64(len(m.Payload))
		default:
			s.other++
		}
	}
	return s
}

// OnQosComplete forgets a message the client acknowledged.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.forget(cl.ID, pk.PacketID) }

// OnQosDropped forgets a message mochi dropped (expired, session cleared).
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.forget(cl.ID, pk.PacketID) }

// OnDisconnect forgets a session that ends with its connection.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.forgetSession(cl.ID)
	}
}

// OnClientExpired forgets a session mochi expired.
func (h *Hook) OnClientExpired(cl *mqtt.Client) { h.forgetSession(cl.ID) }

func (h *Hook) forget(id string, packetID uint16) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.sessions[id]; s != nil {
		if size, ok := s.sizes[packetID]; ok {
			s.total -= size
			delete(s.sizes, packetID)
		}
		if len(s.sizes) == 0 {
			delete(h.sessions, id) // made again, from mochi's queue, when needed
		}
	}
}

func (h *Hook) forgetSession(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions, id)
}
