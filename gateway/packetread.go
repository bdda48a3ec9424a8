package gateway

import (
	"errors"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// readChain is the one hook mochi calls on every packet it reads, in place
// of each hook that reads packets (packetids, mosquittowire, the bridges'
// inbound hook). mochi hands every such hook the packet by value and takes
// it back by value, for every packet: with three of them, fan-in lost
// ~12 % (measured, docs/BENCHMARKS.md). The chain copies once, and lets a
// plain QoS 0 PUBLISH through without calling any of them: none acts on
// one unless its topic starts with "$" (the bridges' state notices).
type readChain struct {
	mqtt.HookBase
	readers []mqtt.Hook
}

func (c *readChain) ID() string { return "packet-read-chain" }

func (c *readChain) Provides(b byte) bool { return b == mqtt.OnPacketRead }

// OnPacketRead runs the readers in order, as mochi would: a reader's
// ErrRejectPacket ends the client, other errors leave the packet as it was.
func (c *readChain) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 0 && !strings.HasPrefix(pk.TopicName, "$") {
		return pk, nil
	}
	for _, r := range c.readers {
		npk, err := r.OnPacketRead(cl, pk)
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

// withoutRead is a reader hook as mochi sees it once it is in the chain:
// everything but OnPacketRead.
type withoutRead struct{ mqtt.Hook }

func (w withoutRead) Provides(b byte) bool { return b != mqtt.OnPacketRead && w.Hook.Provides(b) }

// addReader adds h to mochi for its other events and to the chain for
// the packets it reads.
func (b *Broker) addReader(h mqtt.Hook, config any) error {
	if h.Provides(mqtt.OnPacketRead) {
		b.reads.readers = append(b.reads.readers, h)
		return b.server.AddHook(withoutRead{h}, config)
	}
	return b.server.AddHook(h, config)
}
