package fastpath

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// queue is our count of one subscriber connection's outbound queue in
// mochi, which mochi does not expose.
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

// queued says whether mochi may still hold messages for this subscriber in
// its outbound queue (as far as the count knows): a message delivered
// around that queue could overtake them. A count left above zero by a
// message mochi did not queue after all (packet size) is forgotten once
// nothing has moved for a second, so the fast path is not lost for good.
func (q *queue) queued() bool {
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

func (h *Hook) queueOf(cl *mqtt.Client) *queue {
	if q, ok := h.queues.Load(cl); ok {
		return q.(*queue)
	}
	q, _ := h.queues.LoadOrStore(cl, new(queue))
	return q.(*queue)
}

// holdBack counts a publish mochi is about to queue for each of r's
// subscribers, and holds the publisher's reader while one of them is too
// far behind.
func (h *Hook) holdBack(from *mqtt.Client, r *route) {
	for i := range r.targets {
		t := &r.targets[i]
		if (t.noLocal && t.cl.ID == from.ID) || t.cl.Closed() {
			continue
		}
		t.q.moved.Store(time.Now().UnixNano())
		if t.q.in.Add(1)-t.q.out.Load() >= h.cfg.High && !t.q.stalled.Load() {
			h.wait(from, t.cl, t.q)
		}
	}
}

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
	h.dequeued(cl)
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
func (h *Hook) OnPublishDropped(cl *mqtt.Client, _ packets.Packet) { h.dequeued(cl) }

// dequeued takes one message off cl's count.
func (h *Hook) dequeued(cl *mqtt.Client) {
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
