// Package wire is a minimal MQTT 3.1.1 codec for the load generator.
//
// A full client library spends more per message than the brokers it is
// meant to measure, which would make the generator the bottleneck. This
// codec appends packets to caller-owned buffers (so a publisher can put many
// PUBLISH packets in one write) and parses frames in place from one read
// buffer, allocating nothing per message. It knows only the packets the
// generator sends and receives.
package mqttwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Packet types (MQTT 3.1.1 section 2.2.1).
const (
	CONNECT    byte = 1
	CONNACK    byte = 2
	PUBLISH    byte = 3
	PUBACK     byte = 4
	SUBSCRIBE  byte = 8
	SUBACK     byte = 9
	PINGREQ    byte = 12
	PINGRESP   byte = 13
	DISCONNECT byte = 14
)

// AppendLength appends n as an MQTT variable byte integer (a remaining
// length, a property block length).
func AppendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func lengthSize(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	default:
		return 4
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// Connect is what a CONNECT packet says.
type Connect struct {
	ClientID     string
	Username     string
	Password     string
	KeepAlive    uint16 // seconds
	CleanSession bool
}

// AppendConnect appends an MQTT 3.1.1 CONNECT packet.
func AppendConnect(b []byte, c Connect) []byte {
	var flags byte
	n := 10 + 2 + len(c.ClientID)
	if c.CleanSession {
		flags |= 0x02
	}
	if c.Username != "" {
		flags |= 0x80
		n += 2 + len(c.Username)
		if c.Password != "" {
			flags |= 0x40
			n += 2 + len(c.Password)
		}
	}
	b = append(b, CONNECT<<4)
	b = AppendLength(b, n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags) // protocol level 4 = 3.1.1
	b = binary.BigEndian.AppendUint16(b, c.KeepAlive)
	b = appendString(b, c.ClientID)
	if flags&0x80 != 0 {
		b = appendString(b, c.Username)
		if flags&0x40 != 0 {
			b = appendString(b, c.Password)
		}
	}
	return b
}

// PublishSize is the encoded size of a PUBLISH packet, so a caller can
// size its batch buffers once.
func PublishSize(topic string, qos byte, payloadLen int) int {
	n := 2 + len(topic) + payloadLen
	if qos > 0 {
		n += 2
	}
	return 1 + lengthSize(n) + n
}

// AppendPublish appends a PUBLISH packet. id is ignored at QoS 0.
func AppendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, PUBLISH<<4|qos<<1)
	b = AppendLength(b, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// AppendPuback appends a PUBACK for packet id.
func AppendPuback(b []byte, id uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, PUBACK<<4, 2), id)
}

// AppendSubscribe appends a SUBSCRIBE for one filter.
func AppendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, SUBSCRIBE<<4|0x02)
	b = AppendLength(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = appendString(b, filter)
	return append(b, qos)
}

// AppendPingreq appends a PINGREQ.
// AppendFixedHeader appends a fixed header of type typ claiming a body of
// n bytes (an attacker's claim, in tests, may be far more than follows).
func AppendFixedHeader(b []byte, typ byte, n int) []byte {
	return AppendLength(append(b, typ<<4), n)
}

func AppendPingreq(b []byte) []byte { return append(b, PINGREQ<<4, 0) }

// AppendDisconnect appends a DISCONNECT.
func AppendDisconnect(b []byte) []byte { return append(b, DISCONNECT<<4, 0) }

// Packet is one frame read by a Reader. Body aliases the Reader's buffer
// and is valid only until the next call to Next.
type Packet struct {
	Type  byte
	Flags byte
	Body  []byte
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed MQTT packet")

// Reader splits a byte stream into MQTT frames.
type Reader struct {
	r          io.Reader
	buf        []byte
	start, end int
	max        int
}

// NewReader reads from r through a buffer of size bytes; frames larger
// than maxPacket are an error.
func NewReader(r io.Reader, size, maxPacket int) *Reader {
	if size < 64 {
		size = 64
	}
	return &Reader{r: r, buf: make([]byte, size), max: maxPacket}
}

// frame reports the header length and total length of the frame at the
// start of the buffered bytes, or ok=false when more bytes are needed.
func (r *Reader) frame() (hdr, total int, ok bool, err error) {
	b := r.buf[r.start:r.end]
	n, mul := 0, 1
	for i := 1; i < len(b); i++ {
		n += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			return i + 1, i + 1 + n, i+1+n <= len(b), nil
		}
		if i == 4 {
			return 0, 0, false, fmt.Errorf("%w: remaining length longer than 4 bytes", ErrMalformed)
		}
		mul *= 128
	}
	return 0, 0, false, nil
}

// HasPacket reports whether a whole frame is buffered, so that Next will
// not block. A QoS 1 subscriber flushes its PUBACKs before it would block.
func (r *Reader) HasPacket() bool {
	_, _, ok, err := r.frame()
	return ok || err != nil
}

// Next returns the next frame, reading from the stream only when no whole
// frame is buffered.
func (r *Reader) Next() (Packet, error) {
	for {
		hdr, total, ok, err := r.frame()
		if err != nil {
			return Packet{}, err
		}
		if ok {
			b := r.buf[r.start : r.start+total]
			r.start += total
			return Packet{Type: b[0] >> 4, Flags: b[0] & 0x0f, Body: b[hdr:]}, nil
		}
		if hdr > 0 && total-hdr > r.max {
			return Packet{}, fmt.Errorf("%w: %d-byte packet over the %d-byte limit", ErrMalformed, total-hdr, r.max)
		}
		if err := r.fill(total); err != nil {
			return Packet{}, err
		}
	}
}

// fill reads more bytes, first moving the partial frame to the front and
// growing the buffer when the frame cannot fit.
func (r *Reader) fill(need int) error {
	if r.start > 0 {
		copy(r.buf, r.buf[r.start:r.end])
		r.end -= r.start
		r.start = 0
	}
	if need > len(r.buf) {
		nb := make([]byte, need)
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if err == io.EOF && r.end > 0 {
		return fmt.Errorf("%w: stream ended inside a packet", io.ErrUnexpectedEOF)
	}
	return err
}

// Publish is a parsed PUBLISH. Topic and Payload alias the Reader's buffer.
type Publish struct {
	QoS     byte
	ID      uint16
	Topic   []byte
	Payload []byte
}

// ParsePublish reads a PUBLISH packet's body.
func ParsePublish(p Packet) (Publish, error) {
	if p.Type != PUBLISH {
		return Publish{}, fmt.Errorf("%w: packet type %d is not PUBLISH", ErrMalformed, p.Type)
	}
	qos := (p.Flags >> 1) & 3
	if qos == 3 {
		return Publish{}, fmt.Errorf("%w: PUBLISH with QoS 3", ErrMalformed)
	}
	b := p.Body
	if len(b) < 2 {
		return Publish{}, fmt.Errorf("%w: PUBLISH shorter than its topic length", ErrMalformed)
	}
	tl := int(binary.BigEndian.Uint16(b))
	need := 2 + tl
	if qos > 0 {
		need += 2
	}
	if len(b) < need {
		return Publish{}, fmt.Errorf("%w: PUBLISH topic of %d bytes overruns a %d-byte body", ErrMalformed, tl, len(b))
	}
	pub := Publish{QoS: qos, Topic: b[2 : 2+tl]}
	if qos > 0 {
		pub.ID = binary.BigEndian.Uint16(b[2+tl:])
	}
	pub.Payload = b[need:]
	return pub, nil
}

// ConnackCode reads a CONNACK's return code (0 = accepted).
func ConnackCode(p Packet) (byte, error) {
	if p.Type != CONNACK || len(p.Body) != 2 {
		return 0, fmt.Errorf("%w: expected a 2-byte CONNACK, got type %d with %d bytes", ErrMalformed, p.Type, len(p.Body))
	}
	return p.Body[1], nil
}
