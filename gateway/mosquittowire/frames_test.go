package mosquittowire_test

import "github.com/homebox/gateway/internal/mqttwire"

// Hand-built MQTT frames: the tests send the same bytes to Mosquitto and to
// our broker, so they are built here, not by a client library.

func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func frame(first byte, body ...[]byte) []byte {
	var b []byte
	for _, p := range body {
		b = append(b, p...)
	}
	return append(mqttwire.AppendLength([]byte{first}, len(b)), b...)
}

// props is an MQTT 5 property block; nil for 3.x.
func props(p ...byte) []byte { return append(mqttwire.AppendLength(nil, len(p)), p...) }

// conn describes a CONNECT.
type conn struct {
	name       string // "MQTT" unless set
	level      byte
	clean      bool
	keepalive  uint16
	id         string
	props      []byte // v5 only; nil = empty block
	user, pass *string
}

func (c conn) bytes() []byte {
	name := c.name
	if name == "" {
		name = "MQTT"
	}
	var flags byte
	if c.clean {
		flags |= 0x02
	}
	if c.user != nil {
		flags |= 0x80
	}
	if c.pass != nil {
		flags |= 0x40
	}
	body := [][]byte{str(name), {c.level, flags, byte(c.keepalive >> 8), byte(c.keepalive)}}
	if c.level == 5 {
		if c.props == nil {
			body = append(body, props())
		} else {
			body = append(body, c.props)
		}
	}
	body = append(body, str(c.id))
	if c.user != nil {
		body = append(body, str(*c.user))
	}
	if c.pass != nil {
		body = append(body, str(*c.pass))
	}
	return frame(0x10, body...)
}

func v311(id string) conn { return conn{level: 4, clean: true, keepalive: 60, id: id} }
func v5(id string) conn   { return conn{level: 5, clean: true, keepalive: 60, id: id} }

func ptr(s string) *string { return &s }

// publish is a PUBLISH; v5 adds an empty property block.
func publish(v5 bool, qos byte, topic string, id uint16, payload string) []byte {
	body := [][]byte{str(topic)}
	if qos > 0 {
		body = append(body, []byte{byte(id >> 8), byte(id)})
	}
	if v5 {
		body = append(body, props())
	}
	body = append(body, []byte(payload))
	return frame(0x30|qos<<1, body...)
}

// sub is one filter with its options byte.
type sub struct {
	filter string
	opts   byte
}

func subscribe(v5 bool, id uint16, subs ...sub) []byte {
	body := [][]byte{{byte(id >> 8), byte(id)}}
	if v5 {
		body = append(body, props())
	}
	for _, s := range subs {
		body = append(body, str(s.filter), []byte{s.opts})
	}
	return frame(0x82, body...)
}

var (
	pingreq  = []byte{0xc0, 0x00}
	pingresp = []byte{0xd0, 0x00}
)
