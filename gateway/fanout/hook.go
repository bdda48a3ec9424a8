// Package fanout delivers plain QoS 0 publishes itself instead of through
// mochi, encoding each message once and writing each subscriber once per
// read burst of the publisher.
//
// mochi v2.7.9 spends most of a QoS 0 message's cost per subscriber: it
// looks the subscribers up under a lock every publisher fights over, copies
// the packet for each, hands it to the subscriber's writer goroutine over a
// channel, encodes it into a fresh buffer and makes one write() per message.
// The Hook here takes an eligible publish in OnPublish (the last hook to see
// it), appends the encoded frame to each subscriber Conn's pending bytes and
// returns packets.CodeSuccessIgnore: mochi still acknowledges and calls
// OnPublished, but neither retains nor delivers it. The publisher's Conn
// flushes those subscribers when mochi next reads from it, which bufio does
// only when the publisher's read burst is used up.
//
// Anything the fast path would not send exactly as mochi does goes mochi's
// way, unchanged (see Hook.eligible): QoS 1/2, retained, MQTT 5 properties
// that mochi forwards, shared or inline (bridge) subscribers, subscription
// identifiers, subscribers whose connection is not a Conn, and subscribers
// for whom mochi still holds queued messages (the fast path would overtake
// them).
//
// Back-pressure is the back-pressure hook's promise kept: a subscriber's
// pending bytes past HighWater make the publisher wait (never a drop) until
// it drains, unless it wrote nothing for StallAfter: it is then judged stuck
// and its frames are dropped (Info.MessagesDropped) until it moves again.
package fanout

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/gateway/backpressure"
)

// Config is what the hook needs from the broker.
type Config struct {
	// ReadAllowed is the read-ACL check mochi makes per delivery
	// (OnACLCheck(cl, topic, false)). Its answers are kept in the route
	// cache: call the back-pressure hook's Changed when ACLs reload.
	ReadAllowed func(cl *mqtt.Client, topic string) bool
	// StallAfter is how long a subscriber may write nothing while a
	// publisher waits for it before it is judged stuck (default 250 ms).
	StallAfter time.Duration
}

// Hook is the fast path; add it last with server.AddHook(fanout.New(...), nil).
type Hook struct {
	mqtt.HookBase
	srv    *mqtt.Server
	routes *backpressure.Hook
	cfg    Config
	done   chan struct{}
	once   sync.Once

	taken, waits, stalls atomic.Int64
}

// New returns the fast path for srv. It shares routes' cache and tells it
// which publishes it takes, so that they are not counted there.
func New(srv *mqtt.Server, routes *backpressure.Hook, cfg Config) *Hook {
	if cfg.StallAfter <= 0 {
		cfg.StallAfter = 250 * time.Millisecond
	}
	h := &Hook{srv: srv, routes: routes, cfg: cfg, done: make(chan struct{})}
	routes.SetBypass(h.takes)
	routes.SetReadAllowed(cfg.ReadAllowed)
	return h
}

// ID names the hook.
func (h *Hook) ID() string { return "qos0-fast-path" }

// Provides says which events the hook follows.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnPublish }

// Stop frees publishers waiting for a subscriber.
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

// plan is what the fast path derives from a route; it lives on the route
// (Route.Derived) and is voided with it.
type plan struct {
	ok      bool // the fast path may take this topic's publishes
	targets []target
}

// target is a subscriber the route's messages are written to (read ACL
// already passed).
type target struct {
	queue   *backpressure.Target // mochi's queue for it, as counted there
	cl      *mqtt.Client
	conn    *Conn
	noLocal bool
	v5      bool
	maxSize uint32
}

func (h *Hook) planOf(r *backpressure.Route, topic string) *plan {
	if v := r.Derived.Load(); v != nil {
		if p, ok := (*v).(*plan); ok {
			return p
		}
	}
	p := h.makePlan(r, topic)
	var v any = p
	r.Derived.Store(&v)
	return p
}

func (h *Hook) makePlan(r *backpressure.Route, topic string) *plan {
	if r.Shared || r.Inline || h.cfg.ReadAllowed == nil {
		return &plan{}
	}
	p := &plan{ok: true}
	for i := range r.Targets {
		t := &r.Targets[i]
		conn, ours := t.Client.Net.Conn.(*Conn)
		if !ours || hasIdentifier(t.Sub) {
			return &plan{}
		}
		if !h.cfg.ReadAllowed(t.Client, topic) {
			continue // mochi would not deliver it either
		}
		p.targets = append(p.targets, target{
			queue:   t,
			cl:      t.Client,
			conn:    conn,
			noLocal: t.Sub.NoLocal,
			v5:      t.Client.Properties.ProtocolVersion == 5,
			maxSize: t.Client.Properties.Props.MaximumPacketSize,
		})
	}
	return p
}

// hasIdentifier: mochi lists every filter of a merged subscription in
// Identifiers, with 0 for "none"; only ids above 0 are sent.
func hasIdentifier(sub packets.Subscription) bool {
	for _, id := range sub.Identifiers {
		if id > 0 {
			return true
		}
	}
	return false
}

// eligible says whether the fast path delivers pk: QoS 0, not retained, no
// property mochi would forward, a route whose every subscriber it can serve
// as mochi would, and none with messages still in mochi's queue (the fast
// path would overtake them: a retained "on" followed by a plain "off" would
// arrive as "off", "on").
func (h *Hook) eligible(pk *packets.Packet, r *backpressure.Route) bool {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 0 || pk.FixedHeader.Retain ||
		!plainProperties(&pk.Properties) {
		return false
	}
	p := h.planOf(r, pk.TopicName)
	if !p.ok {
		return false
	}
	for _, t := range p.targets {
		if t.queue.Queued() {
			return false
		}
	}
	return true
}

// takes is the back-pressure hook's bypass, asked first for each publish.
// The answer is kept for OnPublish on the publisher's Conn, so that both
// hooks act on one decision.
func (h *Hook) takes(cl *mqtt.Client, pk packets.Packet, r *backpressure.Route) bool {
	ok := h.eligible(&pk, r)
	pub, _ := cl.Net.Conn.(*Conn)
	if pub != nil {
		pub.decided = decision{topic: pk.TopicName, route: r, fast: ok}
		if !ok {
			// mochi's way may hold this reader (back-pressure) before it
			// reads again: what it left with subscribers goes out first.
			pub.flushDirty()
		}
	}
	return ok
}

// plainProperties: nothing mochi would copy into the delivered PUBLISH
// (the expiry mochi computes from its own cap is written by the fast path).
func plainProperties(p *packets.Properties) bool {
	return len(p.User) == 0 && p.ContentType == "" && len(p.CorrelationData) == 0 && p.ResponseTopic == "" &&
		!p.PayloadFormatFlag && p.MessageExpiryInterval == 0 && len(p.SubscriptionIdentifier) == 0 &&
		!p.TopicAliasFlag && p.TopicAlias == 0
}

// OnPublish delivers an eligible publish and tells mochi to go no further.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	pub, _ := cl.Net.Conn.(*Conn) // nil: inline client or not ours; flushed at once
	var r *backpressure.Route
	var fast bool
	if pub != nil && pub.decided.route != nil && pub.decided.topic == pk.TopicName {
		r, fast = pub.decided.route, pub.decided.fast // the back-pressure hook's call for this message
		pub.decided = decision{}
	} else {
		r = h.routes.Route(pk.TopicName)
		fast = h.eligible(&pk, r)
	}
	if !fast {
		return pk, nil
	}
	p := h.planOf(r, pk.TopicName)
	var scratch []byte
	if pub != nil {
		pub.pubMu.Lock()
		defer pub.pubMu.Unlock()
		scratch = pub.scratch[:0]
	}
	var v3, v5 []byte
	var sent, bytes, dropped int64
	var flushNow []*Conn
	for _, t := range p.targets {
		if (t.noLocal && t.cl.ID == cl.ID) || t.cl.Closed() {
			continue
		}
		var frame []byte
		if t.v5 {
			if v5 == nil {
				start := len(scratch)
				scratch = appendPublish(scratch, pk.TopicName, pk.Payload, true, expiryOf(pk))
				v5 = scratch[start:]
			}
			frame = v5
		} else {
			if v3 == nil {
				start := len(scratch)
				scratch = appendPublish(scratch, pk.TopicName, pk.Payload, false, 0)
				v3 = scratch[start:]
			}
			frame = v3
		}
		if t.maxSize > 0 && uint32(len(frame)) > t.maxSize {
			continue // mochi refuses to write it (ErrPacketTooLarge)
		}
		switch h.deliver(pub, t, frame) {
		case delivered:
			sent++
			bytes += int64(len(frame))
			if pub == nil {
				flushNow = append(flushNow, t.conn)
			}
		case droppedStuck:
			dropped++
		}
	}
	if pub != nil && cap(scratch) <= maxScratch {
		pub.scratch = scratch[:0]
	}
	for _, c := range flushNow {
		c.flush()
	}
	if sent > 0 {
		atomic.AddInt64(&h.srv.Info.MessagesSent, sent)
		atomic.AddInt64(&h.srv.Info.PacketsSent, sent)
		atomic.AddInt64(&h.srv.Info.BytesSent, bytes)
	}
	if dropped > 0 {
		atomic.AddInt64(&h.srv.Info.MessagesDropped, dropped)
	}
	h.taken.Add(1)
	return pk, errIgnore
}

// errIgnore is packets.CodeSuccessIgnore boxed once: converting the Code
// struct to an error allocates, per message.
var errIgnore error = packets.CodeSuccessIgnore

// maxScratch: a publisher keeps its encoding buffer only up to this size,
// so one big message does not stay with the connection.
const maxScratch = 16 << 10

type outcome int

const (
	delivered    outcome = iota
	droppedStuck         // the subscriber is judged stuck (or full, for the broker's own publishes)
	notSent              // the connection failed or closed (mochi: not delivered, not counted)
)

// deliver queues frame for t. Past HighWater a client publisher first
// writes what it left with its subscribers, then waits for t to drain,
// unless t is judged stuck; the broker's own publishes (pub nil) drop.
func (h *Hook) deliver(pub *Conn, t target, frame []byte) outcome {
	for {
		queued, full := t.conn.enqueue(frame, pub)
		if queued {
			return delivered
		}
		if !full {
			if t.conn.isStuck() {
				return droppedStuck
			}
			return notSent
		}
		if pub == nil {
			// The broker's own publishes (Server.Publish: $SYS, bridges)
			// never waited: the back-pressure hook skips them too, and
			// their callers may hold locks. mochi dropped these as well.
			t.conn.flush()
			return droppedStuck
		}
		pub.flushDirtyLocked()
		pub.pubMu.Unlock() // Close may flush meanwhile
		t.conn.flush()
		h.waits.Add(1)
		ok, stuckNow := t.conn.waitDrained(h.cfg.StallAfter, h.done)
		pub.pubMu.Lock()
		if stuckNow {
			h.stalls.Add(1)
			h.Log.Warn("subscriber not keeping up; publishers no longer wait for it",
				"client", t.cl.ID, "waited", h.cfg.StallAfter)
		}
		if !ok {
			if t.conn.isStuck() {
				return droppedStuck
			}
			return notSent
		}
	}
}

// expiryOf is the Message Expiry Interval mochi's WritePacket sends MQTT 5
// subscribers: what is left of the expiry processPublish set, at least 1.
func expiryOf(pk packets.Packet) uint32 {
	if pk.Expiry <= 0 {
		return 0
	}
	return uint32(max(pk.Expiry-time.Now().Unix(), 1))
}

// appendPublish encodes a QoS 0 PUBLISH without retain flag (mochi clears it
// for deliveries), with for MQTT 5 a property block holding only the
// Message Expiry Interval when there is one.
func appendPublish(dst []byte, topic string, payload []byte, v5 bool, expiry uint32) []byte {
	rem := 2 + len(topic) + len(payload)
	props := 0
	if v5 {
		if expiry > 0 {
			props = 5
		}
		rem += 1 + props
	}
	dst = append(dst, byte(packets.Publish)<<4)
	for {
		b := byte(rem & 0x7f)
		rem >>= 7
		if rem > 0 {
			dst = append(dst, b|0x80)
			continue
		}
		dst = append(dst, b)
		break
	}
	dst = append(dst, byte(len(topic)>>8), byte(len(topic)))
	dst = append(dst, topic...)
	if v5 {
		dst = append(dst, byte(props))
		if props > 0 {
			dst = append(dst, packets.PropMessageExpiryInterval,
				byte(expiry>>24), byte(expiry>>16), byte(expiry>>8), byte(expiry))
		}
	}
	return append(dst, payload...)
}
