package fastpath

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// routeCache keeps, per topic, what a publish on it needs: mochi's own
// lookup takes a read lock that the publishers' goroutines fight over, and
// it was half the broker's CPU in fan-in. Any change of subscriptions or
// sessions bumps gen, which voids every entry.
type routeCache struct {
	gen atomic.Uint64
	m   sync.Map // topic -> *route
	n   atomic.Int64
}

// maxRoutes bounds the cache; past it the cache starts afresh.
const maxRoutes = 10000

func (c *routeCache) void() { c.gen.Add(1) }

// route is a topic's subscriber connections as of gen (read ACL passed,
// shared and inline subscribers left out), and whether the fast path may
// serve them.
type route struct {
	gen     uint64
	targets []target
	// fast: no shared or inline (bridge) subscriber, none with a
	// subscription identifier, every connection a Conn, and the read ACL
	// known: the fast path can send what mochi would.
	fast bool
}

// target is one subscriber connection of a route.
type target struct {
	cl      *mqtt.Client
	q       *queue // mochi's outbound queue for it, as counted
	conn    *Conn  // nil: not ours (the fast path is then off for the route)
	noLocal bool
	v5      bool
	maxSize uint32
	box     bool // one of the box's own clients (for the traffic split)
}

// route is the topic's route, from the cache when it is current.
func (h *Hook) route(topic string) *route {
	gen := h.routes.gen.Load() // read before the lookup: a change during it voids the entry
	if v, ok := h.routes.m.Load(topic); ok {
		if r := v.(*route); r.gen == gen {
			return r
		}
	}
	subs := h.srv.Topics.Subscribers(topic)
	r := &route{gen: gen}
	fast := len(subs.Shared) == 0 && len(subs.InlineSubscriptions) == 0 && h.cfg.ReadAllowed != nil
	for id, sub := range subs.Subscriptions {
		to, ok := h.srv.Clients.Get(id)
		if ok && to.Net.Inline {
			fast = false
		}
		if !ok || to.Net.Inline || to.Closed() {
			continue
		}
		if h.cfg.ReadAllowed != nil && !h.cfg.ReadAllowed(to, topic) {
			continue // mochi delivers nothing to it either
		}
		q := h.queueOf(to)
		if to.Closed() { // left meanwhile: OnDisconnect may have run already
			h.queues.Delete(to)
			continue
		}
		conn, isOurs := to.Net.Conn.(*Conn)
		if !isOurs || hasIdentifier(sub) {
			fast = false
		}
		r.targets = append(r.targets, target{
			cl:      to,
			q:       q,
			conn:    conn,
			noLocal: sub.NoLocal,
			v5:      to.Properties.ProtocolVersion == 5,
			maxSize: to.Properties.Props.MaximumPacketSize,
			box:     h.cfg.Traffic != nil && h.cfg.Traffic.IsClientBox(to),
		})
	}
	r.fast = fast
	if _, loaded := h.routes.m.Swap(topic, r); !loaded && h.routes.n.Add(1) > maxRoutes {
		h.routes.m.Clear()
		h.routes.n.Store(0)
	}
	return r
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
