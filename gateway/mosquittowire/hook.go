// Package mosquittowire rewrites mochi's answers into Mosquitto 2.0's, so
// that a device gets the same bytes back from the box as from the
// Mosquitto it replaced: the CONNACK's codes and properties, acks and
// DISCONNECTs without reason strings, acknowledged $SYS publishes, and
// Mosquitto's verdict on SUBSCRIBE filters. docs/BROKER.md, "Wire
// answers", lists each difference and its test.
package mosquittowire

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/homebox/gateway/internal/connwrap"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options are the conf values Mosquitto advertises in a CONNACK.
type Options struct {
	MaxTopicAlias   uint16 // max_topic_alias; 0 = not advertised
	ReceiveMaximum  uint16 // max_inflight_messages; 0 (unlimited) = not advertised
	MaxPacketSize   uint32 // max_packet_size as set in the conf; 0 = not advertised
	MaxQoS          byte   // max_qos
	RetainAvailable bool   // retain_available
}

// Hook is the rewriting hook.
type Hook struct {
	mqtt.HookBase
	opts Options
}

// New returns the hook for the conf's options.
func New(o Options) *Hook { return &Hook{opts: o} }

// ID names the hook.
func (h *Hook) ID() string { return "mosquitto-wire" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnPacketEncode || b == mqtt.OnPacketRead }

// replacer is the listeners' connection that can put Mosquitto's bytes of
// a packet in place of mochi's (gateway/listeners).
type replacer interface{ Replace(orig, with []byte) }

// OnPacketEncode rewrites an outgoing packet's fields before mochi encodes
// it. A PUBLISH returns at once.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return pk
	case packets.Connack:
		code := connackCode(cl, pk)
		pk.ReasonCode = code
		pk.Properties.ReasonString = ""
		if cl.Properties.ProtocolVersion == 3 {
			// MQTT 3.1's CONNACK has no session present flag: the byte
			// is reserved, and Mosquitto leaves it 0.
			pk.SessionPresent = false
		}
		if r := replacerOf(cl); r != nil {
			replace(r, pk, pk.ConnackEncode, h.connack(cl, pk, code))
		}
	case packets.Disconnect:
		pk.Properties.ReasonString = ""
		bare := pk.Properties.ServerReference == "" && len(pk.Properties.User) == 0 && !pk.Properties.SessionExpiryIntervalFlag
		if r := replacerOf(cl); r != nil && bare && cl.Properties.ProtocolVersion == 5 {
			// mochi writes an empty property block; Mosquitto leaves it
			// out, and the code too when it is 0.
			replace(r, pk, pk.DisconnectEncode, disconnectBytes(pk))
		}
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp,
		packets.Suback, packets.Unsuback:
		// Mosquitto sends no reason strings.
		pk.Properties.ReasonString = ""
	}
	return pk
}

// replace has r write with in place of pk as mochi encodes it.
func replace(r replacer, pk packets.Packet, encode func(*bytes.Buffer) error, with []byte) {
	var orig bytes.Buffer
	if encode(&orig) != nil || bytes.Equal(orig.Bytes(), with) {
		return
	}
	r.Replace(orig.Bytes(), with)
}

// replacerOf finds the connection that can replace mochi's bytes.
func replacerOf(cl *mqtt.Client) replacer {
	r, _ := connwrap.Find[replacer](cl.Net.Conn)
	return r
}

// ErrProtocol ends a client whose packet Mosquitto would not take (mochi
// ends a client on a hook's ErrRejectPacket and ignores other errors).
var ErrProtocol = fmt.Errorf("%w: protocol error as Mosquitto judges it", packets.ErrRejectPacket)

// OnPacketRead answers, before mochi sees it, what mochi would answer
// otherwise. A QoS 0 PUBLISH returns at once.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos == 0 || cl.Net.Inline {
			return pk, nil
		}
		return pk, h.publish(cl, pk)
	case packets.Subscribe:
		return h.subscribe(cl, pk)
	}
	return pk, nil
}

// publish handles a QoS 1 or 2 PUBLISH.
func (h *Hook) publish(cl *mqtt.Client, pk packets.Packet) error {
	v5 := cl.Properties.ProtocolVersion == 5
	if pk.FixedHeader.Qos > h.opts.MaxQoS {
		// Mosquitto: "QoS not supported", then the end.
		if v5 {
			_ = cl.WritePacket(disconnect(packets.ErrQosNotSupported.Code))
		}
		return ErrProtocol
	}
	if isSys(pk.TopicName) {
		// mochi drops a client's $SYS publish without an ack, and the
		// client waits for it for ever; Mosquitto acks it, "not
		// authorized" for MQTT 5.
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
		if pk.FixedHeader.Qos == 2 {
			ack.FixedHeader.Type = packets.Pubrec
		}
		if v5 {
			ack.ReasonCode = packets.ErrNotAuthorized.Code
		}
		_ = cl.WritePacket(ack)
	}
	return nil
}

// isSys is mochi's test for a topic it drops (its IsValidFilter).
func isSys(topic string) bool {
	return len(topic) >= 4 && strings.EqualFold(topic[:4], "$SYS")
}

// subscribe judges the filters as Mosquitto does: one invalid filter is a
// protocol error (MQTT 5: DISCONNECT "malformed packet"), where mochi
// answers a SUBACK failure for it. A shared subscription with No Local is
// granted, as Mosquitto does, where mochi refuses it.
func (h *Hook) subscribe(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	for i, s := range pk.Filters {
		if !validFilter(s.Filter) {
			if cl.Properties.ProtocolVersion == 5 {
				_ = cl.WritePacket(disconnect(packets.ErrMalformedPacket.Code))
			}
			return pk, ErrProtocol
		}
		if s.NoLocal && strings.HasPrefix(s.Filter, "$share/") {
			pk.Filters[i].NoLocal = false
		}
	}
	return pk, nil
}

// validFilter is Mosquitto's check of a subscription filter: "+" and "#"
// take a whole level, "#" only the last; a shared filter names a group
// without wildcards and a filter.
func validFilter(f string) bool {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		group, topic, ok := strings.Cut(rest, "/")
		if !ok || group == "" || strings.ContainsAny(group, "+#") {
			return false
		}
		f = topic
	}
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
	}
	return true
}

// disconnectBytes is a v5 DISCONNECT as Mosquitto writes it, when it
// carries no properties but a reason string (dropped).
func disconnectBytes(pk packets.Packet) []byte {
	if pk.ReasonCode == 0 {
		return []byte{0xe0, 0x00}
	}
	return []byte{0xe0, 0x01, pk.ReasonCode}
}

func disconnect(code byte) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code}
}
