// Package inorder keeps a publisher's messages in order when a persistent
// session's queue is sent again.
//
// mochi v2.7.9 resends a session's queued messages in the order of
// Inflight.GetAll, which sorts by uint16(Created): whole seconds, truncated.
// Messages queued within one second come out in map order ("on, off" may
// arrive as "off, on"), and the order also breaks each time the 16-bit
// value wraps. The broker's code is mochi's, so the fix sits outside it, in
// this hook: just before mochi inherits an old session (OnSessionEstablish),
// it takes the queued PUBLISH packets out of the old session's inflight map,
// leaving the store untouched; once the CONNACK has gone out
// (OnSessionEstablished) it puts them into the new session in the order
// they were queued and sends them, as mochi's own resend would.
//
// No upstream issue found for this; TestMochiStillSortsQueuedBySixteenBitSeconds
// fails once mochi keeps the order, and this package can then go.
package inorder

import (
	"log/slog"
	"slices"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Hook is the mochi hook; add it with server.AddHook(inorder.New(server, log), nil).
type Hook struct {
	mqtt.HookBase
	server *mqtt.Server
	log    *slog.Logger

	mu      sync.Mutex
	pending map[*mqtt.Client][]packets.Packet // taken at establish, sent at established
}

// New returns the hook for server.
func New(server *mqtt.Server, log *slog.Logger) *Hook {
	if log == nil {
		log = slog.Default()
	}
	return &Hook{server: server, log: log, pending: map[*mqtt.Client][]packets.Packet{}}
}

// ID names the hook.
func (h *Hook) ID() string { return "in-order-resend" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablish || b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

// OnSessionEstablish runs before mochi inherits the old session. It takes
// the old session's queued publishes so that mochi's own resend does not
// send them out of order.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	existing, ok := h.server.Clients.Get(cl.ID)
	if !ok || existing == cl {
		return
	}
	// The same test mochi uses: a clean start discards the old session.
	if pk.Connect.Clean || (existing.Properties.Clean && existing.Properties.ProtocolVersion < 5) {
		return
	}
	var queued []packets.Packet
	for _, m := range existing.State.Inflight.GetAll(false) {
		if m.FixedHeader.Type == packets.Publish {
			queued = append(queued, m)
		}
	}
	if len(queued) == 0 {
		return
	}
	// Delete without hooks: the messages stay in the store, and the
	// broker's inflight count stays right because they come back below.
	for _, m := range queued {
		existing.State.Inflight.Delete(m.PacketID)
	}
	SortQueued(queued)
	h.mu.Lock()
	h.pending[cl] = queued
	h.mu.Unlock()
}

// OnSessionEstablished runs after the CONNACK and mochi's own resend: the
// taken messages go into the new session and out to the client, in order.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	queued := h.pending[cl]
	delete(h.pending, cl)
	h.mu.Unlock()

	for i, m := range queued {
		cl.State.Inflight.Set(m)
		m.FixedHeader.Dup = true // a resend, as mochi marks it
		if err := cl.WritePacket(m); err != nil {
			// The rest stay queued in the session and the store; the
			// next connection sends them.
			for _, rest := range queued[i+1:] {
				cl.State.Inflight.Set(rest)
			}
			h.log.Debug("resend in order stopped", "client", cl.ID, "error", err)
			return
		}
	}
}

// OnDisconnect forgets what a connection that failed between the two
// establish events had taken, after giving it back to the session.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	queued, ok := h.pending[cl]
	delete(h.pending, cl)
	h.mu.Unlock()
	if ok {
		for _, m := range queued {
			cl.State.Inflight.Set(m)
		}
	}
}

// SortQueued orders one session's queued messages as they were queued: by
// the second they were created, then by packet id. Packet ids are handed
// out in sequence and wrap from 65535 to 1, so the ids of one second are a
// circular run: it starts just after the largest gap between them.
func SortQueued(msgs []packets.Packet) {
	slices.SortStableFunc(msgs, func(a, b packets.Packet) int {
		if a.Created != b.Created {
			if a.Created < b.Created {
				return -1
			}
			return 1
		}
		return int(a.PacketID) - int(b.PacketID)
	})
	for start := 0; start < len(msgs); {
		end := start + 1
		for end < len(msgs) && msgs[end].Created == msgs[start].Created {
			end++
		}
		rotateAfterLargestGap(msgs[start:end])
		start = end
	}
}

// rotateAfterLargestGap takes ids sorted ascending and rotates them so the
// run starts after the widest circular gap (where the counter wrapped).
func rotateAfterLargestGap(run []packets.Packet) {
	if len(run) < 2 {
		return
	}
	const span = 1 << 16
	// The gap from the last id round to the first one.
	bestGap := int(run[0].PacketID) + span - int(run[len(run)-1].PacketID)
	bestStart := 0
	for i := 1; i < len(run); i++ {
		if gap := int(run[i].PacketID) - int(run[i-1].PacketID); gap > bestGap {
			bestGap, bestStart = gap, i
		}
	}
	if bestStart == 0 {
		return
	}
	rotated := append(slices.Clone(run[bestStart:]), run[:bestStart]...)
	copy(run, rotated)
}
