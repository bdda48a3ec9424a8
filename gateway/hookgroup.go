package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hookGroup runs the small mends of mochi's connection and packet handling
// (takeover, packetids, heldback, mosquittowire) as one mochi hook. mochi
// asks every hook, for every event of every packet, whether it provides
// the event, and hands each packet-reading hook the packet by value and
// takes it back by value: as four more hooks they cost fan-in 5-12 %
// (measured, docs/BENCHMARKS.md). As one, for the few events they handle,
// a plain QoS 0 PUBLISH passes them for one array look-up, and is read by
// none of them (none acts on one unless its topic starts with "$"); the
// group knows which packets its members look at, and hands them only those.
type hookGroup struct {
	mqtt.HookBase
	by [256][]mqtt.Hook // per event, the members that handle it, in order
}

// groupEvents are the events a member may handle.
var groupEvents = []byte{mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
	mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnPacketSent}

func newHookGroup() *hookGroup { return &hookGroup{} }

func (g *hookGroup) ID() string { return "gateway-mends" }

func (g *hookGroup) Provides(b byte) bool { return len(g.by[b]) > 0 }

// add makes h a member; it refuses a hook that handles another event.
func (g *hookGroup) add(h mqtt.Hook) error {
	for b := range 256 {
		if h.Provides(byte(b)) && !slices.Contains(groupEvents, byte(b)) {
			return fmt.Errorf("hook %s: event %d is not run by the group", h.ID(), b)
		}
	}
	for _, e := range groupEvents {
		if h.Provides(e) {
			g.by[e] = append(g.by[e], h)
		}
	}
	return nil
}

// addReader makes h read packets in the group; mochi keeps it for its
// other events, in its own place (withoutRead).
func (g *hookGroup) addReader(h mqtt.Hook) {
	g.by[mqtt.OnPacketRead] = append(g.by[mqtt.OnPacketRead], h)
}

func (g *hookGroup) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	for _, h := range g.by[mqtt.OnSessionEstablish] {
		h.OnSessionEstablish(cl, pk)
	}
}

func (g *hookGroup) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	for _, h := range g.by[mqtt.OnSessionEstablished] {
		h.OnSessionEstablished(cl, pk)
	}
}

func (g *hookGroup) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	for _, h := range g.by[mqtt.OnDisconnect] {
		h.OnDisconnect(cl, err, expire)
	}
}

// OnPacketRead runs the readers in order, as mochi would: a reader's
// ErrRejectPacket ends the client, other errors leave the packet as it was.
func (g *hookGroup) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 0 && !strings.HasPrefix(pk.TopicName, "$") {
		return pk, nil
	}
	for _, h := range g.by[mqtt.OnPacketRead] {
		npk, err := h.OnPacketRead(cl, pk)
		if err != nil {
			if errors.Is(err, packets.ErrRejectPacket) {
				return pk, err
			}
			continue
		}
		pk = npk
	}
	return pk, nil
}

// OnPacketEncode lets every PUBLISH through: the members rewrite answers
// (CONNACK, acks, DISCONNECT), never a delivery.
func (g *hookGroup) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish {
		return pk
	}
	for _, h := range g.by[mqtt.OnPacketEncode] {
		pk = h.OnPacketEncode(cl, pk)
	}
	return pk
}

// OnPacketSent passes on only deliveries mochi had held back (Expiry -1):
// the one kind of sent packet a member (heldback) looks at.
func (g *hookGroup) OnPacketSent(cl *mqtt.Client, pk packets.Packet, b []byte) {
	if pk.FixedHeader.Type != packets.Publish || pk.Expiry >= 0 {
		return
	}
	for _, h := range g.by[mqtt.OnPacketSent] {
		h.OnPacketSent(cl, pk, b)
	}
}

// withoutRead is a hook as mochi sees it once the group reads packets for
// it: everything but OnPacketRead.
type withoutRead struct{ mqtt.Hook }

func (w withoutRead) Provides(b byte) bool { return b != mqtt.OnPacketRead && w.Hook.Provides(b) }
