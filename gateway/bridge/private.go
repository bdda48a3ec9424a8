package bridge

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// privateConn rewrites a try_private CONNECT on the fly and remembers it.
type privateConn struct {
	net.Conn
	checked bool   // only the reading goroutine touches checked and pending
	pending []byte // bytes already read from Conn, to hand out first
	readErr error  // error met while inspecting, returned after pending
	bridge  atomic.Bool
}

// PrivateConn wraps an accepted connection so that a CONNECT whose
// protocol version byte has 0x80 set (Mosquitto's try_private, sent by
// every Mosquitto bridge by default) reaches mochi with the plain version,
// which it accepts; the connection remembers it is a bridge, for
// InboundHook. Wrap the decrypted stream: on a TLS listener wrap the
// *tls.Conn, not the TCP connection under it.
func PrivateConn(c net.Conn) net.Conn { return &privateConn{Conn: c} }

// IsBridge reports whether the peer announced itself as a bridge.
func (c *privateConn) IsBridge() bool { return c.bridge.Load() }

// Unwrap gives the connection underneath.
func (c *privateConn) Unwrap() net.Conn { return c.Conn }

func (c *privateConn) Read(p []byte) (int, error) {
	if !c.checked {
		c.checked = true
		c.inspect()
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.readErr != nil {
		err := c.readErr
		c.readErr = nil
		return 0, err
	}
	return c.Conn.Read(p)
}

// inspect reads the CONNECT's fixed header, protocol name and version
// byte (never more: a CONNECT always carries them) and clears bit 7 of
// the version. Anything that is not a CONNECT passes untouched.
func (c *privateConn) inspect() {
	more := func(n int) bool {
		b := make([]byte, n)
		got, err := io.ReadFull(c.Conn, b)
		c.pending = append(c.pending, b[:got]...)
		if err != nil {
			c.readErr = err
			return false
		}
		return true
	}
	if !more(1) || c.pending[0] != 0x10 {
		return
	}
	for i := 0; ; i++ { // remaining length: up to four bytes
		if !more(1) {
			return
		}
		if c.pending[len(c.pending)-1]&0x80 == 0 {
			break
		}
		if i == 3 {
			return
		}
	}
	if !more(2) {
		return
	}
	nameLen := int(c.pending[len(c.pending)-2])<<8 | int(c.pending[len(c.pending)-1])
	if nameLen != 4 && nameLen != 6 { // "MQTT" or "MQIsdp"
		return
	}
	if !more(nameLen + 1) {
		return
	}
	v := &c.pending[len(c.pending)-1]
	if *v&0x80 != 0 && *v&0x7f >= 3 && *v&0x7f <= 5 {
		*v &= 0x7f
		c.bridge.Store(true)
	}
}

// isBridgeConn looks through connection wrappers for a privateConn that
// saw a try_private CONNECT.
func isBridgeConn(c net.Conn) bool {
	for i := 0; c != nil && i < 8; i++ {
		if b, ok := c.(interface{ IsBridge() bool }); ok {
			return b.IsBridge()
		}
		switch u := c.(type) {
		case interface{ Unwrap() net.Conn }:
			c = u.Unwrap()
		case interface{ NetConn() net.Conn }:
			c = u.NetConn()
		default:
			return false
		}
	}
	return false
}

// inboundHook treats clients that connected through PrivateConn with
// try_private as bridges, the way Mosquitto does.
type inboundHook struct {
	mqtt.HookBase
	server *mqtt.Server
	log    *slog.Logger
}

// InboundHook returns the hook that makes remote bridges connecting to
// this broker loop-free: each of their subscriptions gets No Local (what
// the bridge published is never sent back to it) and Retain As Published
// (retained flags cross the bridge as Mosquitto carries them). With a
// server, the connection state a remote bridge publishes on
// $SYS/broker/connection/... (QoS 0 or 1) is accepted too, which mochi
// otherwise drops for normal clients.
func InboundHook(server *mqtt.Server, log *slog.Logger) mqtt.Hook {
	if log == nil {
		log = slog.Default()
	}
	return &inboundHook{server: server, log: log}
}

func (h *inboundHook) ID() string { return "bridge-inbound" }

func (h *inboundHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnSubscribe || b == mqtt.OnPacketRead
}

func (h *inboundHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if isBridgeConn(cl.Net.Conn) {
		h.log.Info("remote bridge connected", "client", cl.ID, "remote", cl.Net.Remote, "protocol", pk.ProtocolVersion)
	}
	return nil
}

func (h *inboundHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if !isBridgeConn(cl.Net.Conn) {
		return pk
	}
	filters := make(packets.Subscriptions, len(pk.Filters))
	copy(filters, pk.Filters)
	for i := range filters {
		if strings.HasPrefix(filters[i].Filter, "$share/") {
			continue // No Local is a protocol error on shared subscriptions
		}
		filters[i].NoLocal = true
		filters[i].RetainAsPublished = true
		filters[i].FwdRetainedFlag = true
	}
	pk.Filters = filters
	return pk
}

// OnPacketRead relays a remote bridge's own state notification.
func (h *inboundHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.server == nil || pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos > 1 ||
		!strings.HasPrefix(pk.TopicName, "$SYS/broker/connection/") || !isBridgeConn(cl.Net.Conn) {
		return pk, nil
	}
	if err := h.server.Publish(pk.TopicName, pk.Payload, pk.FixedHeader.Retain, pk.FixedHeader.Qos); err != nil {
		h.log.Warn("remote bridge state not relayed", "client", cl.ID, "topic", pk.TopicName, "error", err)
		return pk, nil
	}
	if pk.FixedHeader.Qos == 1 { // mochi drops $SYS publishes without an ack
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	return pk, nil
}
