// Package certuser applies use_identity_as_username and
// use_subject_as_username: on a TLS listener that requires client
// certificates, the username the ACLs judge is taken from the client's
// certificate (its CN, or its whole subject) and the CONNECT's username and
// password are not used, as in Mosquitto. mochi has neither option.
//
// It is two hooks, for two moments of mochi's OnConnect:
//   - Names, before gateway/admit: the username is set (so that
//     use_username_as_clientid takes it, as in Mosquitto), or the client
//     is refused when its certificate gives none;
//   - Admits, after gateway/admit has settled the client id: the will is
//     judged by the ACL under the new name, and its OnConnectAuthenticate
//     says yes for the clients of these listeners. mochi lets a client in
//     when any hook says yes, so Admits must come before the password
//     hook, which would judge the CONNECT's own login.
package certuser

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/homebox/gateway/internal/connwrap"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// From says which part of the certificate names the client.
type From int

const (
	CN      From = iota + 1 // use_identity_as_username: the subject's common name
	Subject                 // use_subject_as_username: the whole subject
)

// Config is what the hook needs from the rest of the broker.
type Config struct {
	Server *mqtt.Server
	// Rules by mochi listener id; other listeners are left alone.
	Rules map[string]From
	// WillAllowed judges a will topic for the client as named (the ACL).
	WillAllowed func(cl *mqtt.Client, topic string) bool
	// Reserved names the box's own accounts, which no certificate may take.
	Reserved func(name string) bool
	Logger   *slog.Logger
}

// Names names clients by their certificates.
type Names struct {
	mqtt.HookBase
	c Config
}

// Admits judges the wills of the clients Names named, and lets them in.
type Admits struct {
	mqtt.HookBase
	c Config
}

// New returns the two hooks, for mochi's hooks in that order, with
// gateway/admit between them and the password hook after.
func New(c Config) (*Names, *Admits) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return &Names{c: c}, &Admits{c: c}
}

// ID names the hook.
func (h *Names) ID() string { return "mosquitto-certuser-names" }

// Provides says which events the hook handles.
func (h *Names) Provides(b byte) bool { return b == mqtt.OnConnect }

// ID names the hook.
func (h *Admits) ID() string { return "mosquitto-certuser-admits" }

// Provides says which events the hook handles.
func (h *Admits) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate
}

// ErrRefused is returned to mochi after the refusal CONNACK is sent.
var ErrRefused = errors.New("client certificate gives no username")

// OnConnect sets the username from the certificate, or refuses the client.
func (h *Names) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	from, ok := h.c.Rules[cl.Net.Listener]
	if !ok || cl.Net.Inline {
		return nil
	}
	cert := PeerCertificate(cl.Net.Conn)
	if cert == nil {
		return refuse(h.c, cl, "no client certificate")
	}
	name := cert.Subject.CommonName
	if from == Subject {
		name = SubjectString(cert)
	}
	if name == "" {
		return refuse(h.c, cl, "client certificate has no common name")
	}
	if h.c.Reserved != nil && h.c.Reserved(name) {
		return refuse(h.c, cl, fmt.Sprintf("client certificate names the box's own account %q", name))
	}
	cl.Properties.Username = []byte(name)
	return nil
}

// OnConnect drops a will the ACL does not let the named client write, as
// the password hook does for the others (auth.DropWill says why): the
// client is let in, the will never published, as in Mosquitto 2.0.
func (h *Admits) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if _, ok := h.c.Rules[cl.Net.Listener]; !ok || cl.Net.Inline || !pk.Connect.WillFlag {
		return nil
	}
	if h.c.WillAllowed != nil && !h.c.WillAllowed(cl, pk.Connect.WillTopic) {
		h.c.Logger.Info("will dropped", "client", cl.ID, "listener", cl.Net.Listener,
			"topic", cl.Properties.Will.TopicName, "reason", "will topic not allowed by acl_file")
		cl.Properties.Will = mqtt.Will{}
	}
	return nil
}

// OnConnectAuthenticate lets in the clients OnConnect named: the
// certificate, checked by the TLS handshake against the listener's CAs,
// is their credential.
func (h *Admits) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := h.c.Rules[cl.Net.Listener]
	return ok && !cl.Net.Inline
}

func refuse(c Config, cl *mqtt.Client, why string) error {
	c.Logger.Info("client refused: "+why, "client", cl.ID, "listener", cl.Net.Listener, "remote", cl.Net.Remote)
	// What Mosquitto answers: bad username or password (0x86; 3.x: 4).
	if err := c.Server.SendConnack(cl, packets.ErrBadUsernameOrPassword, false, nil); err != nil {
		return fmt.Errorf("refuse client: %w", err)
	}
	return ErrRefused
}

// PeerCertificate is the verified client certificate under conn, looking
// through byte-preserving wrappers (Unwrap) down to the TLS connection;
// nil when there is none.
func PeerCertificate(conn net.Conn) *x509.Certificate {
	if c, ok := connwrap.Find[*tls.Conn](conn); ok {
		if certs := c.ConnectionState().PeerCertificates; len(certs) > 0 {
			return certs[0]
		}
	}
	return nil
}
