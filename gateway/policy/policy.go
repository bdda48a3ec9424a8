// Package policy applies the connection rules of mosquitto.conf that mochi
// has no option for: max_keepalive (told to MQTT 5 clients as Server Keep
// Alive, refused for 3.x clients, as Mosquitto 2 does), message_size_limit
// (a larger PUBLISH is acknowledged and dropped) and connection_messages
// (a log line per connect and disconnect).
package policy

import (
	"errors"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Rules are the options this hook applies.
type Rules struct {
	MaxKeepalive       int  // seconds; 0 or 65535 = no limit
	MessageSizeLimit   int  // bytes of payload; 0 = no limit
	ConnectionMessages bool // log connects and disconnects
	// SessionExpiry is persistent_client_expiration: when set, mochi
	// expires the sessions (its MaximumSessionExpiryInterval) and the hook
	// logs each, as Mosquitto does.
	SessionExpiry bool
}

// Hook applies Rules.
type Hook struct {
	mqtt.HookBase
	server *mqtt.Server
	rules  Rules
	log    *slog.Logger
}

// New returns the hook for server.
func New(server *mqtt.Server, rules Rules, log *slog.Logger) *Hook {
	if log == nil {
		log = slog.Default()
	}
	return &Hook{server: server, rules: rules, log: log}
}

// ID names the hook.
func (h *Hook) ID() string { return "mosquitto-policy" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnPublish:
		return true
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect:
		return h.rules.ConnectionMessages
	case mqtt.OnClientExpired:
		return h.rules.SessionExpiry
	}
	return false
}

// errKeepaliveTooLong is returned to mochi after the refusal CONNACK is sent.
var errKeepaliveTooLong = errors.New("keepalive above max_keepalive")

// OnConnect enforces max_keepalive.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	limit := h.rules.MaxKeepalive
	if limit <= 0 || limit >= 65535 || cl.Net.Inline {
		return nil
	}
	asked := int(pk.Connect.Keepalive)
	if asked != 0 && asked <= limit {
		return nil
	}
	if pk.ProtocolVersion >= 5 {
		// MQTT 5 lets the server say which keepalive to use.
		cl.State.ServerKeepalive = true
		cl.State.Keepalive = uint16(limit)
		return nil
	}
	// MQTT 3.x cannot be told: Mosquitto refuses with "identifier rejected".
	if err := h.server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil); err != nil {
		return fmt.Errorf("refuse keepalive %d: %w", asked, err)
	}
	h.log.Info("client refused: keepalive above max_keepalive", "client", cl.ID, "remote", cl.Net.Remote, "keepalive", asked, "max_keepalive", limit)
	return errKeepaliveTooLong
}

// OnPublish drops messages over message_size_limit, acknowledging them so
// the client does not resend them for ever (MQTT 5 clients are told why).
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	limit := h.rules.MessageSizeLimit
	if limit <= 0 || len(pk.Payload) <= limit || cl.Net.Inline {
		return pk, nil
	}
	h.log.Info("message dropped: payload above message_size_limit", "client", cl.ID, "topic", pk.TopicName, "bytes", len(pk.Payload), "message_size_limit", limit)
	if pk.FixedHeader.Qos == 0 {
		return pk, packets.ErrRejectPacket
	}
	if cl.Properties.ProtocolVersion >= 5 {
		return pk, packets.ErrPacketTooLarge // mochi sends the PUBACK/PUBREC with this reason
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if err := cl.WritePacket(ack); err != nil {
		h.log.Debug("ack dropped message", "client", cl.ID, "error", err)
	}
	return pk, packets.ErrRejectPacket
}

// OnSessionEstablished logs a connect the way Mosquitto words it.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.log.Info(fmt.Sprintf("New client connected from %s as %s (p%d, c%d, k%d, u'%s').",
		cl.Net.Remote, cl.ID, cl.Properties.ProtocolVersion, boolInt(pk.Connect.Clean), cl.State.Keepalive, cl.Properties.Username))
}

// OnDisconnect logs a disconnect.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if cl.Net.Inline || cl.Net.Conn == nil {
		return
	}
	if err != nil && !errors.Is(err, packets.CodeDisconnect) {
		h.log.Info(fmt.Sprintf("Client %s disconnected: %v.", cl.ID, err))
		return
	}
	h.log.Info(fmt.Sprintf("Client %s disconnected.", cl.ID))
}

// OnClientExpired logs a session removed by persistent_client_expiration.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.log.Info(fmt.Sprintf("Expiring client %s due to timeout.", cl.ID))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
