package fastpath

import (
	"sync/atomic"
	"time"

	"github.com/homebox/gateway/gateway/expiry"
	"github.com/homebox/gateway/gateway/traffic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// deliver writes pk to r's subscribers the fast path's way: encoded once
// per protocol version, appended to each one's pending bytes, flushed when
// the publisher's read burst ends (pub), or at once for the broker's own
// publishes (pub nil).
func (h *Hook) deliver(cl *mqtt.Client, pub *Conn, pk *packets.Packet, r *route) {
	var scratch []byte
	if pub != nil {
		pub.pubMu.Lock()
		defer pub.pubMu.Unlock()
		scratch = pub.scratch[:0]
	}
	var v3, v5 []byte
	var sent, bytes, dropped, boxSent int64
	var flushNow []*Conn
	for i := range r.targets {
		t := &r.targets[i]
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
		switch h.deliverTo(pub, t, frame) {
		case delivered:
			sent++
			if t.box {
				boxSent++
			}
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
	if c := h.cfg.Traffic; c != nil && sent > 0 {
		if len(pk.TopicName) > 0 && pk.TopicName[0] == '$' {
			c.Sent(traffic.Sys, sent)
		} else {
			c.Sent(traffic.Box, boxSent)
			c.Sent(traffic.Owner, sent-boxSent)
		}
	}
	if sent > 0 {
		atomic.AddInt64(&h.srv.Info.MessagesSent, sent)
		atomic.AddInt64(&h.srv.Info.PacketsSent, sent)
		atomic.AddInt64(&h.srv.Info.BytesSent, bytes)
	}
	if dropped > 0 {
		atomic.AddInt64(&h.srv.Info.MessagesDropped, dropped)
	}
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

// deliverTo queues frame for t. Past HighWater a client publisher first
// writes what it left with its subscribers, then waits for t to drain,
// unless t is judged stuck; the broker's own publishes (pub nil) drop.
func (h *Hook) deliverTo(pub *Conn, t *target, frame []byte) outcome {
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
			// never wait, on mochi's way either: their callers may hold
			// locks. mochi dropped these as well.
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
func expiryOf(pk *packets.Packet) uint32 {
	if !expiry.Publisher(pk) {
		return 0 // none, or only the broker's retain-forever bound
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
