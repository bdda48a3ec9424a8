package listeners

import (
	"container/list"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Limits. Mosquitto has no CONNECT deadline nor half-open
// bound; its max_packet_size defaults to MQTT's 268,435,455 bytes, but it
// grows a packet's buffer as bytes arrive. mochi allocates what the fixed
// header claims before reading a byte of it, so the box sets bounds of its
// own (docs/BROKER.md, docs/SECURITY.md).
const (
	// DefaultConnectTimeout is how long a connection may take from accept
	// (TLS handshake and websocket upgrade included) to a complete CONNECT.
	// An ESP8266 needs a few seconds for a TLS handshake alone.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxHalfOpen bounds the connections accepted but not yet
	// CONNECTed, box-wide; past it the oldest is closed.
	DefaultMaxHalfOpen = 512
	// DefaultMaxPacketSize is the packet size limit when max_packet_size is
	// not set: far above what Home Assistant, zigbee2mqtt, Tasmota or a
	// camera snapshot publish, and small enough for a box of 1 GiB.
	DefaultMaxPacketSize = 8 << 20
	// DefaultPendingBytes bounds the bytes held by all partly received
	// packets together, box-wide (raised to two packets of the maximum size
	// when max_packet_size is larger).
	DefaultPendingBytes = 16 << 20
)

// Limits are the bounds every listener of a broker shares: the CONNECT
// deadline, the half-open connections and the bytes of partly received
// packets. One Limits serves every listener of a process; a nil *Limits
// applies the defaults (with a fresh, unshared budget).
type Limits struct {
	ConnectTimeout time.Duration // 0 = DefaultConnectTimeout
	MaxHalfOpen    int           // 0 = DefaultMaxHalfOpen
	MaxPacketSize  int           // whole packet in bytes, as mochi's MaximumPacketSize; 0 = DefaultMaxPacketSize
	PendingBytes   int64         // 0 = DefaultPendingBytes
	Logger         *slog.Logger

	once     sync.Once
	mu       sync.Mutex
	halfOpen list.List // of *halfOpen, oldest first
	pending  atomic.Int64

	timedOut   atomic.Uint64
	evicted    atomic.Uint64
	overBudget atomic.Uint64
	lastLog    atomic.Int64 // unix nanoseconds of the last eviction log line
}

// NewLimits returns Limits with the defaults filled in.
func NewLimits() *Limits {
	l := &Limits{}
	l.init()
	return l
}

func (l *Limits) init() {
	l.once.Do(func() {
		if l.ConnectTimeout <= 0 {
			l.ConnectTimeout = DefaultConnectTimeout
		}
		if l.MaxHalfOpen <= 0 {
			l.MaxHalfOpen = DefaultMaxHalfOpen
		}
		if l.MaxPacketSize <= 0 {
			l.MaxPacketSize = DefaultMaxPacketSize
		}
		if l.PendingBytes <= 0 {
			l.PendingBytes = max(DefaultPendingBytes, 2*int64(l.MaxPacketSize))
		}
		if l.Logger == nil {
			l.Logger = slog.Default()
		}
		l.halfOpen.Init()
	})
}

// Stats are the Limits' live figures.
type Stats struct {
	HalfOpen     int    // connections accepted, CONNECT not yet complete
	PendingBytes int64  // bytes held by partly received packets
	TimedOut     uint64 // closed at the CONNECT deadline
	Evicted      uint64 // closed as the oldest half-open one, at MaxHalfOpen
	OverBudget   uint64 // disconnected because PendingBytes would pass the bound
}

// Stats returns the live figures.
func (l *Limits) Stats() Stats {
	l.init()
	l.mu.Lock()
	n := l.halfOpen.Len()
	l.mu.Unlock()
	return Stats{HalfOpen: n, PendingBytes: l.pending.Load(), TimedOut: l.timedOut.Load(),
		Evicted: l.evicted.Load(), OverBudget: l.overBudget.Load()}
}

// halfOpen is one connection between accept and a complete CONNECT.
type halfOpen struct {
	l     *Limits
	conn  net.Conn // the accepted TCP connection, closed at the deadline
	elem  *list.Element
	timer *time.Timer
}

// track starts the CONNECT deadline of a just-accepted connection and counts
// it as half-open; at MaxHalfOpen the oldest half-open connection is closed
// to make room, so a flood of silent sockets cannot lock clients out.
func (l *Limits) track(c net.Conn, listener string) *halfOpen {
	l.init()
	h := &halfOpen{l: l, conn: c}
	var evict []*halfOpen
	l.mu.Lock()
	for l.halfOpen.Len() >= l.MaxHalfOpen {
		old := l.halfOpen.Remove(l.halfOpen.Front()).(*halfOpen)
		old.elem = nil
		evict = append(evict, old)
	}
	h.elem = l.halfOpen.PushBack(h)
	h.timer = time.AfterFunc(l.ConnectTimeout, h.expire)
	l.mu.Unlock()
	for _, old := range evict {
		old.timer.Stop()
		l.evicted.Add(1)
		_ = old.conn.Close()
	}
	if len(evict) > 0 {
		l.logRarely("half-open connections at the limit: the oldest closed", "listener", listener,
			"max_half_open", l.MaxHalfOpen, "evicted_total", l.evicted.Load())
	}
	return h
}

// expire closes a connection that did not complete its CONNECT in time.
func (h *halfOpen) expire() {
	if !h.remove() {
		return // connected, or evicted, meanwhile
	}
	h.l.timedOut.Add(1)
	_ = h.conn.Close()
}

// connected ends the half-open state: the CONNECT packet has been read.
func (h *halfOpen) connected() {
	if h != nil && h.remove() {
		h.timer.Stop()
	}
}

// remove takes h off the half-open list; false when it was not on it.
func (h *halfOpen) remove() bool {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	if h.elem == nil {
		return false
	}
	h.l.halfOpen.Remove(h.elem)
	h.elem = nil
	return true
}

// reserve takes n bytes of the pending budget; false (nothing taken) when
// that would pass the bound.
func (l *Limits) reserve(n int) bool {
	if l.pending.Add(int64(n)) > l.PendingBytes {
		l.pending.Add(-int64(n))
		l.overBudget.Add(1)
		return false
	}
	return true
}

func (l *Limits) release(n int) { l.pending.Add(-int64(n)) }

// logRarely logs at most once a minute.
func (l *Limits) logRarely(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(time.Minute) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.Logger.Warn(msg, args...)
}

// trackingListener counts every accepted connection as half-open until its
// CONNECT is read (websockets: the HTTP server accepts).
type trackingListener struct {
	net.Listener
	limits *Limits
	id     string
}

func (t *trackingListener) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c}
	tc.half = t.limits.track(c, t.id)
	return tc, nil
}

// trackedConn carries its half-open entry to the websocket handler.
type trackedConn struct {
	net.Conn
	half *halfOpen
}

// Unwrap gives the connection underneath (the fast path looks through).
func (c *trackedConn) Unwrap() net.Conn { return c.Conn }

// halfOpenOf finds the half-open entry under a connection the HTTP server
// accepted (through TLS).
func halfOpenOf(c net.Conn) *halfOpen {
	for i := 0; c != nil && i < 4; i++ {
		switch x := c.(type) {
		case *trackedConn:
			return x.half
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}
