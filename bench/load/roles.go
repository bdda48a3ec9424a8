package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/homebox/gateway/internal/mqttwire"
)

// role is one worker's job: setup opens what must be open before "ready",
// run does the measured part and ends when done or told to stop.
type role interface {
	setup(ctx context.Context) error
	run(ctx context.Context, stop <-chan struct{}) (Result, error)
	close()
}

func newRole(s *Spec) role {
	switch s.Role {
	case RolePub:
		return &pubRole{s: s}
	case RoleSub:
		return &subRole{s: s}
	default:
		return &connsRole{s: s}
	}
}

// connectMany opens n connections, at most conc at once.
func connectMany(ctx context.Context, s *Spec, n, conc int) ([]*client, error) {
	if conc < 1 {
		conc = 1
	}
	clients := make([]*client, n)
	errs := make([]error, n)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				clients[i], errs[i] = dial(ctx, s, i)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil || ctx.Err() != nil {
		for _, c := range clients {
			if c != nil {
				c.conn.Close()
			}
		}
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	return clients, nil
}

// pubRole: Conns publishers, one goroutine each.
type pubRole struct {
	s       *Spec
	clients []*client
}

func (p *pubRole) setup(ctx context.Context) error {
	var err error
	p.clients, err = connectMany(ctx, p.s, p.s.Conns, 16)
	return err
}

func (p *pubRole) close() {
	for _, c := range p.clients {
		c.conn.Close()
	}
}

type pubTally struct {
	sent, acked uint64
	end         int64
	err         error
}

func (p *pubRole) run(ctx context.Context, _ <-chan struct{}) (Result, error) {
	start := time.Now()
	tallies := make([]pubTally, len(p.clients))
	var wg sync.WaitGroup
	for i, c := range p.clients {
		wg.Go(func() { tallies[i] = p.publish(ctx, c, p.s.FirstIndex+i, start) })
	}
	wg.Wait()
	res := Result{Role: RolePub, Conns: len(p.clients), Start: start.UnixNano()}
	var errs []error
	for _, t := range tallies {
		res.Sent += t.sent
		res.Acked += t.acked
		res.End = max(res.End, t.end)
		errs = append(errs, t.err)
	}
	return res, errors.Join(errs...)
}

// maxOutstanding keeps QoS 1 packet ids (1..65535) from wrapping onto ones
// still unacknowledged.
const maxOutstanding = 60000

func (p *pubRole) publish(ctx context.Context, c *client, index int, start time.Time) (t pubTally) {
	s := p.s
	topic := s.Topic + "/" + strconv.Itoa(index)
	payload := newPayload(index)
	size := mqttwire.PublishSize(topic, s.QoS, PayloadSize)
	batch := s.Batch
	if batch <= 0 {
		batch = 64
	}
	buf := make([]byte, 0, batch*size)

	var acked atomic.Uint64
	readerDone := make(chan error, 1)
	if s.QoS == 1 {
		go func() { readerDone <- readAcks(c, &acked) }()
	}

	var seq uint64
	count := uint64(s.Count)
	for seq < count {
		if ctx.Err() != nil {
			t.err = fmt.Errorf("publisher %d: stopped after %d of %d messages: %w", index, seq, count, ctx.Err())
			break
		}
		n := min(uint64(batch), count-seq)
		if s.Rate > 0 {
			due := min(uint64(time.Since(start).Seconds()*s.Rate)+1, count)
			if due <= seq {
				next := start.Add(time.Duration(float64(seq) / s.Rate * 1e9))
				time.Sleep(time.Until(next))
				continue
			}
			n = min(n, due-seq)
		}
		if s.QoS == 1 && seq+n-acked.Load() > maxOutstanding {
			// The broker is not acknowledging as fast as we send: wait,
			// which shows up as a publish rate below the target.
			time.Sleep(200 * time.Microsecond)
			continue
		}
		buf = buf[:0]
		now := time.Now().UnixNano()
		for range n {
			stampPayload(payload, seq, now)
			buf = mqttwire.AppendPublish(buf, topic, s.QoS, uint16(seq%65535)+1, payload)
			seq++
		}
		if err := c.write(buf); err != nil {
			t.err = fmt.Errorf("publisher %d: write after %d messages: %w", index, seq, err)
			break
		}
	}
	t.sent = seq
	t.end = time.Now().UnixNano()

	if s.QoS == 1 {
		// Wait for the last acknowledgements, then close.
		wait := s.Drain
		if wait <= 0 {
			wait = 5 * time.Second
		}
		deadline := time.Now().Add(wait)
		for acked.Load() < t.sent && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		_ = c.write(mqttwire.AppendDisconnect(nil))
		_ = c.conn.CloseWrite()
		_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		<-readerDone
		_ = c.conn.Close()
		t.acked = acked.Load()
		return t
	}
	c.closeGracefully(2 * time.Second)
	return t
}

// readAcks counts PUBACKs until the connection ends.
func readAcks(c *client, acked *atomic.Uint64) error {
	for {
		pk, err := c.r.Next()
		if err != nil {
			return err
		}
		if pk.Type == mqttwire.PUBACK {
			acked.Add(1)
		}
	}
}

// subRole: Conns subscribers to one filter, one goroutine each.
type subRole struct {
	s     *Spec
	conns []*subConn
}

type subConn struct {
	c      *client
	expect uint64
	next   []uint64 // next expected sequence number, by publisher index

	received, gaps, dups, foreign uint64
	lat                           []float64
	first                         int64
	last                          atomic.Int64
	done                          atomic.Bool
	err                           error
}

func (r *subRole) setup(ctx context.Context) error {
	clients, err := connectMany(ctx, r.s, r.s.Conns, 16)
	if err != nil {
		return err
	}
	for _, c := range clients {
		sc := &subConn{c: c, expect: uint64(r.s.Publishers) * uint64(r.s.PerPub), next: make([]uint64, r.s.Publishers)}
		if r.s.Latency {
			sc.lat = make([]float64, 0, sc.expect)
		}
		r.conns = append(r.conns, sc)
	}
	for _, sc := range r.conns {
		if err := sc.c.subscribe(ctx, r.s.Topic, r.s.QoS); err != nil {
			r.close()
			return err
		}
	}
	return nil
}

func (r *subRole) close() {
	for _, sc := range r.conns {
		sc.c.conn.Close()
	}
}

func (r *subRole) run(ctx context.Context, stop <-chan struct{}) (Result, error) {
	start := time.Now()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, sc := range r.conns {
		sc.last.Store(start.UnixNano())
		wg.Go(func() { sc.read(r.s) })
		wg.Go(func() { sc.c.pinger(pctx) })
	}
	r.watch(ctx, stop)
	cancel()
	wg.Wait()

	res := Result{Role: RoleSub, Conns: len(r.conns), Start: start.UnixNano(), End: time.Now().UnixNano()}
	var lat []float64
	var errs []error
	for _, sc := range r.conns {
		res.Received += sc.received
		res.Missing += sc.expect - min(sc.expect, sc.received)
		res.Gaps += sc.gaps
		res.Dups += sc.dups
		res.Foreign += sc.foreign
		if sc.first != 0 && (res.FirstRecv == 0 || sc.first < res.FirstRecv) {
			res.FirstRecv = sc.first
		}
		if sc.received > 0 {
			res.LastRecv = max(res.LastRecv, sc.last.Load())
		}
		lat = append(lat, sc.lat...)
		errs = append(errs, sc.err)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.LatencySamples = len(lat)
		res.P50 = percentile(lat, 0.50)
		res.P99 = percentile(lat, 0.99)
		res.Max = lat[len(lat)-1]
	}
	return res, errors.Join(errs...)
}

// watch returns when every connection has what it expects, or, after
// stop, once none has received anything for Quiet (or Drain has passed);
// then it closes the connections still open, which ends their readers.
func (r *subRole) watch(ctx context.Context, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var stopAt int64
	for {
		select {
		case <-ctx.Done():
			r.close()
			return
		case <-stop:
			stop = nil
			stopAt = time.Now().UnixNano()
		case <-tick.C:
		}
		all, quiet := true, stopAt != 0
		now := time.Now().UnixNano()
		for _, sc := range r.conns {
			if sc.done.Load() {
				continue
			}
			all = false
			if now-max(sc.last.Load(), stopAt) < int64(r.s.Quiet) {
				quiet = false
			}
		}
		if all {
			return
		}
		if quiet || (stopAt != 0 && r.s.Drain > 0 && now-stopAt > int64(r.s.Drain)) {
			r.close()
			return
		}
	}
}

// read counts what arrives on one connection. It takes the time once per
// read from the socket, not per message, unless latencies are wanted.
func (sc *subConn) read(s *Spec) {
	defer sc.done.Store(true)
	var acks []byte
	fresh := true
	for sc.received < sc.expect {
		if !sc.c.r.HasPacket() {
			if len(acks) > 0 {
				if err := sc.c.write(acks); err != nil {
					sc.err = fmt.Errorf("subscriber %s: send PUBACKs: %w", sc.c.id, err)
					return
				}
				acks = acks[:0]
			}
			fresh = true
		}
		pk, err := sc.c.r.Next()
		if err != nil {
			return // closed by watch, or the broker went away: Missing tells
		}
		var now int64
		if fresh || s.Latency {
			now = time.Now().UnixNano()
			sc.last.Store(now)
			if sc.first == 0 {
				sc.first = now
			}
			fresh = false
		}
		if pk.Type != mqttwire.PUBLISH {
			continue
		}
		pub, err := mqttwire.ParsePublish(pk)
		if err != nil {
			sc.err = fmt.Errorf("subscriber %s: %w", sc.c.id, err)
			return
		}
		if pub.QoS == 1 {
			acks = mqttwire.AppendPuback(acks, pub.ID)
		}
		index, seq, sent, err := readPayload(pub.Payload)
		if err != nil || index >= len(sc.next) {
			sc.foreign++
			continue
		}
		switch next := sc.next[index]; {
		case seq < next:
			sc.dups++
			continue
		case seq > next:
			sc.gaps++
		}
		sc.next[index] = seq + 1
		sc.received++
		if s.Latency && sc.received > uint64(s.SkipLatency) {
			sc.lat = append(sc.lat, float64(now-sent)/1e3)
		}
	}
	if len(acks) > 0 {
		_ = sc.c.write(acks)
	}
	sc.c.closeGracefully(time.Second)
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// connsRole is the storm and the idle hold.
type connsRole struct {
	s       *Spec
	clients []*client
}

func (r *connsRole) setup(ctx context.Context) error {
	if r.s.Role != RoleIdle {
		return nil
	}
	var err error
	r.clients, err = connectMany(ctx, r.s, r.s.Conns, r.s.Concurrency)
	return err
}

func (r *connsRole) close() {
	for _, c := range r.clients {
		c.conn.Close()
	}
}

func (r *connsRole) run(ctx context.Context, stop <-chan struct{}) (Result, error) {
	start := time.Now()
	res := Result{Role: r.s.Role, Start: start.UnixNano()}
	if r.s.Role == RoleStorm {
		// All connect at once, stay connected until the last is in, then
		// leave: the storm needs no "stop".
		clients, err := connectMany(ctx, r.s, r.s.Conns, r.s.Concurrency)
		res.End = time.Now().UnixNano()
		res.Conns = len(clients)
		for _, c := range clients {
			_ = c.write(mqttwire.AppendDisconnect(nil))
			_ = c.conn.Close()
		}
		return res, err
	}
	res.End = res.Start
	res.Conns = len(r.clients)
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range r.clients {
		wg.Go(func() { c.pinger(pctx) })
	}
	select {
	case <-stop:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	for _, c := range r.clients {
		_ = c.write(mqttwire.AppendDisconnect(nil))
		_ = c.conn.Close()
	}
	r.clients = nil
	return res, nil
}
