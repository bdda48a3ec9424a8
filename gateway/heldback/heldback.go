// Package heldback keeps a QoS 1/2 delivery in flight when mochi sends it
// late, after the client's Receive Maximum had made mochi hold it back.
//
// mochi v2.7.9 holds a delivery back (in the session's in-flight table,
// marked Expiry -1) while the client's send quota is used up. After the
// client acknowledges something, mochi sends the next held-back delivery
// and then deletes it from the table, as if it were acknowledged already
// (server.go, after OnPacketProcessed). The client's PUBACK for it then
// finds nothing: the store keeps it for ever and, if the client goes away
// first, the message is never sent again (measured: an MQTT 5 client with
// Receive Maximum 1 that disconnects after the second message lost it;
// Mosquitto resends it). No upstream issue found (searched mochi-mqtt/server
// issues: "NextImmediate delete inflight", "receive maximum message lost").
//
// The mend notices such a late send (OnPacketSent: a QoS 1/2 PUBLISH still
// marked Expiry -1) and puts the delivery back in the table, unless its id
// was taken meanwhile, at the first of: the client's next packet, its
// disconnect (both on the goroutine of mochi's delete, after it), or a new
// connection taking its session over. TestMochiStillDeletesWhatItSendsLate
// fails once mochi keeps it.
package heldback

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Hook is the mend as a mochi hook.
type Hook struct {
	mqtt.HookBase
	server *mqtt.Server
	late   sync.Map // *mqtt.Client -> packets.Packet, the delivery sent late
}

// New returns the hook for server.
func New(server *mqtt.Server) *Hook { return &Hook{server: server} }

// ID names the hook.
func (h *Hook) ID() string { return "held-back-deliveries" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnPacketSent || b == mqtt.OnPacketRead || b == mqtt.OnDisconnect || b == mqtt.OnSessionEstablish
}

// OnPacketSent notes a held-back delivery as mochi sends it.
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 && pk.Expiry < 0 {
		h.late.Store(cl, pk)
	}
}

// OnPacketRead puts the late delivery back before mochi handles the
// client's next packet (its PUBACK, most likely).
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.restore(cl)
	return pk, nil
}

// OnDisconnect puts it back before mochi keeps or ends the session.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.restore(cl) }

// OnSessionEstablish puts it back before a new connection with the same id
// takes the session over: mochi copies the old connection's table then,
// while the old connection may still wait for a packet that never comes.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if old, ok := h.server.Clients.Get(cl.ID); ok && old != cl {
		h.restore(old)
	}
}

func (h *Hook) restore(cl *mqtt.Client) {
	v, ok := h.late.LoadAndDelete(cl)
	if !ok {
		return
	}
	pk := v.(packets.Packet)
	if _, taken := cl.State.Inflight.Get(pk.PacketID); taken {
		return // still there (a resend on reconnect), or the id is another's now
	}
	// A plain in-flight entry again: no hold-back mark, the publisher's
	// expiry if it set one (mochi's -1 replaced it).
	pk.Expiry = 0
	if e := pk.Properties.MessageExpiryInterval; e > 0 {
		pk.Expiry = pk.Created + int64(e)
	}
	if cl.State.Inflight.Set(pk) {
		atomic.AddInt64(&h.server.Info.Inflight, 1)
	}
}
