// Package traffic splits the broker's message counts by whose they are: the
// owner's clients, the box's own clients (the console's statistics,
// discovery, the topic explorer: they log in with the box's service
// account), and the broker's own $SYS topics. Mosquitto's $SYS counters
// lump them together, so an idle box showed "2 in / 4 out" and "2 clients"
// that were all its own.
package traffic

import (
	"strconv"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Whose a message is.
type Whose uint8

const (
	Owner Whose = iota // the owner's clients and devices
	Box                // the box's own clients
	Sys                // a $ topic (the broker's $SYS figures)
)

// Counts are the split message counters, since the broker started.
type Counts struct {
	received, sent [3]atomic.Int64
	// IsBox tells the box's own clients by their login; nil: none are.
	IsBox func(username string) bool
}

// Of says whose a message on topic from or to cl is: a $ topic is the
// broker's whoever sends or reads it; otherwise the client decides.
func (c *Counts) Of(cl *mqtt.Client, topic string) Whose {
	switch {
	case strings.HasPrefix(topic, "$"):
		return Sys
	case c.IsClientBox(cl):
		return Box
	}
	return Owner
}

// IsClientBox says whether cl is one of the box's own clients.
func (c *Counts) IsClientBox(cl *mqtt.Client) bool {
	return c.IsBox != nil && cl != nil && !cl.Net.Inline && c.IsBox(string(cl.Properties.Username))
}

// Received counts one publish that reached the broker.
func (c *Counts) Received(w Whose) { c.received[w].Add(1) }

// Sent counts n deliveries.
func (c *Counts) Sent(w Whose, n int64) {
	if n != 0 {
		c.sent[w].Add(n)
	}
}

// Topics are the split counters and the box's client count as $SYS
// topics, published beside Mosquitto's totals at each $SYS interval.
func (c *Counts) Topics(srv *mqtt.Server) map[string]string {
	box := 0
	if c.IsBox != nil {
		for _, cl := range srv.Clients.GetAll() {
			if !cl.Closed() && c.IsClientBox(cl) {
				box++
			}
		}
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	out := map[string]string{TopicBoxClients: strconv.Itoa(box)}
	for w, name := range names {
		out[TopicReceived+name] = n(c.received[w].Load())
		out[TopicSent+name] = n(c.sent[w].Load())
	}
	return out
}

// The $SYS topics of the split.
const (
	TopicBoxClients = "$SYS/broker/gateway/clients/box"
	TopicReceived   = "$SYS/broker/gateway/messages/received/" // + owner, box, sys
	TopicSent       = "$SYS/broker/gateway/messages/sent/"     // + owner, box, sys
)

var names = [3]string{Owner: "owner", Box: "box", Sys: "sys"}

// Hook counts publishes as they arrive and deliveries mochi writes; the
// fast path counts its own deliveries (fastpath.Config.Sent). Add it
// before the fast path, which ends the hook chain for what it takes.
type Hook struct {
	mqtt.HookBase
	Counts *Counts
}

func (h *Hook) ID() string { return "traffic-split" }

func (h *Hook) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnPacketSent }

// OnPublish counts a publish that reached the broker, the broker's own
// ($SYS) included.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.Counts.Received(h.Counts.Of(cl, pk.TopicName))
	return pk, nil
}

// OnPacketSent counts a delivery mochi wrote.
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		h.Counts.Sent(h.Counts.Of(cl, pk.TopicName), 1)
	}
}
