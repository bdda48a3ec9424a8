// Package packetids keeps the packet identifiers a client assigns apart
// from the ones the broker assigns to its deliveries to that client.
//
// MQTT 2.2.1: client and server assign packet identifiers independently.
// mochi v2.7.9 keeps one table (cl.State.Inflight) for both directions, so
// a client's id equal to one of the broker's unacknowledged deliveries to
// it is taken for the broker's own:
//   - a SUBSCRIBE or UNSUBSCRIBE is answered 0x91 "packet identifier in use"
//     on every filter. A persistent session that reconnects gets its queued
//     messages with ids 1..N while its SUBSCRIBE uses id 1 (mosquitto_sub
//     always does), so it is refused; Mosquitto grants it.
//   - a QoS 1 or 2 PUBLISH deletes the broker's delivery from the table
//     without giving back its send quota: the delivery is never resent, and
//     after Receive Maximum such collisions an MQTT 5 client gets no more
//     QoS 1/2 messages. A QoS 2 PUBLISH's PUBREC entry then takes the slot,
//     and the client's PUBACK of the delivery deletes that instead.
//
// The mend: a colliding packet gets an id free in the table before mochi
// sees it (OnPacketRead: mochi checks an UNSUBSCRIBE's id before
// OnUnsubscribe), and the acks mochi writes for it (SUBACK, UNSUBACK,
// PUBACK; PUBREC and PUBCOMP for QoS 2) are given the client's own id back.
// A QoS 2 publish keeps its substitute until its PUBCOMP, so that its
// PUBREL (and a resent PUBLISH) find it. Nothing else keys on these ids:
// mochi's deliveries take fresh ones (NextPacketID skips what is in the
// table). The substitutes live as long as the connection: a QoS 2 flow a
// client leaves half done over a reconnect keeps mochi's behaviour.
// TestMochiStillTakesClientIDsForItsOwn fails once mochi separates the two
// id spaces, and then this package can go.
package packetids

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Hook is the mend; register it like any mochi hook.
type Hook struct {
	mqtt.HookBase
	clients sync.Map // *mqtt.Client -> *ids, only for clients that collided
}

// ids are one connection's substitutions. The reader goroutine adds them;
// acks are encoded there too, but deliveries are encoded elsewhere.
type ids struct {
	mu sync.Mutex
	// ack: the one answer of the packet being handled (mochi answers a
	// SUBSCRIBE, UNSUBSCRIBE or PUBLISH before it reads the next packet).
	ack swap
	// qos2: the client's id of an unfinished QoS 2 publish -> its substitute.
	qos2 map[uint16]uint16
}

// swap says: the ack of type typ with id used goes out with id own.
type swap struct {
	typ       byte // 0: none
	used, own uint16
}

// New returns the hook.
func New() *Hook { return &Hook{} }

// ID names the hook.
func (h *Hook) ID() string { return "packet-ids" }

// Provides says which events the hook takes.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode || b == mqtt.OnDisconnect
}

// OnPacketRead gives a client's packet whose id collides a free one.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || pk.PacketID == 0 { // mochi refuses a missing id itself
		return pk, nil
	}
	var ack byte
	switch pk.FixedHeader.Type {
	case packets.Subscribe:
		ack = packets.Suback
	case packets.Unsubscribe:
		ack = packets.Unsuback
	case packets.Publish:
		ack = packets.Puback
		if pk.FixedHeader.Qos == 2 {
			ack = packets.Pubrec
		}
	case packets.Pubrel:
		ack = packets.Pubcomp
	default:
		return pk, nil
	}
	s := h.state(cl, false)
	if s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.ack = swap{} // a new packet: the last one is answered or was dropped
		if used, ok := s.qos2[pk.PacketID]; ok && (ack == packets.Pubrec || ack == packets.Pubcomp) {
			// The PUBREL, or a resend, of a QoS 2 publish given a substitute.
			s.ack = swap{typ: ack, used: used, own: pk.PacketID}
			pk.PacketID = used
			return pk, nil
		}
	}
	if ack == packets.Pubcomp || !h.collides(cl, s, pk) {
		return pk, nil
	}
	free, ok := freeID(cl)
	if !ok {
		return pk, nil // 65,535 ids in flight: leave it to mochi
	}
	if s == nil {
		s = h.state(cl, true)
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	s.ack = swap{typ: ack, used: free, own: pk.PacketID}
	if ack == packets.Pubrec {
		if s.qos2 == nil {
			s.qos2 = map[uint16]uint16{}
		}
		s.qos2[pk.PacketID] = free
	}
	pk.PacketID = free
	return pk, nil
}

// collides reports whether mochi would take pk's id for one of its own
// flows: any entry for a (UN)SUBSCRIBE; for a PUBLISH, a delivery of the
// broker's (PUBLISH or PUBREL entries) or an entry under a substitute. A
// PUBREC entry under the client's own id is its own unfinished QoS 2
// publish, which mochi handles as such.
func (h *Hook) collides(cl *mqtt.Client, s *ids, pk packets.Packet) bool {
	in, taken := cl.State.Inflight.Get(pk.PacketID)
	if !taken || pk.FixedHeader.Type != packets.Publish {
		return taken
	}
	switch in.FixedHeader.Type {
	case packets.Publish, packets.Pubrel:
		return true
	}
	if s != nil {
		for _, used := range s.qos2 {
			if used == pk.PacketID {
				return true
			}
		}
	}
	return false
}

// OnPacketEncode puts the client's own id back on an ack.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Suback, packets.Unsuback, packets.Puback, packets.Pubrec, packets.Pubcomp:
	default:
		return pk
	}
	s := h.state(cl, false)
	if s == nil {
		return pk
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ack.typ != pk.FixedHeader.Type || s.ack.used != pk.PacketID {
		return pk
	}
	if pk.FixedHeader.Type == packets.Pubcomp {
		delete(s.qos2, s.ack.own)
	}
	pk.PacketID = s.ack.own
	s.ack = swap{}
	return pk
}

// OnDisconnect forgets the connection's substitutions.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.clients.Delete(cl) }

func (h *Hook) state(cl *mqtt.Client, create bool) *ids {
	if v, ok := h.clients.Load(cl); ok {
		return v.(*ids)
	}
	if !create {
		return nil
	}
	v, _ := h.clients.LoadOrStore(cl, &ids{})
	return v.(*ids)
}

// freeID finds an id not in the client's inflight table, from the top down:
// mochi's own NextPacketID counts up from 1, so the top is the least likely
// to be taken by a delivery between here and mochi's check (which would
// only give back mochi's answer).
func freeID(cl *mqtt.Client) (uint16, bool) {
	for id := uint16(65535); id > 0; id-- {
		if _, taken := cl.State.Inflight.Get(id); !taken {
			return id, true
		}
	}
	return 0, false
}
