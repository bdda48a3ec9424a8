package fastpath_test

import (
	"bytes"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

const wait = 5 * time.Second

func expect(t *testing.T, c *client, topic, payload string) msg {
	t.Helper()
	m, err := c.recv(wait)
	if err != nil {
		t.Fatalf("waiting for %s: %v", topic, err)
	}
	if m.topic != topic || string(m.payload) != payload {
		t.Fatalf("got %q on %s, want %q on %s", m.payload, m.topic, payload, topic)
	}
	return m
}

func plain(topic, payload string) []byte {
	return publish5orNot(false, topic, nil, payload)
}

func publish5orNot(v5 bool, topic string, props []byte, payload string) []byte {
	if v5 {
		return publish5(topic, props, []byte(payload))
	}
	b := str(nil, topic)
	return packet(0x30, append(b, payload...))
}

func TestRetainedGoesMochisWay(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("r/#", 0, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{})
	pub.write(retainedPublish("r/x", []byte("on")))
	if m := expect(t, sub, "r/x", "on"); m.retain {
		t.Fatal("a live delivery to a 3.1.1 subscriber kept the retain flag")
	}
	late := dial(t, b.addr, "late", dialOpts{})
	late.subscribe("r/#", 0, false, 0)
	if m := expect(t, late, "r/x", "on"); !m.retain {
		t.Fatal("the retained message was not retained")
	}
	b.requireTaken(t, 0)
}

func TestQoS1GoesMochisWay(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("q/#", 1, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{})
	pub.write(wire1("q/x", "on"))
	if m := expect(t, sub, "q/x", "on"); m.qos != 1 {
		t.Fatalf("delivered at QoS %d", m.qos)
	}
	b.requireTaken(t, 0)
}

func TestUserPropertiesGoMochisWay(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{v5: true})
	sub.subscribe("u/#", 0, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{v5: true})
	prop := str(str([]byte{0x26}, "room"), "kitchen")
	pub.write(publish5("u/x", prop, []byte("on")))
	if m := expect(t, sub, "u/x", "on"); !bytes.Contains(m.props, prop) {
		t.Fatalf("properties % x lack the user property", m.props)
	}
	b.requireTaken(t, 0)
}

func TestSubscriptionIdentifierGoesMochisWay(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{v5: true})
	sub.subscribe("s/#", 0, false, 7)
	pub := dial(t, b.addr, "pub", dialOpts{})
	pub.write(plain("s/x", "on"))
	if m := expect(t, sub, "s/x", "on"); !bytes.Contains(m.props, []byte{0x0B, 7}) {
		t.Fatalf("properties % x lack subscription identifier 7", m.props)
	}
	b.requireTaken(t, 0)
}

// MQTT 5 subscribers get what mochi sends them: only the Message Expiry
// Interval mochi derives from its cap.
func TestV5SubscriberGetsMochisProperties(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{v5: true})
	sub.subscribe("v/#", 0, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{})
	pub.write(plain("v/x", "on"))
	m := expect(t, sub, "v/x", "on")
	b.requireTaken(t, 1)
	// mochi's default cap is a day: property 0x02, 86400 s (one less if
	// the second turned meanwhile).
	if len(m.props) != 5 || m.props[0] != packets.PropMessageExpiryInterval {
		t.Fatalf("properties % x, want only a message expiry interval", m.props)
	}
	if e := uint32(m.props[1])<<24 | uint32(m.props[2])<<16 | uint32(m.props[3])<<8 | uint32(m.props[4]); e < 86399 || e > 86400 {
		t.Fatalf("message expiry interval %d", e)
	}
}

func TestNoLocal(t *testing.T) {
	b := startBroker(t, allowAll)
	self := dial(t, b.addr, "self", dialOpts{v5: true})
	self.subscribe("n/#", 0, true, 0)
	other := dial(t, b.addr, "other", dialOpts{})
	other.subscribe("n/#", 0, false, 0)
	self.write(publish5("n/x", nil, []byte("mine")))
	expect(t, other, "n/x", "mine")
	other.write(plain("n/y", "theirs"))
	expect(t, self, "n/y", "theirs") // only after the message it must not get
	expect(t, other, "n/y", "theirs")
}

func TestReadACLDenied(t *testing.T) {
	acl := "topic readwrite acl/#\n\nuser reader\ntopic read acl/#\ntopic deny acl/secret\n"
	b := startBroker(t, acl)
	reader := dial(t, b.addr, "r", dialOpts{user: "reader"})
	reader.subscribe("acl/#", 0, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{})
	pub.write(plain("acl/secret", "s1"))
	pub.write(plain("acl/open", "o1"))
	expect(t, reader, "acl/open", "o1") // and not s1 before it
	b.requireTaken(t, 2)

	// A reload voids the cached answers.
	b.reloadACL(t, "topic readwrite acl/#\n\nuser reader\ntopic read acl/#\ntopic deny acl/open\n")
	pub.write(plain("acl/open", "o2"))
	pub.write(plain("acl/secret", "s2"))
	expect(t, reader, "acl/secret", "s2")
}

func TestSharedSubscriptionGoesMochisWay(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("$share/g/sh/#", 0, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{})
	pub.write(plain("sh/x", "on"))
	expect(t, sub, "sh/x", "on")
	b.requireTaken(t, 0)
}

// Bridges subscribe with mochi's inline subscriptions.
func TestInlineSubscriptionGoesMochisWay(t *testing.T) {
	b := startBroker(t, allowAll)
	got := make(chan string, 1)
	must(t, b.srv.Subscribe("in/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		got <- string(pk.Payload)
	}))
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("in/#", 0, false, 0)
	pub := dial(t, b.addr, "pub", dialOpts{})
	pub.write(plain("in/x", "on"))
	expect(t, sub, "in/x", "on")
	select {
	case p := <-got:
		if p != "on" {
			t.Fatalf("inline subscription got %q", p)
		}
	case <-time.After(wait):
		t.Fatal("the inline subscription got nothing")
	}
	b.requireTaken(t, 0)
}

// The broker's own publishes (inline client) take the fast path and are
// written at once.
func TestInlinePublisher(t *testing.T) {
	b := startBroker(t, allowAll)
	sub := dial(t, b.addr, "ha", dialOpts{})
	sub.subscribe("ip/#", 0, false, 0)
	must(t, b.srv.Publish("ip/x", []byte("on"), false, 0))
	expect(t, sub, "ip/x", "on")
	b.requireTaken(t, 1)
}

func wire1(topic, payload string) []byte {
	b := str(nil, topic)
	b = append(b, 0, 1) // packet id 1
	return packet(0x32, append(b, payload...))
}
