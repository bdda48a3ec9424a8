package discovery

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/discovery/announce"
	"github.com/homebox/gateway/discovery/registry"
	"github.com/homebox/gateway/internal/pahostore"
)

// mqttLink is discovery's client of the local broker: it reads the announce
// topics and the availability topics they name, and publishes the box's own
// announce with a will that marks it offline.
type mqttLink struct {
	s      *Service
	c      mqtt.Client
	ready  chan struct{}
	once   sync.Once
	syncT  string
	nonce  string
	wait   time.Duration
	kick   chan struct{} // availability topics are pending
	reread chan struct{} // Home Assistant came online: read the retained configs again

	mu      sync.Mutex
	pending []string
	done    chan struct{}
}

// subscribeChunk bounds one SUBSCRIBE packet when many availability topics
// are pending at once.
const subscribeChunk = 256

func startMQTT(s *Service) (*mqttLink, error) {
	var u *url.URL
	if s.opts.Link == nil {
		var err error
		if u, err = url.Parse(s.opts.BrokerURL); err != nil {
			return nil, fmt.Errorf("discovery: broker URL %q: %w", s.opts.BrokerURL, err)
		}
		switch u.Scheme {
		case "mqtt", "tcp", "mqtts", "ssl", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("discovery: broker URL %q: scheme must be mqtt, mqtts, tcp, ssl, ws or wss", s.opts.BrokerURL)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("discovery: broker URL %q has no host", s.opts.BrokerURL)
		}
	}
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	clientID := "gatewayd-discovery-" + s.opts.GatewayID
	l := &mqttLink{
		s:      s,
		ready:  make(chan struct{}),
		syncT:  "gateway/sync/" + clientID,
		nonce:  hex.EncodeToString(nonce),
		wait:   10 * time.Second,
		kick:   make(chan struct{}, 1),
		reread: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	o := mqtt.NewClientOptions()
	if s.opts.Link != nil {
		s.opts.Link.Configure(o)
	} else {
		o.AddBroker(s.opts.BrokerURL)
	}
	o.SetClientID(clientID).
		SetCleanSession(true).
		SetStore(pahostore.New()). // paho v1.5.1 races on resend without it
		SetOrderMatters(true).     // an announce and its removal must not swap
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10*time.Second).
		SetKeepAlive(30*time.Second).
		SetWill(announce.AvailabilityTopic(s.opts.GatewayID), registry.Offline, 1, true).
		SetDefaultPublishHandler(l.onMessage).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.log.Warn("discovery: lost the broker, reconnecting", "error", err)
		})
	if u != nil && u.User != nil {
		o.SetUsername(u.User.Username())
		if p, ok := u.User.Password(); ok {
			o.SetPassword(p)
		}
	}
	l.c = mqtt.NewClient(o)
	l.c.Connect() // retries in the background until the broker accepts
	go l.worker()
	return l, nil
}

// onConnect runs after every (re)connection: the session is clean, so
// everything is subscribed again.
func (l *mqttLink) onConnect(c mqtt.Client) {
	s := l.s
	s.log.Info("discovery: connected to the broker", "broker", s.opts.BrokerURL)
	l.publishSelf()
	filters := map[string]byte{l.syncT: 0, s.parsers.StatusTopic(): 0}
	for _, f := range s.parsers.Filters() {
		filters[f] = 0
	}
	if !l.await(c.SubscribeMultiple(filters, nil), "subscribe to announce topics") {
		return
	}
	l.subscribe(s.reg.AvailabilityTopics())
	// Retained messages are queued before anything published after the
	// subscription, so when our own marker comes back they have all arrived.
	l.await(c.Publish(l.syncT, 0, false, l.nonce), "publish sync marker")
}

// publishSelf publishes the box's own announce and marks it online.
func (l *mqttLink) publishSelf() {
	s := l.s
	if !l.c.IsConnectionOpen() {
		return
	}
	a, payload, err := s.ownAnnounce()
	if err != nil {
		s.log.Error("discovery: encode own announce", "error", err)
		return
	}
	l.await(l.c.Publish(announce.AnnounceTopic(a.ID), 1, true, payload), "publish own announce")
	l.await(l.c.Publish(a.AvailabilityTopic, 1, true, registry.Online), "publish own availability")
}

func (l *mqttLink) await(t mqtt.Token, what string) bool {
	if !t.WaitTimeout(l.wait) {
		l.s.log.Warn("discovery: broker did not answer in time", "action", what)
		return false
	}
	if err := t.Error(); err != nil {
		l.s.log.Warn("discovery: broker refused", "action", what, "error", err)
		return false
	}
	return true
}

// onMessage handles every message, in order, on paho's router goroutine.
func (l *mqttLink) onMessage(_ mqtt.Client, m mqtt.Message) {
	s := l.s
	topic, payload := m.Topic(), m.Payload()
	now := time.Now()
	switch topic {
	case l.syncT:
		if string(payload) == l.nonce {
			l.once.Do(func() {
				close(l.ready)
				s.log.Info("discovery: retained announces read", "devices", s.reg.Len())
			})
		}
		return
	case s.parsers.StatusTopic():
		if string(payload) == registry.Online {
			select {
			case l.reread <- struct{}{}:
			default:
			}
		}
		return
	}
	res, ok, err := s.parsers.Parse(topic, payload, now)
	switch {
	case errors.Is(err, announce.ErrTooLarge):
		s.droppedMessages.Add(1)
		s.drops.warn("announce too large", "discovery: announce dropped whole, too large to read", "topic", limitTopic(topic), "error", err)
		return
	case err != nil:
		s.drops.warn("malformed announce", "discovery: malformed announce ignored", "topic", limitTopic(topic), "error", err, "bytes", len(payload))
		return
	case !ok:
		if len(payload) > s.opts.Limits.MaxAvailabilityPayload {
			s.droppedMessages.Add(1)
			s.drops.warn("availability payload too large", "discovery: availability payload dropped, too large to be a state",
				"topic", limitTopic(topic), "bytes", len(payload), "limit", s.opts.Limits.MaxAvailabilityPayload)
			return
		}
		s.reg.SetAvailability(topic, string(payload), now)
		return
	}
	topics, dropped := s.reg.Apply(res.Group, res.Claims)
	dropped.Add(res.Dropped)
	if !res.Dropped.Zero() {
		s.reg.CountDrops(res.Dropped)
	}
	if !dropped.Zero() {
		devices, entities := s.reg.Usage()
		lim := s.opts.Limits.Registry
		s.drops.warn("announce over the registry's limits", "discovery: announce partly dropped: over the registry's limits",
			"topic", limitTopic(topic), "dropped_devices", dropped.Devices, "dropped_entities", dropped.Entities, "dropped_fields", dropped.Fields,
			"devices", devices, "max_devices", lim.MaxDevices, "entities", entities, "max_entities", lim.MaxEntities,
			"max_entities_per_device", lim.MaxEntitiesPerDevice)
	}
	if len(topics) > 0 {
		l.mu.Lock()
		l.pending = append(l.pending, topics...)
		l.mu.Unlock()
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// limitTopic keeps a log line short whatever topic a client chose.
func limitTopic(t string) string {
	const n = 200
	if len(t) <= n {
		return t
	}
	return t[:n] + "…"
}

// worker subscribes newly named availability topics and re-reads the
// discovery topics when Home Assistant announces itself; both wait for the
// broker, so they never run on the message goroutine.
func (l *mqttLink) worker() {
	defer close(l.done)
	for {
		select {
		case <-l.s.ctx.Done():
			return
		case <-l.kick:
			l.mu.Lock()
			topics := l.pending
			l.pending = nil
			l.mu.Unlock()
			l.subscribe(topics)
		case <-l.reread:
			l.s.log.Info("discovery: Home Assistant is online, reading discovery topics again")
			filters := map[string]byte{}
			for _, f := range l.s.parsers.Filters() {
				filters[f] = 0
			}
			// Subscribing again makes the broker send the retained configs again.
			l.await(l.c.SubscribeMultiple(filters, nil), "re-read announce topics")
		}
	}
}

func (l *mqttLink) subscribe(topics []string) {
	for len(topics) > 0 && l.c.IsConnectionOpen() {
		n := min(len(topics), subscribeChunk)
		f := make(map[string]byte, n)
		for _, t := range topics[:n] {
			f[t] = 0
		}
		if !l.await(l.c.SubscribeMultiple(f, nil), "subscribe to availability topics") {
			return // onConnect subscribes them all again
		}
		topics = topics[n:]
	}
}

// close marks the box offline (the will only fires on a lost connection)
// and disconnects.
func (l *mqttLink) close() {
	if l.c.IsConnectionOpen() {
		l.await(l.c.Publish(announce.AvailabilityTopic(l.s.opts.GatewayID), 1, true, registry.Offline), "publish own offline")
	}
	l.c.Disconnect(250)
	<-l.done
}
