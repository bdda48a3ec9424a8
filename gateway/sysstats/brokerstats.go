// Package brokerstats watches the local broker from the outside, as an MQTT
// client of its $SYS topics: the broker is its own process, so the console
// learns its figures (clients, retained messages, traffic, each bridge's
// state) the way any Mosquitto tool would. It keeps the last ten minutes
// of messages per second for the console's graph.
package sysstats

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/homebox/gateway/internal/brokerlink"
	"github.com/homebox/gateway/internal/pahostore"
)

// DefaultWindow is how far back History goes.
const DefaultWindow = 10 * time.Minute

// maxPoints bounds History whatever sys_interval is.
const maxPoints = 600

// Options configure a Collector.
type Options struct {
	BrokerURL string           // e.g. mqtt://127.0.0.1:1883; unused when Link is set
	Link      *brokerlink.Link // the box's own way to the broker (service account, current address)
	Window    time.Duration    // [DefaultWindow]
	Logger    *slog.Logger
}

// Bridge is one bridge's live figures as the broker publishes them on
// $SYS/broker/bridges/<name>.
type Bridge struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Address     string    `json:"address"`
	LastError   string    `json:"last_error"`
	MessagesIn  int64     `json:"messages_in"`
	MessagesOut int64     `json:"messages_out"`
	Queued      int       `json:"queued"`
	Since       time.Time `json:"since"`
}

// Point is one tick of the traffic history.
type Point struct {
	T      time.Time `json:"t"`
	InPerS float64   `json:"in_per_s"`
	OutPer float64   `json:"out_per_s"`
}

// Snapshot is what the collector knows now.
type Snapshot struct {
	Up               bool    `json:"up"`
	Version          string  `json:"version"`
	UptimeS          int64   `json:"uptime_s"`
	ClientsConnected int64   `json:"clients_connected"`
	Retained         int64   `json:"retained"`
	Subscriptions    int64   `json:"subscriptions"`
	InPerS           float64 `json:"messages_in_per_s"`
	OutPerS          float64 `json:"messages_out_per_s"`
	// The figures above, split by whose they are, from the broker's
	// $SYS/broker/gateway/... topics (Split is false until one arrives, as
	// from a plain Mosquitto): the owner's clients and messages, the box's
	// own clients (console statistics, discovery, explorer) and $SYS.
	// Error says why the figures are not coming when Up is false: the
	// broker refused this client, or cannot be reached. A refused client
	// does not mean the broker is down.
	Error        string            `json:"error,omitempty"`
	Split        bool              `json:"split"`
	BoxClients   int64             `json:"box_clients"`
	OwnerInPerS  float64           `json:"owner_in_per_s"`
	OwnerOutPerS float64           `json:"owner_out_per_s"`
	BoxInPerS    float64           `json:"box_in_per_s"`
	BoxOutPerS   float64           `json:"box_out_per_s"`
	SysInPerS    float64           `json:"sys_in_per_s"`
	SysOutPerS   float64           `json:"sys_out_per_s"`
	Updated      time.Time         `json:"updated,omitzero"`
	History      []Point           `json:"-"`
	Bridges      map[string]Bridge `json:"-"`
}

type counter struct {
	v  int64
	at time.Time
	ok bool
}

// Collector is a running client of the broker's $SYS topics.
type Collector struct {
	o Options
	c mqtt.Client

	mu      sync.Mutex
	snap    Snapshot
	in, out counter
	split   map[string]*counter // per $SYS/broker/gateway/messages/... topic
	subs    map[chan struct{}]struct{}
}

// Start connects (and keeps reconnecting) to the broker in the background.
func Start(o Options) *Collector {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{o: o, subs: map[chan struct{}]struct{}{}, snap: Snapshot{Bridges: map[string]Bridge{}}, split: map[string]*counter{}}
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	opts := mqtt.NewClientOptions()
	if o.Link != nil {
		o.Link.Configure(opts)
	} else {
		opts.AddBroker(o.BrokerURL)
	}
	opts.SetClientID("gatewayd-console-" + hex.EncodeToString(nonce)).
		SetCleanSession(true).
		SetStore(pahostore.New()). // paho v1.5.1 races on resend without it
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(2 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(false).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			o.Logger.Info("broker statistics: connection lost", "error", err)
			c.setUp(false)
		}).
		SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
			if f, ok := n.(mqtt.ConnectionNotificationFailed); ok {
				c.failed(brokerlink.Why(f.Reason))
			}
		})
	c.c = mqtt.NewClient(opts)
	c.c.Connect() // retried in the background; the token is not waited on
	return c
}

func (c *Collector) onConnect(cl mqtt.Client) {
	c.o.Logger.Info("broker statistics: connected", "broker", c.o.BrokerURL)
	// Rates restart from the new broker's counters.
	c.mu.Lock()
	c.in, c.out, c.split = counter{}, counter{}, map[string]*counter{}
	c.mu.Unlock()
	c.setUp(true)
	cl.Subscribe("$SYS/broker/#", 0, c.onMessage)
}

// failed records why a connection attempt failed, logged once per reason.
func (c *Collector) failed(why string) {
	c.mu.Lock()
	changed := c.snap.Error != why
	c.snap.Error = why
	c.mu.Unlock()
	if changed {
		c.o.Logger.Warn("broker statistics: no figures", "reason", why)
		c.notify()
	}
}

func (c *Collector) setUp(up bool) {
	c.mu.Lock()
	c.snap.Up = up
	if up {
		c.snap.Error = ""
	}
	if !up {
		s := &c.snap
		s.InPerS, s.OutPerS = 0, 0
		s.OwnerInPerS, s.OwnerOutPerS, s.BoxInPerS, s.BoxOutPerS, s.SysInPerS, s.SysOutPerS = 0, 0, 0, 0, 0, 0
	}
	c.mu.Unlock()
	c.notify()
}

func (c *Collector) onMessage(_ mqtt.Client, m mqtt.Message) {
	topic, payload := m.Topic(), strings.TrimSpace(string(m.Payload()))
	now := time.Now()
	num := func() int64 {
		f := strings.Fields(payload)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n
	}
	c.mu.Lock()
	tick := false
	switch {
	case strings.HasPrefix(topic, "$SYS/broker/bridges/"):
		var b Bridge
		name := strings.TrimPrefix(topic, "$SYS/broker/bridges/")
		if json.Unmarshal(m.Payload(), &b) == nil && name != "" {
			b.Name = name
			c.snap.Bridges[name] = b
		}
	case topic == "$SYS/broker/version":
		c.snap.Version = payload
	case topic == "$SYS/broker/uptime":
		c.snap.UptimeS = num()
	case topic == "$SYS/broker/clients/connected":
		c.snap.ClientsConnected = num()
	case topic == "$SYS/broker/retained messages/count":
		c.snap.Retained = num()
	case topic == "$SYS/broker/subscriptions/count":
		c.snap.Subscriptions = num()
	case topic == "$SYS/broker/publish/messages/received":
		c.snap.InPerS = rate(&c.in, num(), now, m.Retained())
		tick = true
	case topic == "$SYS/broker/publish/messages/sent":
		c.snap.OutPerS = rate(&c.out, num(), now, m.Retained())
	case topic == topicBoxClients:
		c.snap.BoxClients = num()
	case strings.HasPrefix(topic, topicSplit):
		f := c.splitField(strings.TrimPrefix(topic, topicSplit))
		if f == nil {
			c.mu.Unlock()
			return
		}
		cn := c.split[topic]
		if cn == nil {
			cn = &counter{}
			c.split[topic] = cn
		}
		*f = rate(cn, num(), now, m.Retained())
		c.snap.Split = true
	default:
		c.mu.Unlock()
		return
	}
	c.snap.Updated = now
	if tick && !m.Retained() {
		// The graph is the owner's traffic where the broker tells it apart.
		in, out := c.snap.InPerS, c.snap.OutPerS
		if c.snap.Split {
			in, out = c.snap.OwnerInPerS, c.snap.OwnerOutPerS
		}
		c.snap.History = append(c.snap.History, Point{T: now.UTC(), InPerS: in, OutPer: out})
		cut := 0
		for cut < len(c.snap.History) && now.Sub(c.snap.History[cut].T) > c.o.Window {
			cut++
		}
		cut = max(cut, len(c.snap.History)-maxPoints)
		c.snap.History = slices.Delete(c.snap.History, 0, cut)
	}
	c.mu.Unlock()
	c.notify()
}

// The broker's split of its counters (gateway/traffic publishes them).
const (
	topicBoxClients = "$SYS/broker/gateway/clients/box"
	topicSplit      = "$SYS/broker/gateway/messages/"
)

// splitField is the rate a split topic ("received/owner", ...) sets.
func (c *Collector) splitField(name string) *float64 {
	s := &c.snap
	switch name {
	case "received/owner":
		return &s.OwnerInPerS
	case "sent/owner":
		return &s.OwnerOutPerS
	case "received/box":
		return &s.BoxInPerS
	case "sent/box":
		return &s.BoxOutPerS
	case "received/sys":
		return &s.SysInPerS
	case "sent/sys":
		return &s.SysOutPerS
	}
	return nil
}

// rate turns a growing counter into a per-second figure. A counter that
// went back (a broker restart) starts over.
//
// A retained value is the broker's last tick, replayed when this client
// subscribed, moments before the next live one: it starts nothing, or the
// first rate would be a tick's worth over a few milliseconds.
func rate(c *counter, v int64, now time.Time, retained bool) float64 {
	if retained {
		*c = counter{}
		return 0
	}
	prev := *c
	*c = counter{v: v, at: now, ok: true}
	if !prev.ok || v < prev.v {
		return 0
	}
	dt := now.Sub(prev.at).Seconds()
	if dt < 0.05 {
		return 0
	}
	return float64(v-prev.v) / dt
}

// Snapshot returns a copy of what is known now.
func (c *Collector) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snap
	s.History = slices.Clone(c.snap.History)
	s.Bridges = make(map[string]Bridge, len(c.snap.Bridges))
	for k, v := range c.snap.Bridges {
		s.Bridges[k] = v
	}
	return s
}

// Changed returns a channel that receives (coalesced) after every update,
// and a function to stop receiving.
func (c *Collector) Changed() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

func (c *Collector) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Close disconnects.
func (c *Collector) Close() {
	c.c.Disconnect(250)
}
