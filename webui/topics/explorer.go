package topics

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/internal/brokerlink"
	"github.com/homebox/gateway/internal/pahostore"
)

// Explorer is the console's subscriber to every topic, and its publisher.
type Explorer struct {
	tree *Tree
	c    mqtt.Client
	link *brokerlink.Link
	log  *slog.Logger
}

// Start connects (and keeps reconnecting) in the background, through the
// box's own link (its service account may read every topic, `$SYS`
// included, and write any but `$` topics).
func Start(link *brokerlink.Link, maxTopics int, log *slog.Logger) *Explorer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Explorer{tree: NewTree(maxTopics), link: link, log: log}
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	o := mqtt.NewClientOptions()
	link.Configure(o)
	o.SetClientID("gatewayd-explorer-" + hex.EncodeToString(nonce)).
		SetCleanSession(true).
		SetStore(pahostore.New()).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetOrderMatters(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.SubscribeMultiple(map[string]byte{"#": 0, "$SYS/#": 0}, e.onMessage)
		})
	e.c = mqtt.NewClient(o)
	e.c.Connect()
	return e
}

func (e *Explorer) onMessage(_ mqtt.Client, m mqtt.Message) {
	e.tree.Record(Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained(), At: time.Now()})
}

// Tree is what the explorer heard.
func (e *Explorer) Tree() *Tree { return e.tree }

// Publish sends one message and waits for the broker to take it.
func (e *Explorer) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if !e.c.IsConnectionOpen() {
		return errors.New("the explorer is not connected to the broker")
	}
	t := e.c.Publish(topic, qos, retain, payload)
	if !t.WaitTimeout(10 * time.Second) {
		return errors.New("the broker did not answer in time")
	}
	return t.Error()
}

// Close disconnects.
func (e *Explorer) Close() { e.c.Disconnect(250) }

// Retained asks the broker which topics at topic (and below it, with
// subtree) hold a retained message. MQTT 3.1.1 delivers a retained
// message that is published live without its retain flag, so the tree
// cannot tell; a new subscription gets the retained ones flagged. A marker
// published after the subscription comes back after all of them.
func (e *Explorer) Retained(topic string, subtree bool) ([]string, error) {
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	marker := "gateway/sync/explorer-" + hex.EncodeToString(nonce)
	var found []string
	done := make(chan struct{})
	o := mqtt.NewClientOptions()
	e.link.Configure(o)
	o.SetClientID("gatewayd-explorer-scan-" + hex.EncodeToString(nonce[:4])).SetCleanSession(true).SetOrderMatters(true).
		SetStore(pahostore.New()).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(o)
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("reading the retained messages: cannot connect: %v", t.Error())
	}
	defer c.Disconnect(100)
	filters := map[string]byte{topic: 0, marker: 0}
	if subtree {
		filters[topic+"/#"] = 0
	}
	var once sync.Once
	handler := func(_ mqtt.Client, m mqtt.Message) {
		switch {
		case m.Topic() == marker:
			once.Do(func() { close(done) })
		case m.Retained() && len(m.Payload()) > 0:
			found = append(found, m.Topic())
			e.tree.Record(Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: true, At: time.Now()})
		}
	}
	if t := c.SubscribeMultiple(filters, handler); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("reading the retained messages: cannot subscribe: %v", t.Error())
	}
	if t := c.Publish(marker, 0, false, nonce); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("reading the retained messages: %v", t.Error())
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return nil, errors.New("reading the retained messages: the broker did not send them in time")
	}
	slices.Sort(found)
	return slices.Compact(found), nil
}
