// Package expiry keeps the broker's retain-forever setting off the wire.
// mochi ends every message's life at MaximumMessageExpiryInterval, even one
// whose publisher set no expiry, and then tells MQTT 5 subscribers the
// time left as a Message Expiry Interval: with the box's "forever" bound
// (100 years) they saw 3,153,600,000 s on messages that must carry none
// (MQTT 5, 3.3.2.3.3). Forever is that bound; a message whose life is the
// whole bound had no expiry from its publisher (one that asked for longer
// is clamped to it, and means "never" just the same).
package expiry

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Forever is the broker's MaximumMessageExpiryInterval: 100 years.
const Forever = 100 * 365 * 24 * 3600

// Publisher says whether pk's expiry is one its publisher set.
func Publisher(pk *packets.Packet) bool {
	return pk.Expiry > 0 && pk.Expiry-pk.Created < Forever
}

// Hook clears the interval mochi derived from the bound before a PUBLISH
// is encoded (mochi's path; the fast path asks Publisher itself).
type Hook struct{ mqtt.HookBase }

func (h *Hook) ID() string { return "expiry-on-the-wire" }

func (h *Hook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *Hook) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish && pk.Expiry > 0 && !Publisher(&pk) {
		pk.Properties.MessageExpiryInterval = 0
	}
	return pk
}
