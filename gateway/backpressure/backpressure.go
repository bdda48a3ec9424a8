// Package backpressure makes publishers wait for slow subscribers instead of
// letting mochi drop their messages.
//
// mochi v2.7.9 hands each message for a subscriber to that subscriber's
// outbound queue (MaximumClientWritesPending packets) and drops it when the
// queue is full, QoS 0 and QoS 1/2 alike. In fan-in (many sensors, one Home
// Assistant) the single writer of the subscriber falls behind the many
// publishers' readers, and messages are lost while the subscriber is reading
// as fast as it can. Mosquitto, single-threaded, never reads faster than it
// writes.
//
// mochi does not expose a queue's length, so this hook keeps its own count
// per subscriber connection: a message routed to it in OnPublish (before
// mochi queues it) adds one, a PUBLISH written to it (OnPacketSent) or
// dropped (OnPublishDropped) takes one off. When a subscriber's count reaches
// High, the publisher's read goroutine, inside OnPublish, waits until the
// count is back below Low. The publisher then stops reading its socket and
// TCP pushes back on it: messages wait in the publisher, not in the broker.
//
// A subscriber that writes nothing for StallAfter while a publisher waits is
// judged stuck (or the count wrong): its count is reset and no publisher
// waits for it until it writes again, so one dead subscriber cannot stall
// the others; mochi then drops for it as before. Shared subscriptions and
// the broker's own inline client are not counted.
package backpressure

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Config sets the watermarks; zero values take the defaults.
type Config struct {
	// High is the queue depth at which publishers wait (default: half of
	// the server's MaximumClientWritesPending).
	High int64
	// Low is the depth below which they go on (default: High / 2).
	Low int64
	// StallAfter is how long a subscriber may write nothing while
	// publishers wait before it is judged stuck (default 250 ms).
	StallAfter time.Duration
}

// Hook is the back-pressure hook; add it with server.AddHook(New(server), cfg).
type Hook struct {
	mqtt.HookBase
	srv  *mqtt.Server
	cfg  Config
	done chan struct{}
	once sync.Once

	queues sync.Map // *mqtt.Client -> *queue

	// routes caches, per topic, the connections a message is queued for:
	// mochi's own lookup takes a read lock that the publishers' goroutines
	// fight over, and it was half the broker's CPU in fan-in. Any change of
	// subscriptions or sessions bumps gen, which voids every entry.
	gen       atomic.Uint64
	routes    sync.Map // topic -> *route
	routesLen atomic.Int64

	waits, stalls atomic.Int64

	// bypass, when set, names the publishes another hook delivers itself:
	// they are never queued by mochi, so they are not counted here.
	bypass func(*mqtt.Client, packets.Packet, *Route) bool
	// readAllowed, when set, is mochi's per-delivery read-ACL check: a
	// subscriber it refuses gets nothing queued, so it is left out of the
	// route (and of the counts).
	readAllowed func(cl *mqtt.Client, topic string) bool
}

// maxRoutes bounds the cache; past it the cache starts afresh.
const maxRoutes = 10000

// Route is a cached lookup: the subscribers of a topic as of Gen. Other
// hooks (the QoS 0 fast path) read the same cache instead of keeping a
// second one, and may hang what they derive from it on Derived: it is
// voided with the route.
type Route struct {
	Gen     uint64
	Targets []Target
	// Shared and Inline say the topic also has shared or inline (bridge)
	// subscribers, which are not in Targets and not counted here.
	Shared, Inline bool
	// Derived is free for another hook's per-route data.
	Derived atomic.Pointer[any]
}

// Target is one subscriber connection of a route.
type Target struct {
	Client *mqtt.Client
	Sub    packets.Subscription // the subscriber's (merged) subscription for the topic
	q      *queue
}

// Queued says whether mochi may still hold messages for this subscriber in
// its outbound queue (as far as the count knows). A message delivered
// around that queue could overtake them: the QoS 0 fast path then lets
// mochi deliver. A count left above zero by a message mochi did not queue
// after all (read ACL, packet size) is forgotten once nothing has moved for
// a second, so the fast path is not lost for good.
func (t *Target) Queued() bool {
	q := t.q
	in, out := q.in.Load(), q.out.Load()
	if in <= out {
		return false
	}
	if time.Since(time.Unix(0, q.moved.Load())) > time.Second {
		q.in.CompareAndSwap(in, out)
		return false
	}
	return true
}

// queue is the count for one subscriber connection.
type queue struct {
	in, out atomic.Int64 // routed to it; written or dropped
	moved   atomic.Int64 // unix ns of the last change of in or out
	waiters atomic.Int32
	stalled atomic.Bool // judged stuck: nobody waits for it until it writes
	gone    atomic.Bool

	mu   sync.Mutex
	wake chan struct{} // closed when the depth falls below Low
}

func (q *queue) depth() int64 { return q.in.Load() - q.out.Load() }

func (q *queue) wakeCh() chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.wake == nil {
		q.wake = make(chan struct{})
	}
	return q.wake
}

func (q *queue) signal() {
	q.mu.Lock()
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
	q.mu.Unlock()
}

// New returns the hook for srv.
func New(srv *mqtt.Server) *Hook {
	return &Hook{srv: srv, done: make(chan struct{})}
}

// ID names the hook.
func (h *Hook) ID() string { return "backpressure" }

// Provides says which events the hook follows.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnPacketSent, mqtt.OnPublishDropped, mqtt.OnDisconnect, mqtt.OnRetainPublished,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnSessionEstablished, mqtt.OnClientExpired:
		return true
	}
	return false
}

// Init takes a *Config or nil.
func (h *Hook) Init(config any) error {
	if c, ok := config.(*Config); ok && c != nil {
		h.cfg = *c
	}
	if h.cfg.High <= 0 {
		h.cfg.High = int64(h.srv.Options.Capabilities.MaximumClientWritesPending) / 2
	}
	if h.cfg.Low <= 0 || h.cfg.Low >= h.cfg.High {
		h.cfg.Low = h.cfg.High / 2
	}
	if h.cfg.StallAfter <= 0 {
		h.cfg.StallAfter = 250 * time.Millisecond
	}
	return nil
}

// Stop releases every waiting publisher.
func (h *Hook) Stop() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Waits is how many times a publisher waited; Stalls how many subscribers
// were judged stuck.
func (h *Hook) Waits() int64  { return h.waits.Load() }
func (h *Hook) Stalls() int64 { return h.stalls.Load() }

func (h *Hook) queueOf(cl *mqtt.Client) *queue {
	if q, ok := h.queues.Load(cl); ok {
		return q.(*queue)
	}
	q, _ := h.queues.LoadOrStore(cl, new(queue))
	return q.(*queue)
}

// SetReadAllowed gives the read-ACL check mochi makes per delivery; the
// answers are kept in the route cache (call Changed when ACLs reload).
// Call it before serving.
func (h *Hook) SetReadAllowed(f func(cl *mqtt.Client, topic string) bool) { h.readAllowed = f }

// SetBypass names the publishes that another hook, later in the chain,
// delivers itself (mochi never queues them). Call it before serving.
func (h *Hook) SetBypass(f func(*mqtt.Client, packets.Packet, *Route) bool) { h.bypass = f }

// OnPublish counts the message for each subscriber it will be queued for,
// and waits while one of them is too far behind.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	r := h.Route(pk.TopicName)
	if h.bypass != nil && h.bypass(cl, pk, r) {
		return pk, nil
	}
	if cl.Net.Inline {
		return pk, nil
	}
	for _, t := range r.Targets {
		if (t.Sub.NoLocal && t.Client.ID == cl.ID) || t.Client.Closed() {
			continue
		}
		t.q.moved.Store(time.Now().UnixNano())
		if t.q.in.Add(1)-t.q.out.Load() >= h.cfg.High && !t.q.stalled.Load() {
			h.wait(cl, t.Client, t.q)
		}
	}
	return pk, nil
}

// Route is the topic's subscribers, from the cache when it is current.
func (h *Hook) Route(topic string) *Route {
	gen := h.gen.Load() // read before the lookup: a change during it voids the entry
	if v, ok := h.routes.Load(topic); ok {
		if r := v.(*Route); r.Gen == gen {
			return r
		}
	}
	subs := h.srv.Topics.Subscribers(topic)
	r := &Route{Gen: gen, Shared: len(subs.Shared) > 0, Inline: len(subs.InlineSubscriptions) > 0}
	for id, sub := range subs.Subscriptions {
		to, ok := h.srv.Clients.Get(id)
		if ok && to.Net.Inline {
			r.Inline = true
		}
		if !ok || to.Net.Inline || to.Closed() {
			continue
		}
		if h.readAllowed != nil && !h.readAllowed(to, topic) {
			continue // mochi queues nothing for it
		}
		q := h.queueOf(to)
		if to.Closed() { // left meanwhile: OnDisconnect may have run already
			h.queues.Delete(to)
			continue
		}
		r.Targets = append(r.Targets, Target{Client: to, Sub: sub, q: q})
	}
	if _, loaded := h.routes.Swap(topic, r); !loaded && h.routesLen.Add(1) > maxRoutes {
		h.routes.Clear()
		h.routesLen.Store(0)
	}
	return r
}

// Changed voids the route cache: call it when what a route holds may have
// changed in a way the hook cannot see (ACLs reloaded).
func (h *Hook) Changed() { h.changed() }

// changed voids the route cache.
func (h *Hook) changed() { h.gen.Add(1) }

// OnSubscribed voids the route cache.
func (h *Hook) OnSubscribed(*mqtt.Client, packets.Packet, []byte) { h.changed() }

// OnUnsubscribed voids the route cache.
func (h *Hook) OnUnsubscribed(*mqtt.Client, packets.Packet) { h.changed() }

// OnSessionEstablished voids the route cache: a new connection may have
// taken over a session and its subscriptions.
func (h *Hook) OnSessionEstablished(*mqtt.Client, packets.Packet) { h.changed() }

// OnClientExpired voids the route cache.
func (h *Hook) OnClientExpired(*mqtt.Client) { h.changed() }

// wait holds the publisher's read goroutine until q is below Low, q is
// judged stuck, q's client leaves or the broker stops.
func (h *Hook) wait(from, to *mqtt.Client, q *queue) {
	h.waits.Add(1)
	q.waiters.Add(1)
	defer q.waiters.Add(-1)
	t := time.NewTimer(h.cfg.StallAfter)
	defer t.Stop()
	before := q.out.Load() // as of the timer's start: wake-ups in between do not restart it
	for {
		ch := q.wakeCh()
		// Checked after taking the channel, so a signal cannot fall between.
		if q.depth() < h.cfg.Low || q.stalled.Load() || q.gone.Load() || from.Closed() {
			return
		}
		select {
		case <-ch:
		case <-h.done:
			return
		case <-t.C:
			if q.out.Load() == before {
				// Nothing written for StallAfter: stuck, or our count is
				// off (a message mochi did not queue after all).
				q.stalled.Store(true)
				q.in.Store(q.out.Load())
				h.stalls.Add(1)
				h.Log.Warn("subscriber not keeping up; publishers no longer wait for it",
					"client", to.ID, "waited", h.cfg.StallAfter)
				return
			}
			before = q.out.Load()
			t.Reset(h.cfg.StallAfter)
		}
	}
}

// OnPacketSent takes a written PUBLISH off its subscriber's count and wakes
// the publishers waiting for it once it is low enough.
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	h.taken(cl)
}

// OnRetainPublished counts a retained message mochi queued for a new
// subscription: it is in the queue like any other. mochi queues all of a
// subscription's retained messages at once, on the subscriber's own reader,
// and drops what the queue cannot hold (Home Assistant subscribing to
// homeassistant/# with more discovery configs than that would lose some),
// so past High the reader waits here for its own writer to drain the queue,
// as a publisher would.
func (h *Hook) OnRetainPublished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline || cl.Closed() {
		return
	}
	q := h.queueOf(cl)
	q.moved.Store(time.Now().UnixNano())
	if q.in.Add(1)-q.out.Load() >= h.cfg.High && !q.stalled.Load() {
		h.wait(cl, cl, q)
	}
}

// OnPublishDropped takes a dropped message off the count.
func (h *Hook) OnPublishDropped(cl *mqtt.Client, _ packets.Packet) { h.taken(cl) }

func (h *Hook) taken(cl *mqtt.Client) {
	v, ok := h.queues.Load(cl)
	if !ok {
		return
	}
	q := v.(*queue)
	q.moved.Store(time.Now().UnixNano())
	out := q.out.Add(1)
	if in := q.in.Load(); out > in {
		// Writes mochi did not queue (resent inflight messages): keep the
		// count from going below zero.
		q.out.CompareAndSwap(out, in)
	}
	if q.stalled.Load() {
		q.stalled.Store(false)
	}
	if q.waiters.Load() > 0 && q.depth() < h.cfg.Low {
		q.signal()
	}
}

// OnDisconnect forgets the connection's count and frees its waiters.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.changed()
	if v, ok := h.queues.LoadAndDelete(cl); ok {
		q := v.(*queue)
		q.gone.Store(true)
		q.signal()
	}
}
