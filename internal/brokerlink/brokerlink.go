// Package brokerlink is how the box's own MQTT clients (the console's
// statistics, discovery, the topic explorer) reach the local broker: as
// the box's service account, at the address mosquitto.conf gives now. The
// address is asked again at every connection attempt, so a client follows
// a listener change without a restart of gatewayd.
package brokerlink

import (
	"errors"
	"net"
	"net/url"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Link is one way to the broker.
type Link struct {
	Addr     func() string // host:port of a plain MQTT listener
	Username string
	Password string
}

// Configure points paho's options at the broker through the link.
func (l *Link) Configure(o *mqtt.ClientOptions) *mqtt.ClientOptions {
	// paho needs a broker to try; the dial below goes where Addr says now.
	o.AddBroker("tcp://" + l.Addr())
	o.SetCustomOpenConnectionFn(func(_ *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
		d := net.Dialer{Timeout: opts.ConnectTimeout}
		return d.Dial("tcp", l.Addr())
	})
	if l.Username != "" {
		o.SetUsername(l.Username)
		o.SetPassword(l.Password)
	}
	// A refusal is not a reason to try MQTT 3.1.
	o.SetProtocolVersion(4)
	return o
}

// Why says in words why a connection attempt failed, telling a refusal by
// the broker from a broker that cannot be reached.
func Why(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return "the broker refused the box's own login (" + err.Error() + ")"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return "the broker is not accepting clients"
	}
	return "the broker cannot be reached: " + err.Error()
}
