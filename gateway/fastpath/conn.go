package fastpath

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Watermarks of a subscriber's pending bytes. HighWater bounds what the
// broker holds for one slow subscriber (about 14,000 fan-in messages of 64
// bytes: many publishers' read bursts, far more than one flush writes) while
// costing nothing for a subscriber that keeps up: buffers exist only while
// bytes are pending. Publishers wait from HighWater down to LowWater so they
// do not wake once per write.
const (
	HighWater = 1 << 20
	LowWater  = HighWater / 4
)

// closeDrainTimeout bounds how long a closed connection still tries to write
// what it had accepted (a DISCONNECT after fast-path frames, say).
const closeDrainTimeout = time.Second

// Conn is the net.Conn handed to mochi. It keeps the bytes accepted for the
// peer but not yet written (pending, in order), so that fast-path frames can
// be queued without a syscall and written in one write() per read burst of
// the publisher, while mochi's own writes keep their order among them.
type Conn struct {
	net.Conn                 // what the listener made (TCP, TLS, websocket, wrappers)
	raw      syscall.RawConn // the TCP socket for non-blocking writes; nil: writes go through Conn
	socket   syscall.RawConn // the TCP socket under it all (also under TLS), to watch the peer read
	buffered bufferedReader  // the listener's read buffer under it (not under TLS); nil: none

	mu       sync.Mutex
	pending  chunks        // accepted, not yet written, in order
	writing  bool          // someone (mochi's Write, a flush, the drain goroutine) holds the socket
	err      error         // first write error; later writes fail with it
	closed   bool          // Close was called
	shut     atomic.Bool   // closed, readable without mu (deadlines)
	progress uint64        // counts writes that moved bytes, for stall judgement
	stuck    bool          // judged stuck: publishers no longer wait for it
	wake     chan struct{} // closed when pending falls below LowWater (or the conn fails)
	// The publisher whose dirty list holds this connection, as of its
	// flushGen: a fan-out publisher then marks each subscriber once per
	// burst without searching its list.
	markedBy  *Conn
	markedGen uint64

	// Publisher side. The goroutine that reads this connection (mochi's
	// reader, which also runs the OnPublish hooks) fills dirty and flushes
	// it on its next Read; Close, from any goroutine, flushes it too, as the
	// reader does not read again after a DISCONNECT.
	pubMu    sync.Mutex
	dirty    []*Conn // subscribers with frames from this publisher not yet flushed
	flushGen uint64  // counts flushes of dirty
	scratch  []byte  // frame encoding buffer (the reader's only)

	// The reader's last deadline and the keep-alive window it was set
	// with (see SetDeadline); the reader's only.
	deadline       time.Time
	deadlineWindow time.Duration
}

// Wrap returns the fast-path connection around c. Wrappers between c and
// the TCP socket are looked through with Unwrap (bridge.PrivateConn): they
// must not change the bytes written. TLS and websocket connections are not
// looked through, and are written by a goroutine.
func Wrap(c net.Conn) *Conn {
	u := underneath(c)
	w := &Conn{Conn: c, socket: u.socket}
	if !u.underTLS {
		w.raw, w.buffered = u.socket, u.buffered
	}
	return w
}

// bufferedReader is a connection that holds bytes it has read from the
// socket but not yet handed out (listeners' pooled reader).
type bufferedReader interface{ Buffered() int }

// under is what Wrap finds beneath a connection.
type under struct {
	socket   syscall.RawConn // the TCP socket; nil when there is none
	underTLS bool            // TLS lies between: the socket must not be written directly
	buffered bufferedReader  // the first read buffer above the socket; nil: none
}

// underneath walks down from c through byte-preserving wrappers (Unwrap)
// and TLS (NetConn) to the TCP socket.
func underneath(c net.Conn) (u under) {
	for i := 0; c != nil && i < 8; i++ {
		if b, ok := c.(bufferedReader); ok && u.buffered == nil && !u.underTLS {
			u.buffered = b
		}
		switch x := c.(type) {
		case *net.TCPConn:
			if raw, err := x.SyscallConn(); err == nil {
				u.socket = raw
			}
			return u
		case interface{ Unwrap() net.Conn }:
			c = x.Unwrap()
		case interface{ NetConn() net.Conn }:
			u.underTLS = true
			c = x.NetConn()
		default:
			return u
		}
	}
	return u
}

// Unwrap gives the connection underneath (bridge detection looks through).
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// Read flushes the frames this connection's publisher left with its
// subscribers (mochi reads again only when its buffer is empty: the end of
// a read burst), then reads.
//
// mochi's own read buffer is tiny (it costs every idle client), so it asks
// every 128 bytes; while the listener's reader still holds bytes of the
// burst, the flush waits, so that a burst of 64 messages to 50 subscribers
// is 50 writes, not 3,200.
func (c *Conn) Read(p []byte) (int, error) {
	if c.buffered == nil || c.buffered.Buffered() == 0 {
		c.flushDirty()
	}
	return c.Conn.Read(p)
}

// Write is mochi's write. It only queues the bytes behind the pending ones
// (order kept) and makes sure the drain goroutine writes them: mochi holds
// the client's lock across this call, and with 8 QoS 1 publishers taking
// that lock for every message (packet ids), a write(2) under it made them
// queue up; bursts of PUBACKs also share one write(2) now. Measured: QoS 1
// top rate 45k, 40k -> 50k, 55k/s (Mosquitto 70-90k, same runs). A write
// error shows on a later Write, and the connection is closed. Like a
// socket write it blocks while the peer is far behind (HighWater).
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.pending.len() >= HighWater && c.err == nil && !c.closed {
		ch := c.wakeLocked()
		if !c.writing {
			c.startDrainLocked()
		}
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	if err := c.failedLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.pending.add(p)
	if !c.writing {
		c.startDrainLocked()
	}
	c.mu.Unlock()
	return len(p), nil
}

func (c *Conn) failedLocked() error {
	if c.err != nil {
		return c.err
	}
	if c.closed {
		return net.ErrClosed
	}
	return nil
}

// Close closes the connection once what it accepted is written (bounded by
// closeDrainTimeout), and wakes mochi's reader at once.
func (c *Conn) Close() error {
	c.flushDirty()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.shut.Store(true)
	c.signalLocked()
	if c.writing || (c.pending.len() > 0 && c.err == nil) {
		// The writer closes the connection when it is done.
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeDrainTimeout))
		_ = c.Conn.SetReadDeadline(time.Now())
		if !c.writing {
			c.startDrainLocked()
		}
		c.mu.Unlock()
		return nil
	}
	c.pending.release()
	c.mu.Unlock()
	return c.Conn.Close()
}

// SetDeadline, SetReadDeadline and SetWriteDeadline pass through until
// Close: mochi's reader refreshes its deadline once per packet and could
// otherwise undo the ones Close sets to bound the last writes.
//
// mochi's reader sets a keep-alive deadline (1.5 × keep-alive ahead) before
// every packet it reads, which in fan-in cost 8 % of the broker's CPU. A new
// deadline less than an eighth of that window after the one in force is not
// passed on: the client is then cut off at most 1/8 of the window early,
// still after 1.31 × keep-alive, so a client that keeps its keep-alive is
// never cut off.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.shut.Load() {
		return nil
	}
	if !t.IsZero() && !c.deadline.IsZero() && !t.Before(c.deadline) && t.Sub(c.deadline) < c.deadlineWindow/8 {
		return nil
	}
	c.deadline = t
	if !t.IsZero() {
		c.deadlineWindow = time.Until(t)
	}
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline and SetWriteDeadline pass through (until Close); they
// forget the deadline SetDeadline remembers, so that its next call is
// passed on.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.shut.Load() {
		return nil
	}
	c.deadline = time.Time{}
	return c.Conn.SetReadDeadline(t)
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.shut.Load() {
		return nil
	}
	c.deadline = time.Time{}
	return c.Conn.SetWriteDeadline(t)
}

// enqueue appends a frame for this subscriber. It reports false when the
// connection failed, is closed or is judged stuck (the frame is dropped).
// With pub (its pubMu held), a queued frame also puts c on pub's dirty list
// unless it is there already.
func (c *Conn) enqueue(frame []byte, pub *Conn) (queued, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closed || c.stuck {
		return false, false
	}
	if c.pending.len() >= HighWater {
		return false, true
	}
	c.pending.add(frame)
	if pub != nil && (c.markedBy != pub || c.markedGen != pub.flushGen) {
		c.markedBy, c.markedGen = pub, pub.flushGen
		pub.dirty = append(pub.dirty, c)
	}
	return true, false
}

// flushDirty writes what this publisher left with its subscribers.
func (c *Conn) flushDirty() {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.flushDirtyLocked()
}

func (c *Conn) flushDirtyLocked() {
	c.flushGen++ // before the flushes: a mark from now on is a new one
	for i, sub := range c.dirty {
		sub.flush()
		c.dirty[i] = nil
	}
	c.dirty = c.dirty[:0]
}

// flush writes the pending bytes now, on the caller's goroutine, without
// ever blocking on the peer: one non-blocking write to the TCP socket; what
// it does not take (or any non-TCP connection) goes to the drain goroutine.
func (c *Conn) flush() {
	c.mu.Lock()
	if c.writing || c.pending.len() == 0 || c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.raw == nil {
		c.startDrainLocked()
		c.mu.Unlock()
		return
	}
	c.writing = true
	batch := c.pending.take()
	c.mu.Unlock()

	n, err := writeNonBlocking(c.raw, batch.bufs)

	c.mu.Lock()
	c.wroteLocked(n, err)
	batch.consume(n)
	if c.err == nil {
		c.pending.pushFront(batch)
	} else {
		batch.release()
	}
	if c.pending.len() < LowWater {
		c.signalLocked()
	}
	c.doneWritingLocked()
	c.mu.Unlock()
	if err != nil {
		c.failed()
	}
}

// writeNonBlocking writes bufs in order until the socket would block.
func writeNonBlocking(raw syscall.RawConn, bufs [][]byte) (int, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for _, b := range bufs {
			for off := 0; off < len(b); {
				m, err := syscall.Write(int(fd), b[off:])
				if err == syscall.EINTR {
					continue
				}
				if err != nil {
					if err != syscall.EAGAIN {
						werr = err
					}
					return true
				}
				off += m
				n += m
			}
		}
		return true // never wait for the socket here
	})
	if werr == nil {
		werr = err
	}
	return n, werr
}

// startDrainLocked starts the goroutine that writes pending out with
// blocking writes; it ends when nothing is pending.
func (c *Conn) startDrainLocked() {
	c.writing = true
	go c.drain()
}

// drainChunk is the most one blocking write takes, so that a slow reader
// shows progress (see waitDrained) at least this often, as mochi's own
// writes of its 16 KiB buffer would.
const drainChunk = 16 << 10

func (c *Conn) drain() {
	c.mu.Lock()
	for c.pending.len() > 0 && c.err == nil {
		batch := c.pending.take()
		c.signalLocked() // publishers may queue again while this batch goes out
		c.mu.Unlock()
	write:
		for _, b := range batch.bufs {
			for off := 0; off < len(b); {
				n, err := c.Conn.Write(b[off:min(off+drainChunk, len(b))])
				off += n
				c.mu.Lock()
				c.wroteLocked(n, err)
				c.mu.Unlock()
				if err != nil {
					break write
				}
			}
		}
		batch.release()
		c.mu.Lock()
	}
	c.writing = false
	end := c.closed || c.err != nil
	if end {
		c.pending.release()
	}
	c.signalLocked()
	c.mu.Unlock()
	if end {
		_ = c.Conn.Close()
	}
}

// doneWritingLocked ends a direct write or flush: bytes queued meanwhile
// go to the drain goroutine.
func (c *Conn) doneWritingLocked() {
	if c.pending.len() > 0 && c.err == nil {
		c.startDrainLocked()
		return
	}
	c.writing = false
	if c.err != nil {
		c.pending.release()
	}
	if c.closed {
		// Close left the closing to the writer.
		go func() { _ = c.Conn.Close() }()
	}
}

// wroteLocked records a write's outcome.
func (c *Conn) wroteLocked(n int, err error) {
	if n > 0 {
		c.progress++
		c.stuck = false
	}
	if err != nil && c.err == nil {
		if errors.Is(err, syscall.EAGAIN) {
			return
		}
		c.err = err
		c.signalLocked()
	}
}

// failed closes the connection after a write error, so that mochi's reader
// sees it and ends the client.
func (c *Conn) failed() { _ = c.Conn.Close() }

func (c *Conn) wakeLocked() chan struct{} {
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

func (c *Conn) signalLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// unsent is what the kernel holds for the peer, or -1 when unknown.
func (c *Conn) unsent() int {
	if c.socket == nil {
		return -1
	}
	return unsentBytes(c.socket)
}

// isStuck says whether publishers no longer wait for this subscriber.
func (c *Conn) isStuck() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stuck
}

// waitDrained holds a publisher until the subscriber is below LowWater
// (ok). It gives up when the subscriber fails, closes or writes nothing for
// stallAfter; in the last case it is judged stuck (stuckNow) until it writes
// again, and nobody waits for it meanwhile.
func (c *Conn) waitDrained(stallAfter time.Duration, stopped <-chan struct{}) (ok, stuckNow bool) {
	t := time.NewTimer(stallAfter)
	defer t.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Progress since the timer started: our writes, or the kernel's queue
	// for the peer shrinking. A blocked write returns only once the kernel
	// has room for all of it, which a peer that reads slowly but steadily
	// can take longer than stallAfter to make.
	before, unsent := c.progress, c.unsent()
	for {
		if c.err != nil || c.closed || c.stuck {
			return false, false
		}
		if c.pending.len() < LowWater {
			return true, false
		}
		if !c.writing {
			c.startDrainLocked()
		}
		ch := c.wakeLocked()
		c.mu.Unlock()
		select {
		case <-ch:
			c.mu.Lock()
		case <-stopped:
			c.mu.Lock()
			return false, false
		case <-t.C:
			c.mu.Lock()
			now := c.unsent()
			if c.progress == before && (now < 0 || now >= unsent) {
				c.stuck = true
				return false, true
			}
			before, unsent = c.progress, now
			t.Reset(stallAfter)
		}
	}
}
