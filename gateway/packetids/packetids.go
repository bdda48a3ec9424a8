// Package packetids keeps a client's SUBSCRIBE and UNSUBSCRIBE packet
// identifiers apart from the broker's own.
//
// MQTT 2.2.1: client and server assign packet identifiers independently.
// mochi v2.7.9 keeps one table (cl.State.Inflight) for both directions and
// answers 0x91 "packet identifier in use" to every filter of a SUBSCRIBE
// or UNSUBSCRIBE whose id equals one of its own unacknowledged deliveries
// to that client. A persistent session that reconnects gets its queued
// messages with ids 1..N while its SUBSCRIBE uses id 1 (mosquitto_sub
// always does), so it is refused; Mosquitto grants it.
//
// The mend: when the id collides, the packet gets an id free in that table
// for mochi's check, and the SUBACK or UNSUBACK is given the client's own id
// back. Both happen on the client's reader goroutine, one packet at a time,
// so one pending substitution per client is all there is to keep. Nothing
// else keys on that id: retained messages sent after a SUBSCRIBE take fresh
// ids (NextPacketID). TestMochiStillAnswers0x91 fails once mochi separates
// the two id spaces, and then this package can go.
package packetids

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// swap is one pending substitution: the ack with id `used` is answered
// with the client's id `own`.
type swap struct {
	ack       byte // packets.Suback or packets.Unsuback
	used, own uint16
}

// Hook is the mend; register it like any mochi hook.
type Hook struct {
	mqtt.HookBase
	pending sync.Map // *mqtt.Client -> swap
}

// New returns the hook.
func New() *Hook { return &Hook{} }

// ID names the hook.
func (h *Hook) ID() string { return "packet-ids" }

// Provides says which events the hook takes.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode || b == mqtt.OnDisconnect
}

// OnPacketRead gives a colliding SUBSCRIBE or UNSUBSCRIBE a free id. It must
// be OnPacketRead: mochi checks an UNSUBSCRIBE's id before OnUnsubscribe.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	var ack byte
	switch pk.FixedHeader.Type {
	case packets.Subscribe:
		ack = packets.Suback
	case packets.Unsubscribe:
		ack = packets.Unsuback
	default:
		return pk, nil
	}
	// A new (UN)SUBSCRIBE means the last one is answered or was dropped.
	h.pending.Delete(cl)
	if pk.PacketID == 0 || cl.Net.Inline {
		return pk, nil // mochi refuses id 0 itself
	}
	if _, taken := cl.State.Inflight.Get(pk.PacketID); !taken {
		return pk, nil
	}
	free, ok := freeID(cl)
	if !ok {
		return pk, nil // 65,535 messages in flight: leave it to mochi
	}
	h.pending.Store(cl, swap{ack: ack, used: free, own: pk.PacketID})
	pk.PacketID = free
	return pk, nil
}

// OnPacketEncode puts the client's own id back on the ack.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Suback && pk.FixedHeader.Type != packets.Unsuback {
		return pk
	}
	v, ok := h.pending.Load(cl)
	if !ok {
		return pk
	}
	s := v.(swap)
	if s.ack == pk.FixedHeader.Type && s.used == pk.PacketID {
		h.pending.Delete(cl)
		pk.PacketID = s.own
	}
	return pk
}

// OnDisconnect forgets a substitution whose ack was never written.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.pending.Delete(cl) }

// freeID finds an id not in the client's inflight table, from the top down:
// mochi's own NextPacketID counts up from 1, so the top is the least likely
// to be taken by a delivery between here and mochi's check (which would
// only give back mochi's 0x91).
func freeID(cl *mqtt.Client) (uint16, bool) {
	for id := uint16(65535); id > 0; id-- {
		if _, taken := cl.State.Inflight.Get(id); !taken {
			return id, true
		}
	}
	return 0, false
}
