package fastpath

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/homebox/gateway/gateway/traffic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Config is what the hook needs from the broker; zero values take the
// defaults.
type Config struct {
	// ReadAllowed is the read-ACL check mochi makes per delivery
	// (OnACLCheck(cl, topic, false)). Its answers are kept in the route
	// cache: call Changed when ACLs reload. Nil: every subscriber counts,
	// and the fast path stays off (it could deliver what mochi refuses).
	ReadAllowed func(cl *mqtt.Client, topic string) bool
	// High is the depth of mochi's outbound queue at which publishers wait
	// (default: half of the server's MaximumClientWritesPending).
	High int64
	// Low is the depth below which they go on (default: High / 2).
	Low int64
	// StallAfter is how long a subscriber may write nothing while a
	// publisher waits for it before it is judged stuck (default 250 ms).
	StallAfter time.Duration
	// Traffic, when set, counts the fast path's deliveries by whose they
	// are, as traffic.Hook counts mochi's.
	Traffic *traffic.Counts
}

// Hook is the fast path and the back-pressure in one; add it last with
// server.AddHook(fastpath.New(server, cfg), nil), so that every other hook
// has seen a publish it takes.
type Hook struct {
	mqtt.HookBase
	srv  *mqtt.Server
	cfg  Config
	done chan struct{}
	once sync.Once

	routes routeCache
	queues sync.Map // *mqtt.Client -> *queue: mochi's outbound queue, as counted

	taken, waits, stalls atomic.Int64
}

// New returns the hook for srv.
func New(srv *mqtt.Server, cfg Config) *Hook {
	if cfg.High <= 0 {
		cfg.High = int64(srv.Options.Capabilities.MaximumClientWritesPending) / 2
	}
	if cfg.Low <= 0 || cfg.Low >= cfg.High {
		cfg.Low = cfg.High / 2
	}
	if cfg.StallAfter <= 0 {
		cfg.StallAfter = 250 * time.Millisecond
	}
	return &Hook{srv: srv, cfg: cfg, done: make(chan struct{})}
}

// ID names the hook.
func (h *Hook) ID() string { return "fastpath" }

// Provides says which events the hook follows.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnPacketSent, mqtt.OnPublishDropped, mqtt.OnDisconnect, mqtt.OnRetainPublished,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnSessionEstablished, mqtt.OnClientExpired:
		return true
	}
	return false
}

// Init takes nothing: New has the config.
func (h *Hook) Init(any) error { return nil }

// Stop releases every waiting publisher.
func (h *Hook) Stop() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Taken is how many publishes the fast path delivered, Waits how many
// times a publisher waited for a subscriber, Stalls how many times a
// subscriber was judged stuck.
func (h *Hook) Taken() int64  { return h.taken.Load() }
func (h *Hook) Waits() int64  { return h.waits.Load() }
func (h *Hook) Stalls() int64 { return h.stalls.Load() }

// OnPublish is the one decision per publish: the fast path delivers it
// (waiting on the subscribers' pending bytes) and mochi goes no further, or
// mochi delivers it and the publisher first waits while a subscriber's
// outbound queue is too deep.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	r := h.route(pk.TopicName)
	pub, _ := cl.Net.Conn.(*Conn) // nil: the broker's own client, or not ours
	if ours(&pk, r) {
		h.deliver(cl, pub, &pk, r)
		h.taken.Add(1)
		return pk, errIgnore
	}
	if pub != nil {
		// mochi's way may hold this reader (holdBack) before it reads
		// again: what the fast path left with subscribers goes out first.
		pub.flushDirty()
	}
	if !cl.Net.Inline {
		h.holdBack(cl, r)
	}
	return pk, nil
}

// ours says whether the fast path delivers pk: QoS 0, not retained, no
// property mochi would forward, a route whose every subscriber it can serve
// as mochi would, and none with messages still in mochi's queue (the fast
// path would overtake them: a retained "on" followed by a plain "off" would
// arrive as "off", "on").
func ours(pk *packets.Packet, r *route) bool {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 0 || pk.FixedHeader.Retain ||
		!r.fast || !plainProperties(&pk.Properties) {
		return false
	}
	for i := range r.targets {
		if r.targets[i].q.queued() {
			return false
		}
	}
	return true
}

// plainProperties: nothing mochi would copy into the delivered PUBLISH
// (the expiry mochi computes from its own cap is written by the fast path).
func plainProperties(p *packets.Properties) bool {
	return len(p.User) == 0 && p.ContentType == "" && len(p.CorrelationData) == 0 && p.ResponseTopic == "" &&
		!p.PayloadFormatFlag && p.MessageExpiryInterval == 0 && len(p.SubscriptionIdentifier) == 0 &&
		!p.TopicAliasFlag && p.TopicAlias == 0
}

// Changed voids the route cache: call it when what a route holds may have
// changed in a way the hook cannot see (ACLs reloaded).
func (h *Hook) Changed() { h.routes.void() }

// OnSubscribed voids the route cache.
func (h *Hook) OnSubscribed(*mqtt.Client, packets.Packet, []byte) { h.routes.void() }

// OnUnsubscribed voids the route cache.
func (h *Hook) OnUnsubscribed(*mqtt.Client, packets.Packet) { h.routes.void() }

// OnSessionEstablished voids the route cache: a new connection may have
// taken over a session and its subscriptions.
func (h *Hook) OnSessionEstablished(*mqtt.Client, packets.Packet) { h.routes.void() }

// OnClientExpired voids the route cache.
func (h *Hook) OnClientExpired(*mqtt.Client) { h.routes.void() }

// OnDisconnect voids the route cache, forgets the connection's count and
// frees the publishers waiting for it.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.routes.void()
	if v, ok := h.queues.LoadAndDelete(cl); ok {
		q := v.(*queue)
		q.gone.Store(true)
		q.signal()
	}
}
