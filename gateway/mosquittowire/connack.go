package mosquittowire

import (
	"encoding/binary"

	"github.com/homebox/gateway/internal/mqttwire"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connackCode is the code Mosquitto 2.0 answers where mochi's differs.
func connackCode(cl *mqtt.Client, pk packets.Packet) byte {
	v5 := cl.Properties.ProtocolVersion == 5
	switch {
	case pk.Properties.ReasonString == packets.ErrProtocolViolationProtocolVersion.Reason:
		// An unknown protocol level ("MQTT" 6, "MQIsdp" 4): the 3.1.1
		// answer, which lets old clients fall back to 3.1.
		return packets.Err3UnsupportedProtocolVersion.Code
	case !v5 && pk.ReasonCode == packets.ErrUnspecifiedError.Code:
		// mochi's only unspecified refusal: an empty id with clean session 0.
		return packets.Err3ClientIdentifierNotValid.Code
	case v5 && pk.ReasonCode == packets.ErrBadUsernameOrPassword.Code:
		return packets.ErrNotAuthorized.Code
	}
	return pk.ReasonCode
}

// v5 reports whether the CONNACK carries MQTT 5 properties: an unknown
// level ("MQTT" 6) gets a 3.1.1 CONNACK.
func v5(cl *mqtt.Client, code byte) bool {
	return cl.Properties.ProtocolVersion == 5 && code != packets.Err3UnsupportedProtocolVersion.Code
}

// connack is Mosquitto 2.0's CONNACK for what mochi is about to send (pk,
// with code already Mosquitto's): its properties in the order Mosquitto
// adds them (handle_connect, connect__on_authorised, send__connack), none
// that Mosquitto leaves out, no reason string.
func (h *Hook) connack(cl *mqtt.Client, pk packets.Packet, code byte) []byte {
	var present byte
	if pk.SessionPresent && code < 0x80 {
		present = 1
	}
	if !v5(cl, code) {
		return []byte{0x20, 0x02, present, code}
	}
	var p []byte
	u16 := func(id byte, v uint16) { p = binary.BigEndian.AppendUint16(append(p, id), v) }
	if code < 0x80 {
		if h.opts.MaxTopicAlias > 0 {
			u16(packets.PropTopicAliasMaximum, h.opts.MaxTopicAlias)
		}
		if pk.Properties.ServerKeepAliveFlag {
			u16(packets.PropServerKeepAlive, pk.Properties.ServerKeepAlive)
		}
		if id := pk.Properties.AssignedClientID; id != "" {
			u16(packets.PropAssignedClientID, uint16(len(id)))
			p = append(p, id...)
		}
		if !h.opts.RetainAvailable {
			p = append(p, packets.PropRetainAvailable, 0)
		}
		if h.opts.MaxPacketSize > 0 {
			p = binary.BigEndian.AppendUint32(append(p, packets.PropMaximumPacketSize), h.opts.MaxPacketSize)
		}
		if h.opts.ReceiveMaximum > 0 {
			u16(packets.PropReceiveMaximum, h.opts.ReceiveMaximum)
		}
	}
	if h.opts.MaxQoS < 2 {
		p = append(p, packets.PropMaximumQos, h.opts.MaxQoS)
	}
	body := mqttwire.AppendLength([]byte{present, code}, len(p))
	body = append(body, p...)
	return append(mqttwire.AppendLength([]byte{0x20}, len(body)), body...)
}
