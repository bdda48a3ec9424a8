package packetids_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/gateway/packetids"
)

// rawClient speaks MQTT 5 in bytes, so the test chooses every packet id.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "dev",
		},
	})
	if pk := c.read(); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("CONNACK: %+v", pk)
	}
	return c
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = 5
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet, decoded as far as the test needs.
func (c *rawClient) read() packets.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatal(err)
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		c.t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// expect reads until a packet of type typ, skipping deliveries.
func (c *rawClient) expect(typ byte) packets.Packet {
	c.t.Helper()
	for range 20 {
		if pk := c.read(); pk.FixedHeader.Type == typ {
			return pk
		}
	}
	c.t.Fatalf("no packet of type %d", typ)
	return packets.Packet{}
}

func subscribe(id uint16, filter string) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: 1}},
	}
}

func unsubscribe(id uint16, filter string) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter}},
	}
}

// collide starts a broker (mended or bare), leaves its QoS 1 delivery with
// id 1 unacknowledged at a client, then sends that client's SUBSCRIBE and
// UNSUBSCRIBE with id 1. It returns the SUBACK and the UNSUBACK.
func collide(t *testing.T, mend bool) (suback, unsuback packets.Packet) {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if mend {
		if err := s.AddHook(packetids.New(), nil); err != nil {
			t.Fatal(err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	c := dial(t, l.Address())
	c.send(subscribe(7, "a"))
	if ack := c.expect(packets.Suback); ack.PacketID != 7 || ack.ReasonCodes[0] != 1 {
		t.Fatalf("first SUBACK: %+v", ack)
	}
	if err := s.Publish("a", []byte("m"), false, 1); err != nil {
		t.Fatal(err)
	}
	if pk := c.expect(packets.Publish); pk.PacketID != 1 {
		t.Fatalf("delivery id %d, want 1", pk.PacketID)
	}
	// The delivery stays unacknowledged: id 1 is in mochi's inflight table.
	c.send(subscribe(1, "b"))
	suback = c.expect(packets.Suback)
	c.send(unsubscribe(1, "b"))
	unsuback = c.expect(packets.Unsuback)
	return suback, unsuback
}

// TestGrantsCollidingIDs: the client's ids are its own, and its acks carry them.
func TestGrantsCollidingIDs(t *testing.T) {
	suback, unsuback := collide(t, true)
	if suback.PacketID != 1 || len(suback.ReasonCodes) != 1 || suback.ReasonCodes[0] != 1 {
		t.Errorf("SUBACK id %d codes %x, want id 1 granted QoS 1", suback.PacketID, suback.ReasonCodes)
	}
	if unsuback.PacketID != 1 || len(unsuback.ReasonCodes) != 1 || unsuback.ReasonCodes[0] != 0 {
		t.Errorf("UNSUBACK id %d codes %x, want id 1 success", unsuback.PacketID, unsuback.ReasonCodes)
	}
}

// TestMochiStillAnswers0x91 fails once mochi keeps the client's packet ids
// apart from its own deliveries; then this package can go.
func TestMochiStillAnswers0x91(t *testing.T) {
	suback, unsuback := collide(t, false)
	if len(suback.ReasonCodes) != 1 || suback.ReasonCodes[0] != 0x91 {
		t.Errorf("bare mochi SUBACK codes %x, want 91: mochi separates the id spaces now; drop gateway/packetids", suback.ReasonCodes)
	}
	if len(unsuback.ReasonCodes) != 1 || unsuback.ReasonCodes[0] != 0x91 {
		t.Errorf("bare mochi UNSUBACK codes %x, want 91: drop gateway/packetids", unsuback.ReasonCodes)
	}
}
