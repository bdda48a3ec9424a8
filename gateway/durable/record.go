package durable

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Messages (queued and retained) are stored in a binary form of our own:
// mochi's JSON encoding of storage.Message was about a third of the
// store's CPU per QoS 1 message. Every other record stays mochi's JSON.
//
// A record is recognised by its first byte: '{' is mochi's JSON (stores
// written by mochi's bolt hook or by this hook before the change, still
// read), messageV1 is the form below. All integers are varints, strings and
// byte slices are a uvarint length and the bytes:
//
//	messageV1
//	T ID Client Origin TopicName Payload
//	FixedHeader.Remaining FixedHeader.Type FixedHeader.Qos flags(dup 1, retain 2)
//	Created Sent PacketID
//	CorrelationData, count + SubscriptionIdentifier..., count + (key, value)...,
//	ContentType ResponseTopic MessageExpiryInterval TopicAlias
//	PayloadFormat flags(PayloadFormatFlag 1)
const messageV1 byte = 1

// maxCount bounds a decoded list's length: more is a damaged record.
const maxCount = 1 << 16

var errShortRecord = errors.New("message record cut short")

// encodeMessage returns m in the binary form.
func encodeMessage(m *storage.Message) []byte {
	return appendMessage(make([]byte, 0, messageSizeHint(m)), m)
}

// messageSizeHint is about the length of m's binary form.
func messageSizeHint(m *storage.Message) int {
	return 48 + len(m.T) + len(m.ID) + len(m.Client) + len(m.Origin) + len(m.TopicName) + len(m.Payload)
}

// appendMessage appends m's binary form to b.
func appendMessage(b []byte, m *storage.Message) []byte {
	p := &m.Properties
	b = append(b, messageV1)
	for _, s := range []string{m.T, m.ID, m.Client, m.Origin, m.TopicName} {
		b = appendString(b, s)
	}
	b = appendBytes(b, m.Payload)
	b = binary.AppendVarint(b, int64(m.FixedHeader.Remaining))
	b = append(b, m.FixedHeader.Type, m.FixedHeader.Qos, flags(m.FixedHeader.Dup, m.FixedHeader.Retain))
	b = binary.AppendVarint(b, m.Created)
	b = binary.AppendVarint(b, m.Sent)
	b = binary.AppendUvarint(b, uint64(m.PacketID))
	b = appendBytes(b, p.CorrelationData)
	b = binary.AppendUvarint(b, uint64(len(p.SubscriptionIdentifier)))
	for _, id := range p.SubscriptionIdentifier {
		b = binary.AppendVarint(b, int64(id))
	}
	b = binary.AppendUvarint(b, uint64(len(p.User)))
	for _, u := range p.User {
		b = appendString(b, u.Key)
		b = appendString(b, u.Val)
	}
	b = appendString(b, p.ContentType)
	b = appendString(b, p.ResponseTopic)
	b = binary.AppendUvarint(b, uint64(p.MessageExpiryInterval))
	b = binary.AppendUvarint(b, uint64(p.TopicAlias))
	return append(b, p.PayloadFormat, flags(p.PayloadFormatFlag, false))
}

// decodeMessage reads a message record in either form.
func decodeMessage(data []byte) (storage.Message, error) {
	var m storage.Message
	if len(data) == 0 {
		return m, errShortRecord
	}
	switch data[0] {
	case '{':
		err := m.UnmarshalBinary(data)
		return m, err
	case messageV1:
	default:
		return m, fmt.Errorf("message record of unknown form %#x", data[0])
	}
	r := reader{b: data[1:]}
	p := &m.Properties
	for _, s := range []*string{&m.T, &m.ID, &m.Client, &m.Origin, &m.TopicName} {
		*s = r.string()
	}
	m.Payload = r.bytes()
	m.FixedHeader.Remaining = int(r.varint())
	m.FixedHeader.Type, m.FixedHeader.Qos = r.byte(), r.byte()
	m.FixedHeader.Dup, m.FixedHeader.Retain = unflags(r.byte())
	m.Created, m.Sent = r.varint(), r.varint()
	m.PacketID = uint16(r.uvarint())
	p.CorrelationData = r.bytes()
	if n := r.count(); n > 0 {
		p.SubscriptionIdentifier = make([]int, n)
		for i := range p.SubscriptionIdentifier {
			p.SubscriptionIdentifier[i] = int(r.varint())
		}
	}
	if n := r.count(); n > 0 {
		p.User = make([]packets.UserProperty, n)
		for i := range p.User {
			p.User[i] = packets.UserProperty{Key: r.string(), Val: r.string()}
		}
	}
	p.ContentType, p.ResponseTopic = r.string(), r.string()
	p.MessageExpiryInterval = uint32(r.uvarint())
	p.TopicAlias = uint16(r.uvarint())
	p.PayloadFormat = r.byte()
	p.PayloadFormatFlag, _ = unflags(r.byte())
	if r.err != nil {
		return storage.Message{}, r.err
	}
	if len(r.b) != 0 {
		return storage.Message{}, fmt.Errorf("message record: %d bytes too many", len(r.b))
	}
	return m, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func flags(a, b bool) byte {
	var f byte
	if a {
		f |= 1
	}
	if b {
		f |= 2
	}
	return f
}

func unflags(f byte) (bool, bool) { return f&1 != 0, f&2 != 0 }

// reader takes fields off a record; after the first error it returns
// zeros and keeps the error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShortRecord
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) count() int {
	n := r.uvarint()
	if n > maxCount || n > uint64(len(r.b)) { // every item takes a byte at least
		r.fail()
		return 0
	}
	return int(n)
}

// bytes returns a copy (nil when empty, as JSON decoding gives for a
// missing field) so that the record's buffer is not kept alive.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
