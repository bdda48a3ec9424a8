// Package mountpoint applies mosquitto.conf's mount_point: the clients of
// a listener with one live under a topic prefix. Their publishes, wills,
// subscriptions and unsubscriptions get the prefix; what they receive has
// it taken off, and they receive nothing outside it. The hook is only
// installed when a listener has a mount point; the broker keeps those
// listeners' connections off the QoS 0 fast path, which writes topics
// without asking the hooks, so every delivery to them passes
// OnPacketEncode.
package mountpoint

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Hook holds each listener's mount point, by mochi listener id.
type Hook struct {
	mqtt.HookBase
	byListener map[string]string
}

// New returns the hook for the listeners' mount points.
func New(byListener map[string]string) *Hook { return &Hook{byListener: byListener} }

// ID names the hook.
func (h *Hook) ID() string { return "mosquitto-mount-point" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnUnsubscribe, mqtt.OnPacketEncode:
		return true
	}
	return false
}

func (h *Hook) of(cl *mqtt.Client) string {
	if cl.Net.Inline {
		return ""
	}
	return h.byListener[cl.Net.Listener]
}

// OnConnect puts the will under the mount point.
func (h *Hook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if mp := h.of(cl); mp != "" && cl.Properties.Will.TopicName != "" {
		cl.Properties.Will.TopicName = mp + cl.Properties.Will.TopicName
	}
	return nil
}

// OnPublish puts a client's message under its mount point.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if mp := h.of(cl); mp != "" {
		pk.TopicName = mp + pk.TopicName
	}
	return pk, nil
}

// OnSubscribe puts a client's filters under its mount point.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if mp := h.of(cl); mp != "" {
		pk.Filters = mount(mp, pk.Filters)
	}
	return pk
}

// OnUnsubscribe does the same for the filters a client leaves.
func (h *Hook) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if mp := h.of(cl); mp != "" {
		pk.Filters = mount(mp, pk.Filters)
	}
	return pk
}

// OnPacketEncode takes the mount point off the topic a client receives.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Publish {
		return pk
	}
	if mp := h.of(cl); mp != "" {
		pk.TopicName = strings.TrimPrefix(pk.TopicName, mp)
	}
	return pk
}

// mount returns copies of the filters under mp; a shared subscription
// keeps its $share/GROUP/ in front.
func mount(mp string, fs packets.Subscriptions) packets.Subscriptions {
	out := make(packets.Subscriptions, len(fs))
	for i, f := range fs {
		if rest, ok := strings.CutPrefix(f.Filter, "$share/"); ok {
			if group, filter, ok := strings.Cut(rest, "/"); ok {
				f.Filter = "$share/" + group + "/" + mp + filter
				out[i] = f
				continue
			}
		}
		f.Filter = mp + f.Filter
		out[i] = f
	}
	return out
}
