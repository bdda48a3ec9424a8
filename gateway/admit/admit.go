// Package admit applies mosquitto.conf's rules on who may connect to a
// listener and under which client id, which mochi has no option for:
// accept_protocol_versions, allow_zero_length_clientid and auto_id_prefix
// (mochi names id-less clients with an xid of its own), clientid_prefixes
// and use_username_as_clientid. It acts in OnConnect, before the password
// check and before mochi looks for the client's old session, so the id
// it sets is the one the session, the ACLs and the logs see.
package admit

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Rules are one listener's admission options.
type Rules struct {
	// AcceptProtocolVersions are the protocol levels let in (3 = 3.1,
	// 4 = 3.1.1, 5); nil = all, Mosquitto's default.
	AcceptProtocolVersions []byte
	RefuseZeroLength       bool   // allow_zero_length_clientid false
	AutoIDPrefix           string // auto_id_prefix; "" = "auto-"
	UseUsernameAsClientID  bool   // use_username_as_clientid
	// MaxTopicAliasBroker is max_topic_alias_broker: how many topic
	// aliases the broker may use towards an MQTT 5 client (Mosquitto 2.1).
	MaxTopicAliasBroker uint16
}

// Hook applies the rules of the listener a client came in on.
type Hook struct {
	mqtt.HookBase
	server   *mqtt.Server
	prefixes string           // clientid_prefixes, broker-wide
	byID     map[string]Rules // by mochi listener id
	log      *slog.Logger
}

// New returns the hook; byListener maps mochi listener ids to their rules
// (a listener not in it gets Mosquitto's defaults).
func New(server *mqtt.Server, prefixes string, byListener map[string]Rules, log *slog.Logger) *Hook {
	if log == nil {
		log = slog.Default()
	}
	return &Hook{server: server, prefixes: prefixes, byID: byListener, log: log}
}

// ID names the hook.
func (h *Hook) ID() string { return "mosquitto-admit" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnConnect }

// ErrRefused is returned to mochi after the refusal CONNACK is sent.
var ErrRefused = errors.New("client id refused")

// OnConnect sets or checks the client's id.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	r := h.byID[cl.Net.Listener]
	if r.AcceptProtocolVersions != nil && !slices.Contains(r.AcceptProtocolVersions, pk.ProtocolVersion) {
		// 0x84 for MQTT 5; mochi sends 3.x clients 0x01.
		return h.refuse(cl, packets.ErrUnsupportedProtocolVersion, "protocol version not in accept_protocol_versions")
	}
	if pk.ProtocolVersion >= 5 && cl.Properties.Props.TopicAliasMaximum > r.MaxTopicAliasBroker {
		// mochi would use as many as the client allows.
		cl.State.TopicAliases.Outbound = mqtt.NewOutboundTopicAliases(r.MaxTopicAliasBroker)
	}
	if r.UseUsernameAsClientID {
		// The username as mochi parsed it, or as gateway/certuser took it
		// from the client's certificate.
		if len(cl.Properties.Username) == 0 {
			// Mosquitto refuses a client with no username to take as its id.
			return h.refuse(cl, packets.ErrNotAuthorized, "use_username_as_clientid and no username")
		}
		cl.ID = string(cl.Properties.Username)
		cl.Properties.Props.AssignedClientID = ""
	} else if len(pk.Connect.ClientIdentifier) == 0 {
		if r.RefuseZeroLength {
			// Mosquitto 2.0: "identifier rejected" for 3.1.1 (the v3
			// mapping of mochi's 0x85), "unspecified error" for MQTT 5.
			code := packets.ErrClientIdentifierNotValid
			if pk.ProtocolVersion >= 5 {
				code = packets.ErrUnspecifiedError
			}
			return h.refuse(cl, code, "empty client id and allow_zero_length_clientid false")
		}
		if pk.ProtocolVersion == 3 {
			// MQTT 3.1 has no empty ids: Mosquitto answers "identifier rejected".
			return h.refuse(cl, packets.ErrClientIdentifierNotValid, "empty client id from an MQTT 3.1 client")
		}
		prefix := r.AutoIDPrefix
		if prefix == "" {
			prefix = "auto-"
		}
		cl.ID = prefix + uuid()
		if pk.ProtocolVersion >= 5 {
			cl.Properties.Props.AssignedClientID = cl.ID
		}
	}
	if h.prefixes != "" && !strings.HasPrefix(cl.ID, h.prefixes) {
		return h.refuse(cl, packets.ErrNotAuthorized, "client id does not start with clientid_prefixes")
	}
	return nil
}

func (h *Hook) refuse(cl *mqtt.Client, code packets.Code, why string) error {
	h.log.Info("client refused: "+why, "client", cl.ID, "remote", cl.Net.Remote)
	if code == packets.ErrNotAuthorized && cl.Properties.ProtocolVersion < 5 {
		// mochi maps only some v5 codes to 3.x; "not authorized" is 5 there.
		code = packets.Err3NotAuthorized
	}
	if err := h.server.SendConnack(cl, code, false, nil); err != nil {
		return fmt.Errorf("refuse client: %w", err)
	}
	return ErrRefused
}

// uuid is a random version 4 UUID in its text form, the shape of the ids
// Mosquitto gives.
func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
