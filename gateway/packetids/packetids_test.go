package packetids_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/gateway/packetids"
	"github.com/homebox/gateway/internal/testkit"
)

// rawClient speaks MQTT 5 in bytes, so the test chooses every packet id.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialAs(t *testing.T, addr, id string) *rawClient { return dialRM(t, addr, id, 0) }

// dialRM connects as id with Receive Maximum rm (0: none sent).
func dialRM(t *testing.T, addr, id string, rm uint16) *rawClient {
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
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id,
		},
		Properties: packets.Properties{ReceiveMaximum: rm},
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
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
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
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
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

func publish(id uint16, qos byte, topic string) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		PacketID:    id,
		TopicName:   topic,
		Payload:     []byte("p"),
	}
}

func ack(typ byte, id uint16) packets.Packet {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id}
	if typ == packets.Pubrel {
		pk.FixedHeader.Qos = 1
	}
	return pk
}

// seen is what a client sees when its packet ids equal the id of the
// broker's unacknowledged delivery to it, and what the broker then holds.
type seen struct {
	suback, unsuback, puback, pubrec, pubcomp packets.Packet
	// held1, held2: whether the delivery is still in mochi's table after
	// the client's QoS 1, then QoS 2 publish with its id.
	held1, held2 bool
	// left: entries in the table once the client has acked everything.
	left int
	// sentAfter: whether a new delivery goes out after that.
	sentAfter bool
	id2       uint16 // its id, which the QoS 2 publish uses
}

// collide starts a broker (mended or bare), leaves its QoS 1 delivery with
// id 1 unacknowledged at a client (Receive Maximum 1), then sends that
// client's SUBSCRIBE, UNSUBSCRIBE and QoS 1 PUBLISH with id 1, and acks the
// delivery; if a next delivery comes, a QoS 2 PUBLISH (with its PUBREL) with
// that one's id, and acks it.
func collide(t *testing.T, mend bool) seen {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	hooks := []mqtt.Hook{new(auth.AllowHook)}
	if mend {
		hooks = append(hooks, packetids.New())
	}
	addr := testkit.ServeMochi(t, s, hooks...)

	// Receive Maximum 1: the delivery takes mochi's whole send quota.
	c := dialRM(t, addr, "dev", 1)
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
	cl, ok := s.Clients.Get("dev")
	if !ok {
		t.Fatal("no client dev")
	}
	delivery := func(id uint16) bool {
		pk, ok := cl.State.Inflight.Get(id)
		return ok && pk.FixedHeader.Type == packets.Publish
	}
	// The delivery stays unacknowledged: id 1 is in mochi's inflight table.
	var w seen
	c.send(subscribe(1, "b"))
	w.suback = c.expect(packets.Suback)
	c.send(unsubscribe(1, "b"))
	w.unsuback = c.expect(packets.Unsuback)
	c.send(publish(1, 1, "p"))
	w.puback = c.expect(packets.Puback)
	w.held1 = delivery(1)
	// Acknowledged, the delivery gives back the send quota: the next
	// message goes out.
	c.send(ack(packets.Puback, 1))
	// Once mochi has handled that ack: a message it holds for want of
	// quota goes out later untracked (NextImmediate), another story.
	testkit.WaitFor(t, 5*time.Second, "the PUBACK handled", func() bool {
		_, ok := cl.State.Inflight.Get(1)
		return !ok || !w.held1
	})
	if err := s.Publish("a", []byte("m2"), false, 1); err != nil {
		t.Fatal(err)
	}
	id, ok := c.publishWithin(2 * time.Second)
	if w.sentAfter = ok; !ok {
		return w
	}
	c.send(publish(id, 2, "p"))
	w.pubrec = c.expect(packets.Pubrec)
	w.held2 = delivery(id)
	c.send(ack(packets.Pubrel, id))
	w.pubcomp = c.expect(packets.Pubcomp)
	c.send(ack(packets.Puback, id))
	// A PINGREQ's answer says the packets before it were handled.
	if _, err := c.conn.Write([]byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	c.expect(packets.Pingresp)
	w.left = cl.State.Inflight.Len()
	w.id2 = id
	return w
}

// publishWithin returns the id of a PUBLISH that arrives within d.
func (c *rawClient) publishWithin(d time.Duration) (uint16, bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		_ = c.conn.SetReadDeadline(deadline)
		hb, err := c.r.Peek(1)
		if err != nil {
			return 0, false // the deadline
		}
		pk := c.read()
		if hb[0]>>4 == packets.Publish {
			return pk.PacketID, true
		}
	}
	return 0, false
}

// TestKeepsClientIDsApart: the client's ids are its own, and its acks
// carry them; the broker's delivery stays until the client acks it.
func TestKeepsClientIDsApart(t *testing.T) {
	w := collide(t, true)
	if w.suback.PacketID != 1 || len(w.suback.ReasonCodes) != 1 || w.suback.ReasonCodes[0] != 1 {
		t.Errorf("SUBACK id %d codes %x, want id 1 granted QoS 1", w.suback.PacketID, w.suback.ReasonCodes)
	}
	if w.unsuback.PacketID != 1 || len(w.unsuback.ReasonCodes) != 1 || w.unsuback.ReasonCodes[0] != 0 {
		t.Errorf("UNSUBACK id %d codes %x, want id 1 success", w.unsuback.PacketID, w.unsuback.ReasonCodes)
	}
	if w.puback.PacketID != 1 || w.puback.ReasonCode != 0 {
		t.Errorf("PUBACK id %d reason %#x, want id 1, 0", w.puback.PacketID, w.puback.ReasonCode)
	}
	if !w.held1 {
		t.Error("delivery lost at the client's QoS 1 publish with its id")
	}
	if !w.sentAfter {
		t.Fatal("no delivery after the collision: send quota lost")
	}
	for name, pk := range map[string]packets.Packet{"PUBREC": w.pubrec, "PUBCOMP": w.pubcomp} {
		if pk.PacketID != w.id2 || pk.ReasonCode != 0 {
			t.Errorf("%s id %d reason %#x, want id %d, 0", name, pk.PacketID, pk.ReasonCode, w.id2)
		}
	}
	if !w.held2 {
		t.Error("delivery lost at the client's QoS 2 publish with its id")
	}
	if w.left != 0 {
		t.Errorf("%d entries left in the inflight table, want 0", w.left)
	}
}

// TestMochiStillTakesClientIDsForItsOwn fails once mochi keeps the
// client's packet ids apart from its own deliveries; then gateway/packetids
// can go.
func TestMochiStillTakesClientIDsForItsOwn(t *testing.T) {
	w := collide(t, false)
	if len(w.suback.ReasonCodes) != 1 || w.suback.ReasonCodes[0] != 0x91 {
		t.Errorf("bare mochi SUBACK codes %x, want 91: drop gateway/packetids?", w.suback.ReasonCodes)
	}
	if len(w.unsuback.ReasonCodes) != 1 || w.unsuback.ReasonCodes[0] != 0x91 {
		t.Errorf("bare mochi UNSUBACK codes %x, want 91: drop gateway/packetids?", w.unsuback.ReasonCodes)
	}
	if w.held1 {
		t.Error("bare mochi kept its delivery after a QoS 1 publish with its id: drop the PUBLISH part of gateway/packetids?")
	}
	if w.sentAfter {
		t.Error("bare mochi sent a delivery after the collision (Receive Maximum 1): it no longer loses the send quota")
	}
}

// TestAnswersLikeMosquitto: the same colliding packets to Debian's
// mosquitto and to mochi with the mend get the same acks (ids and codes).
// Publishes go to the subscribed topic: Mosquitto answers MQTT 5 0x10 for
// a topic nobody subscribes to (see docs/BROKER.md, wire answers).
func TestAnswersLikeMosquitto(t *testing.T) {
	testkit.RequireTool(t, "mosquitto")
	port := testkit.FreePort(t)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testkit.Start(t, "mosquitto", "-v", "-c", conf)
	p.WaitLine(t, 10*time.Second, regexp.MustCompile(fmt.Sprintf("listen socket on port %d", port)))

	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	for _, h := range []mqtt.Hook{new(auth.AllowHook), packetids.New()} {
		if err := s.AddHook(h, nil); err != nil {
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

	answers := func(addr string) []string {
		c := dialAs(t, addr, "dev")
		c.send(subscribe(7, "a"))
		c.expect(packets.Suback)
		other := dialAs(t, addr, "other")
		other.send(publish(1, 1, "a"))
		other.expect(packets.Puback)
		if pk := c.expect(packets.Publish); pk.PacketID != 1 {
			t.Fatalf("%s: delivery id %d, want 1", addr, pk.PacketID)
		}
		var out []string
		note := func(pk packets.Packet) {
			out = append(out, fmt.Sprintf("type %d id %d reason %#x codes %x", pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode, pk.ReasonCodes))
		}
		c.send(subscribe(1, "b"))
		note(c.expect(packets.Suback))
		c.send(unsubscribe(1, "b"))
		note(c.expect(packets.Unsuback))
		c.send(publish(1, 1, "a"))
		note(c.expect(packets.Puback))
		c.send(publish(1, 2, "a"))
		note(c.expect(packets.Pubrec))
		c.send(ack(packets.Pubrel, 1))
		note(c.expect(packets.Pubcomp))
		return out
	}
	mosq, gw := answers(fmt.Sprintf("127.0.0.1:%d", port)), answers(l.Address())
	for i := range mosq {
		if mosq[i] != gw[i] {
			t.Errorf("mosquitto: %s\nmochi+mend: %s", mosq[i], gw[i])
		}
	}
}
