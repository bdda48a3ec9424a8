package mqttwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiDecode decodes one frame with mochi's codec: an independent check
// of what this package encodes.
func mochiDecode(t *testing.T, frame []byte) packets.Packet {
	t.Helper()
	var fh packets.FixedHeader
	if err := fh.Decode(frame[0]); err != nil {
		t.Fatalf("fixed header: %v", err)
	}
	n, used, err := packets.DecodeLength(bytes.NewReader(frame[1:]))
	if err != nil {
		t.Fatalf("length: %v", err)
	}
	if 1+used+n != len(frame) {
		t.Fatalf("frame is %d bytes, header says %d", len(frame), 1+used+n)
	}
	fh.Remaining = n
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 4}
	body := frame[1+used:]
	switch fh.Type {
	case packets.Connect:
		err = pk.ConnectDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Subscribe:
		err = pk.SubscribeDecode(body)
	case packets.Pingreq, packets.Disconnect:
	default:
		t.Fatalf("unexpected type %d", fh.Type)
	}
	if err != nil {
		t.Fatalf("mochi decode type %d: %v", fh.Type, err)
	}
	return pk
}

func TestEncodingsDecodeWithMochi(t *testing.T) {
	c := mochiDecode(t, AppendConnect(nil, Connect{ClientID: "gwb-1", Username: "bench", Password: "secret", KeepAlive: 60, CleanSession: true}))
	if c.Connect.ClientIdentifier != "gwb-1" || string(c.Connect.Username) != "bench" || string(c.Connect.Password) != "secret" ||
		c.Connect.Keepalive != 60 || !c.Connect.Clean || c.ProtocolVersion != 4 {
		t.Fatalf("connect decoded as %+v", c.Connect)
	}
	anon := mochiDecode(t, AppendConnect(nil, Connect{ClientID: "x"}))
	if anon.Connect.UsernameFlag || anon.Connect.PasswordFlag || anon.Connect.Clean {
		t.Fatalf("anonymous connect decoded with flags %+v", anon.Connect)
	}

	payload := bytes.Repeat([]byte{0xab}, 64)
	for _, qos := range []byte{0, 1} {
		frame := AppendPublish(nil, "bench/t/3", qos, 513, payload)
		if len(frame) != PublishSize("bench/t/3", qos, len(payload)) {
			t.Fatalf("qos %d: PublishSize %d, encoded %d", qos, PublishSize("bench/t/3", qos, 64), len(frame))
		}
		p := mochiDecode(t, frame)
		if p.TopicName != "bench/t/3" || p.FixedHeader.Qos != qos || !bytes.Equal(p.Payload, payload) {
			t.Fatalf("qos %d publish decoded as topic %q qos %d payload %x", qos, p.TopicName, p.FixedHeader.Qos, p.Payload)
		}
		if qos == 1 && p.PacketID != 513 {
			t.Fatalf("packet id %d, want 513", p.PacketID)
		}
	}
	// A payload long enough for a 3-byte remaining length.
	big := bytes.Repeat([]byte{1}, 20000)
	if p := mochiDecode(t, AppendPublish(nil, "b", 0, 0, big)); len(p.Payload) != len(big) {
		t.Fatalf("big payload decoded to %d bytes", len(p.Payload))
	}
	if p := mochiDecode(t, AppendPuback(nil, 65535)); p.PacketID != 65535 {
		t.Fatalf("puback id %d", p.PacketID)
	}
	s := mochiDecode(t, AppendSubscribe(nil, 7, "bench/#", 1))
	if s.PacketID != 7 || len(s.Filters) != 1 || s.Filters[0].Filter != "bench/#" || s.Filters[0].Qos != 1 {
		t.Fatalf("subscribe decoded as id %d filters %+v", s.PacketID, s.Filters)
	}
	mochiDecode(t, AppendPingreq(nil))
	mochiDecode(t, AppendDisconnect(nil))
}

// trickle hands out at most n bytes per Read, to cut frames anywhere.
type trickle struct {
	b []byte
	n int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min(r.n, len(p), len(r.b))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

func TestReaderSplitsFramesCutAnywhere(t *testing.T) {
	var stream []byte
	for i := range 300 {
		stream = AppendPublish(stream, "t/"+strings.Repeat("x", i%7), byte(i%2), uint16(i+1), bytes.Repeat([]byte{byte(i)}, i))
	}
	stream = AppendPuback(stream, 9)
	for _, step := range []int{1, 3, 64, 1 << 20} {
		r := NewReader(&trickle{b: stream, n: step}, 64, 1<<16)
		for i := range 300 {
			pk, err := r.Next()
			if err != nil {
				t.Fatalf("step %d packet %d: %v", step, i, err)
			}
			pub, err := ParsePublish(pk)
			if err != nil {
				t.Fatalf("step %d packet %d: %v", step, i, err)
			}
			if pub.QoS != byte(i%2) || len(pub.Payload) != i || string(pub.Topic) != "t/"+strings.Repeat("x", i%7) {
				t.Fatalf("step %d packet %d: got qos %d topic %q payload %d bytes", step, i, pub.QoS, pub.Topic, len(pub.Payload))
			}
			if pub.QoS == 1 && pub.ID != uint16(i+1) {
				t.Fatalf("step %d packet %d: id %d", step, i, pub.ID)
			}
		}
		pk, err := r.Next()
		if err != nil || pk.Type != PUBACK {
			t.Fatalf("step %d: last packet %+v, %v", step, pk, err)
		}
		if len(pk.Body) != 2 || binary.BigEndian.Uint16(pk.Body) != 9 {
			t.Fatalf("step %d: puback body %x, want id 9", step, pk.Body)
		}
		if r.HasPacket() {
			t.Fatalf("step %d: HasPacket after the stream was consumed", step)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("step %d: after the last frame got %v, want EOF", step, err)
		}
	}
}

func TestReaderRefusesBadFrames(t *testing.T) {
	cases := map[string][]byte{
		"five-byte length": {PUBLISH << 4, 0xff, 0xff, 0xff, 0xff, 0x01},
		"over the limit":   AppendPublish(nil, "t", 0, 0, make([]byte, 200)),
	}
	for name, b := range cases {
		_, err := NewReader(bytes.NewReader(b), 64, 100).Next()
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := NewReader(bytes.NewReader([]byte{PUBLISH << 4, 10, 0}), 64, 100).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: got %v, want ErrUnexpectedEOF", err)
	}
	if _, err := ParsePublish(Packet{Type: PUBLISH, Body: []byte{0, 9, 'a'}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("topic overrun: got %v", err)
	}
	if _, err := ParsePublish(Packet{Type: PUBLISH, Flags: 6, Body: []byte{0, 1, 'a'}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("qos 3: got %v", err)
	}
	if _, err := ConnackCode(Packet{Type: CONNACK, Body: []byte{0}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short connack: got %v", err)
	}
}

func BenchmarkAppendPublish(b *testing.B) {
	payload := make([]byte, 64)
	buf := make([]byte, 0, 4096)
	for b.Loop() {
		buf = AppendPublish(buf[:0], "bench/fanin/3", 0, 0, payload)
	}
}
