package gateway_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"

	"github.com/homebox/gateway/internal/testkit"
)

// An MQTT 5 subscriber gets a Message Expiry Interval only when the
// publisher set one (MQTT 5, 3.3.2.3.3): the broker's retain-forever bound
// never reaches the wire, on the fast path (QoS 0) or mochi's (QoS 1), live
// or retained.
func TestNoExpiryLeaksOntoTheWire(t *testing.T) {
	b := startBroker(t, anonConf)
	addr := "127.0.0.1:" + b.port()
	type got struct {
		topic  string
		expiry *uint32
	}
	var mu sync.Mutex
	var seen []got
	dial := func(id string, onMsg func(paho.PublishReceived) (bool, error)) *paho.Client {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cfg := paho.ClientConfig{ClientID: id, Conn: conn}
		if onMsg != nil {
			cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onMsg}
		}
		c := paho.NewClient(cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}); conn.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := dial("exp-pub", nil)
	sixty := uint32(60)
	publish := func(topic string, qos byte, retain bool, exp *uint32) {
		p := &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte("x")}
		if exp != nil {
			p.Properties = &paho.PublishProperties{MessageExpiry: exp}
		}
		if _, err := pub.Publish(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	publish("exp/retained/none", 1, true, nil)
	publish("exp/retained/sixty", 1, true, &sixty)
	sub := dial("exp-sub", func(r paho.PublishReceived) (bool, error) {
		mu.Lock()
		seen = append(seen, got{r.Packet.Topic, r.Packet.Properties.MessageExpiry})
		mu.Unlock()
		return true, nil
	})
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "exp/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	publish("exp/q0/none", 0, false, nil)
	publish("exp/q0/sixty", 0, false, &sixty)
	publish("exp/q1/none", 1, false, nil)
	publish("exp/q1/sixty", 1, false, &sixty)
	var all []got
	testkit.WaitFor(t, 15*time.Second, "six messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		all = append(all[:0], seen...)
		return len(all) >= 6
	})
	for _, g := range all {
		wantSet := g.topic[len(g.topic)-5:] == "sixty"
		switch {
		case wantSet && (g.expiry == nil || *g.expiry == 0 || *g.expiry > 60):
			t.Errorf("%s: expiry %v, want the publisher's 60 s (or less)", g.topic, g.expiry)
		case !wantSet && g.expiry != nil:
			t.Errorf("%s: expiry %d on a message whose publisher set none", g.topic, *g.expiry)
		}
	}
}
