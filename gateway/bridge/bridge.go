package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// window bounds the out messages in flight on one link.
const window = 100

// qos0Patience is how long a local publisher waits for room among the
// QoS 0 messages going out before its message is dropped.
const qos0Patience = 500 * time.Millisecond

// bridge is one `connection` block at work.
type bridge struct {
	conf       mosquittoconf.Bridge
	where      string
	routes     []route
	remoteID   string
	localID    string
	stateTopic string
	version    byte
	tls        *tls.Config
	server     *mqtt.Server
	log        *slog.Logger
	subBase    int
	// maxInflight is max_inflight_messages, bridge_receive_maximum when
	// not written.
	maxInflight int

	q      *queue
	local  *mqtt.Client // inline client: the origin of what comes in
	qos0   chan message
	wake   chan struct{} // lazy: the threshold was reached
	st3    *store3
	s5     *session5
	refuse map[string]bool // addresses that refused try_private
	cur    int             // index of the address in use or last tried (run's goroutine only)

	replaying atomic.Bool
	linkUp    atomic.Bool
	inflight  atomic.Int64
	freed     chan struct{}
	in, out   atomic.Int64
	activity  atomic.Int64 // unix nanoseconds of the last message either way

	mu      sync.Mutex
	state   string
	addr    string
	lastErr string
	since   time.Time
}

// Stats are one bridge's figures.
type Stats struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`   // "up", "down" (connecting or failing) or "idle" (lazy, once, or stopped)
	Address     string    `json:"address"` // host:port in use, or last tried
	LastError   string    `json:"last_error"`
	MessagesIn  int64     `json:"messages_in"`
	MessagesOut int64     `json:"messages_out"`
	Queued      int       `json:"queued"` // QoS 1/2 out messages waiting for the remote's acknowledgement
	Since       time.Time `json:"since"`
}

func (b *bridge) stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{Name: b.conf.Name, State: b.state, Address: b.addr, LastError: b.lastErr,
		MessagesIn: b.in.Load(), MessagesOut: b.out.Load(), Since: b.since}
	if b.q != nil {
		s.Queued = b.q.len()
	}
	return s
}

func (b *bridge) setState(state, addr string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if state != "" && state != b.state {
		b.since = time.Now()
		b.state = state
	}
	if addr != "" {
		b.addr = addr
	}
	if err != nil {
		b.lastErr = err.Error()
	}
}

// subscribeLocal registers one inline subscription per out route.
func (b *bridge) subscribeLocal() error {
	b.replaying.Store(true) // retained messages go out at each connect instead
	defer b.replaying.Store(false)
	for i, r := range b.routes {
		if !r.out {
			continue
		}
		i, r := i, r
		err := b.server.Subscribe(r.local, b.subBase+i, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			b.fromLocal(i, r, pk)
		})
		if err != nil {
			return fmt.Errorf("%s: topic %q: local subscription: %w", r.where, r.local, err)
		}
	}
	return nil
}

func (b *bridge) unsubscribeLocal() {
	for i, r := range b.routes {
		if r.out {
			_ = b.server.Unsubscribe(r.local, b.subBase+i)
		}
	}
}

// fromLocal takes a local publish that an out route matched.
func (b *bridge) fromLocal(i int, r route, pk packets.Packet) {
	if pk.Origin == b.localID || firstOut(b.routes, pk.TopicName) != i {
		return // came in over this bridge, or an earlier topic line owns it
	}
	if pk.FixedHeader.Retain && b.replaying.Load() {
		return
	}
	m := message{
		topic:   pk.TopicName,
		payload: append([]byte(nil), pk.Payload...),
		qos:     min(pk.FixedHeader.Qos, r.qos),
		retain:  pk.FixedHeader.Retain && b.conf.OutgoingRetain,
	}
	if m.qos == 0 {
		if b.linkUp.Load() {
			select {
			case b.qos0 <- m:
			default:
				// Hold the publisher back a little (TCP backpressure, as
				// Mosquitto gives); a remote slower than that drops QoS 0.
				t := time.NewTimer(qos0Patience)
				select {
				case b.qos0 <- m:
				case <-t.C:
				}
				t.Stop()
			}
		}
		return
	}
	if err := b.q.push(m); err != nil {
		b.log.Warn("bridge message dropped", "bridge", b.conf.Name, "topic", m.topic, "error", err)
		return
	}
	if b.conf.StartType == "lazy" && b.q.len() >= max(b.conf.Threshold, 1) {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// fromRemote publishes locally what the remote sent on an in route.
func (b *bridge) fromRemote(m message) {
	r, ok := firstIn(b.routes, m.topic)
	if !ok {
		return
	}
	b.activity.Store(time.Now().UnixNano())
	b.inject(r.toLocal(m.topic), m.payload, m.qos, m.retain)
	b.in.Add(1)
}

// inject publishes locally as the bridge's own inline client, so the out
// side recognises (by origin) what came in over this bridge.
func (b *bridge) inject(topic string, payload []byte, qos byte, retain bool) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     payload,
	}
	if qos > 0 {
		pk.PacketID = 1 // inline publishes are complete at once; the id only passes validation
	}
	if err := b.server.InjectPacket(b.local, pk); err != nil {
		b.log.Warn("bridge could not publish locally", "bridge", b.conf.Name, "topic", topic, "error", err)
	}
}

func (b *bridge) notifyLocal(up bool) {
	if !b.conf.Notifications {
		return
	}
	b.inject(b.stateTopic, stateBytes(up), 1, true)
}

func stateBytes(up bool) []byte {
	if up {
		return []byte("1")
	}
	return []byte("0")
}

// remoteState is the remote copy of the state, or nothing.
func (b *bridge) remoteState(up bool) message {
	if !b.conf.Notifications || b.conf.NotificationsLocalOnly {
		return message{}
	}
	return message{topic: b.stateTopic, payload: stateBytes(up), qos: 1, retain: true}
}

// run keeps the bridge connected as start_type and restart_timeout say,
// until ctx ends.
func (b *bridge) run(ctx context.Context) {
	bo := newBackoff(b.conf.RestartTimeoutBase, b.conf.RestartTimeoutCap)
	bo.stable = time.Duration(b.conf.RestartTimeoutStable) * time.Second
	lazy := b.conf.StartType == "lazy"
	for {
		if lazy && b.q.len() < max(b.conf.Threshold, 1) {
			b.setState("idle", "", nil)
			select {
			case <-ctx.Done():
				return
			case <-b.wake:
			}
		}
		b.setState("down", "", nil)
		l, addr, err := b.connect(ctx)
		if ctx.Err() != nil {
			if l != nil {
				l.close(b.remoteState(false))
			}
			return
		}
		if err != nil {
			b.log.Warn("bridge connection failed", "bridge", b.conf.Name, "error", err)
			b.setState("down", addr, err)
			if b.conf.StartType == "once" {
				return
			}
			if !sleepCtx(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.connected(0)
		upAt := time.Now()
		end := b.serve(ctx, l, addr)
		bo.connected(time.Since(upAt))
		b.linkUp.Store(false)
		b.notifyLocal(false)
		switch {
		case ctx.Err() != nil:
			l.close(b.remoteState(false))
			b.setState("idle", "", nil)
			return
		case end == endIdle:
			l.close(b.remoteState(false))
			b.log.Info("bridge idle, disconnected", "bridge", b.conf.Name)
			continue
		case end == endPrimary:
			l.close(b.remoteState(false))
			b.log.Info("bridge main address is back; reconnecting to it", "bridge", b.conf.Name, "address", hostPort(b.conf.Addresses[0]))
			continue
		}
		cause := l.cause()
		if cause == nil {
			cause = errors.New("connection lost")
		}
		b.log.Warn("bridge connection lost", "bridge", b.conf.Name, "address", addr, "error", cause)
		b.setState("down", addr, cause)
		if b.conf.StartType == "once" {
			return
		}
		if !sleepCtx(ctx, bo.next()) {
			return
		}
	}
}

// connect tries each address in turn; an address that refuses the
// try_private version byte is tried again with the plain one.
func (b *bridge) connect(ctx context.Context) (link, string, error) {
	var errs []error
	addr := ""
	n := len(b.conf.Addresses)
	start := 0
	if b.conf.RoundRobin { // all equal: carry on from the one after the last used
		start = (b.cur + 1) % max(n, 1)
	}
	for k := range n {
		b.cur = (start + k) % n
		addr = hostPort(b.conf.Addresses[b.cur])
		cfg := b.dialConfig(addr)
		l, err := b.dial(ctx, cfg)
		if errors.Is(err, errRefusedVersion) && cfg.private {
			b.log.Info("remote refused try_private; connecting as a plain client", "bridge", b.conf.Name, "address", addr)
			b.refuse[addr] = true
			cfg.private = false
			l, err = b.dial(ctx, cfg)
		}
		if err == nil {
			return l, addr, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, addr, errors.Join(errs...)
}

func (b *bridge) dialConfig(addr string) dialConfig {
	cfg := dialConfig{
		addr:         addr,
		tls:          b.tls,
		clientID:     b.remoteID,
		username:     b.conf.RemoteUsername,
		password:     b.conf.RemotePassword,
		cleanSession: b.conf.CleanSession,
		keepalive:    time.Duration(b.conf.KeepaliveInterval) * time.Second,
		version:      b.version,
		private:      b.conf.TryPrivate && b.version != 5 && !b.refuse[addr],
		onMessage:    b.fromRemote,
		sock:         newSockOpts(b.conf),

		receiveMax:    uint16(min(max(b.conf.ReceiveMaximum, 0), math.MaxUint16)),
		sessionExpiry: b.conf.SessionExpiryInterval,
		topicAliasMax: uint16(min(max(b.conf.MaxTopicAlias, 0), math.MaxUint16)),
	}
	if cfg.keepalive <= 0 {
		cfg.keepalive = 60 * time.Second
	}
	if cfg.receiveMax == 0 {
		cfg.receiveMax = uint16(min(max(b.maxInflight, 0), math.MaxUint16))
	}
	if w := b.remoteState(false); w.topic != "" {
		cfg.will = &w
	}
	return cfg
}

func (b *bridge) dial(ctx context.Context, cfg dialConfig) (link, error) {
	if b.version == 5 {
		l, err := dial5(ctx, cfg, b.s5)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	l, err := dial3(ctx, cfg, b.st3)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Why serve returned.
const (
	endLost    = iota // the link was lost, or ctx ended
	endIdle           // lazy: idle for idle_timeout
	endPrimary        // round_robin false: the main address answers again
)

// primaryRetry is how often a bridge on a secondary address checks
// whether the main one is back (round_robin false), as Mosquitto does.
var primaryRetry = 5 * time.Second

// serve runs a connected link: state up, subscriptions, retained replay,
// then the queue and QoS 0 messages in order, until the link is lost, ctx
// ends, (lazy) it was idle for idle_timeout, or (round_robin false) the
// main address is back while on a secondary one. It says which.
func (b *bridge) serve(ctx context.Context, l link, addr string) int {
	b.linkUp.Store(true)
	b.activity.Store(time.Now().UnixNano())
	b.setState("up", addr, nil)
	b.log.Info("bridge connected", "bridge", b.conf.Name, "address", addr)
	b.notifyLocal(true)
	if m := b.remoteState(true); m.topic != "" {
		_ = l.publish(m, func(error) {})
	}
	sctx, cancel := context.WithTimeout(ctx, connectTimeout)
	b.unsubscribeOutOnly(sctx, l)
	err := l.subscribe(sctx, b.routes)
	cancel()
	if err != nil {
		b.log.Warn("bridge subscription failed", "bridge", b.conf.Name, "error", err)
		b.setState("up", addr, err)
	}
	b.replayRetained(l)

	var idleC <-chan time.Time
	if b.conf.StartType == "lazy" {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		idleC = t.C
	}
	var primaryC <-chan time.Time
	if !b.conf.RoundRobin && b.cur > 0 {
		t := time.NewTicker(primaryRetry)
		defer t.Stop()
		primaryC = t.C
	}
	for {
		for b.inflight.Load() < window {
			seq, m, ok := b.q.take()
			if !ok {
				break
			}
			if !b.send(l, seq, m) {
				break
			}
		}
		select {
		case <-ctx.Done():
			return endLost
		case <-l.lost():
			return endLost
		case <-primaryC:
			if b.primaryAnswers(ctx) {
				return endPrimary
			}
		case <-b.q.kick:
		case <-b.freed:
		case m := <-b.qos0:
			b.sendNow(l, m)
		case <-idleC:
			idleFor := time.Since(time.Unix(0, b.activity.Load()))
			if idleFor >= time.Duration(max(b.conf.IdleTimeout, 1))*time.Second && b.q.len() == 0 {
				return endIdle
			}
		}
	}
}

// unsubscribeOutOnly is bridge_attempt_unsubscribe: the remote filters of
// out-only topics are unsubscribed, so that a topic turned from in to out
// stops bringing messages from a remote that kept the old subscription.
func (b *bridge) unsubscribeOutOnly(ctx context.Context, l link) {
	if !b.conf.AttemptUnsubscribe {
		return
	}
	var filters []string
	for _, r := range b.routes {
		if r.out && !r.in {
			filters = append(filters, r.remote)
		}
	}
	if len(filters) == 0 {
		return
	}
	if err := l.unsubscribe(ctx, filters); err != nil {
		b.log.Warn("bridge unsubscribe failed", "bridge", b.conf.Name, "error", err)
	}
}

// primaryAnswers reports whether the main address accepts a TCP
// connection now.
func (b *bridge) primaryAnswers(ctx context.Context) bool {
	d, err := newSockOpts(b.conf).dialer()
	if err != nil {
		return false
	}
	d.Timeout = time.Second
	c, err := d.DialContext(ctx, "tcp", hostPort(b.conf.Addresses[0]))
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// send hands one queued message to the link; false when the link failed
// (the message goes back to the queue).
func (b *bridge) send(l link, seq uint64, m message) bool {
	i := firstOut(b.routes, m.topic)
	if i < 0 { // the topic line is gone since it was queued
		_ = b.q.ack(seq)
		return true
	}
	out := m
	out.topic = b.routes[i].toRemote(m.topic)
	if b.tooBig(out) {
		_ = b.q.ack(seq)
		return true
	}
	b.inflight.Add(1)
	err := l.publish(out, func(err error) {
		b.inflight.Add(-1)
		switch {
		case err == nil:
			if qerr := b.q.ack(seq); qerr != nil {
				b.log.Error("bridge queue", "bridge", b.conf.Name, "error", qerr)
			}
			b.out.Add(1)
		case errors.Is(err, errResend):
			b.q.unhand(seq)
		default:
			b.log.Warn("bridge message refused by the remote", "bridge", b.conf.Name, "topic", out.topic, "error", err)
			b.setState("", "", err)
			_ = b.q.ack(seq)
		}
		select {
		case b.freed <- struct{}{}:
		default:
		}
	})
	b.activity.Store(time.Now().UnixNano())
	if err != nil {
		b.inflight.Add(-1)
		b.q.unhand(seq)
		return false
	}
	return true
}

// tooBig is bridge_max_packet_size: a message whose PUBLISH packet would
// be larger is not sent to the remote (logged and dropped, as Mosquitto
// drops it).
func (b *bridge) tooBig(m message) bool {
	limit := b.conf.MaxPacketSize
	if limit <= 0 {
		return false
	}
	size := publishSize(m, b.version)
	if size <= limit {
		return false
	}
	b.log.Warn("bridge message larger than bridge_max_packet_size, not sent", "bridge", b.conf.Name, "topic", m.topic, "bytes", size, "limit", limit)
	return true
}

// publishSize is the size in bytes of m as a PUBLISH packet of the given
// protocol version (without properties).
func publishSize(m message, version byte) int {
	rest := 2 + len(m.topic) + len(m.payload)
	if m.qos > 0 {
		rest += 2 // packet id
	}
	if version == 5 {
		rest++ // empty property list
	}
	n := 1
	for v := rest; v >= 128; v /= 128 {
		n++
	}
	return 1 + n + rest
}

// sendNow sends a QoS 0 message, mapped to its remote topic.
func (b *bridge) sendNow(l link, m message) {
	i := firstOut(b.routes, m.topic)
	if i < 0 {
		return
	}
	m.topic = b.routes[i].toRemote(m.topic)
	if b.tooBig(m) {
		return
	}
	if err := l.publish(m, nil); err == nil {
		b.out.Add(1)
		b.activity.Store(time.Now().UnixNano())
	}
}

// replayRetained sends the local retained messages of the out routes, as
// Mosquitto does on each bridge connection, except those that came in over
// this bridge and those whose newer copy waits in the queue.
func (b *bridge) replayRetained(l link) {
	if !b.conf.OutgoingRetain {
		return
	}
	for i, r := range b.routes {
		if !r.out {
			continue
		}
		for _, pk := range b.server.Topics.Messages(r.local) {
			if pk.Origin == b.localID || firstOut(b.routes, pk.TopicName) != i || b.q.queuedRetained(pk.TopicName) {
				continue
			}
			m := message{topic: r.toRemote(pk.TopicName), payload: pk.Payload, qos: min(pk.FixedHeader.Qos, r.qos), retain: true}
			if err := l.publish(m, func(error) {}); err != nil {
				return
			}
		}
	}
}

// backoff is restart_timeout: constant, or Mosquitto's decorrelated
// jitter between BASE and CAP.
type backoff struct {
	base, cap, cur time.Duration
	stable         time.Duration // restart_timeout BASE CAP STABLE; 0 = reset at each connection
}

func newBackoff(base, cap int) *backoff {
	b := &backoff{base: time.Duration(base) * time.Second, cap: time.Duration(cap) * time.Second}
	if b.base <= 0 {
		b.base = 100 * time.Millisecond // never a hot loop
	}
	b.cur = b.base
	return b
}

func (b *backoff) next() time.Duration {
	if b.cap <= 0 {
		return b.base
	}
	hi := max(b.cur*3, b.base+1)
	b.cur = min(b.cap, b.base+rand.N(hi-b.base))
	return b.cur
}

func (b *backoff) reset() { b.cur = b.base }

// connected is told at each connection (lasted 0) and when it ends (how
// long it lasted): the backoff goes back to BASE at once, or with
// restart_timeout STABLE only after a connection that lasted that long.
func (b *backoff) connected(lasted time.Duration) {
	if b.stable == 0 || lasted >= b.stable {
		b.reset()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
