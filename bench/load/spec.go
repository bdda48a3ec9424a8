// Package load is the benchmark's load generator: publishers, subscribers,
// connection storms and idle connections speaking raw MQTT 3.1.1 (package
// wire), each role run in a worker process of its own.
//
// Roles live in separate processes so that the side that sends and the
// side that counts never share a scheduler or a garbage collector, and so
// each side's own CPU can be reported: a generator that is itself the
// bottleneck gives false figures. The runner (package bench) starts a
// worker, sends it a Spec, waits until it says it is ready, tells it to go
// and later to stop, and reads back one Result.
package load

import (
	"errors"
	"fmt"
	"time"
)

// Role names what a worker does.
type Role string

const (
	// RolePub publishes Count messages from each of Conns connections,
	// paced at Rate per connection or as fast as TCP takes them.
	RolePub Role = "pub"
	// RoleSub subscribes Conns connections to Topic and counts what
	// arrives, by publisher and sequence number.
	RoleSub Role = "sub"
	// RoleStorm opens Conns connections at once after "go", holds each
	// until the last is in, then closes them all; Start..End is the storm.
	RoleStorm Role = "storm"
	// RoleIdle opens Conns connections before saying it is ready and holds
	// them, idle, until "stop".
	RoleIdle Role = "idle"
)

// PayloadSize is the size of every message the generator publishes.
const PayloadSize = 64

// Spec tells a worker what to do. Durations travel as nanoseconds.
type Spec struct {
	Role     Role   `json:"role"`
	Addr     string `json:"addr"` // host:port of the broker under test
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// ClientPrefix starts every client id; the worker adds its pid and the
	// connection's index, so ids never collide across workers.
	ClientPrefix string `json:"client_prefix"`
	// Topic is a publisher's topic prefix (connection i sends to
	// Topic/FirstIndex+i) or a subscriber's filter.
	Topic string `json:"topic,omitempty"`
	Conns int    `json:"conns"`
	QoS   byte   `json:"qos"`

	// Publishers.
	FirstIndex int     `json:"first_index,omitempty"`
	Count      int     `json:"count,omitempty"` // messages per connection
	Rate       float64 `json:"rate,omitempty"`  // messages/s per connection; 0 = unpaced
	Batch      int     `json:"batch,omitempty"` // unpaced: messages per write (default 64)

	// Subscribers.
	Publishers  int           `json:"publishers,omitempty"`   // publisher indexes 0..Publishers-1 feed the filter
	PerPub      int           `json:"per_pub,omitempty"`      // messages each publisher sends
	Quiet       time.Duration `json:"quiet,omitempty"`        // after stop, end once nothing arrived for this long
	Latency     bool          `json:"latency,omitempty"`      // record each message's latency
	SkipLatency int           `json:"skip_latency,omitempty"` // warm-up messages left out of the latency figures

	// Drain bounds the wait after the publishers are done: a subscriber
	// ends this long after "stop" even if messages still trickle in (they
	// count as missing), and a QoS 1 publisher waits this long for its last
	// acknowledgements (default 5 s). A broker far behind then costs a step
	// of the search its length plus Drain, not its whole backlog.
	Drain time.Duration `json:"drain,omitempty"`

	// Storm and idle.
	Concurrency int `json:"concurrency,omitempty"` // connects in flight at once

	// Timeout bounds the worker's whole run.
	Timeout time.Duration `json:"timeout"`
}

// Validate says what is wrong with a spec before anything is opened.
func (s *Spec) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("spec: "+format, a...)) }
	switch s.Role {
	case RolePub, RoleSub, RoleStorm, RoleIdle:
	default:
		bad("role %q is not pub, sub, storm or idle", s.Role)
	}
	if s.Addr == "" {
		bad("addr is empty")
	}
	if s.Conns < 1 || s.Conns > 100000 {
		bad("conns %d is not between 1 and 100000", s.Conns)
	}
	if s.QoS > 1 {
		bad("qos %d: the generator speaks QoS 0 and 1", s.QoS)
	}
	if s.Timeout <= 0 {
		bad("timeout is not set")
	}
	switch s.Role {
	case RolePub:
		if s.Topic == "" {
			bad("pub: topic is empty")
		}
		if s.Count < 1 {
			bad("pub: count %d is below 1", s.Count)
		}
		if s.Rate < 0 {
			bad("pub: rate %g is negative", s.Rate)
		}
	case RoleSub:
		if s.Topic == "" {
			bad("sub: topic filter is empty")
		}
		if s.Publishers < 1 || s.Publishers > 100000 {
			bad("sub: publishers %d is not between 1 and 100000", s.Publishers)
		}
		if s.PerPub < 1 {
			bad("sub: per_pub %d is below 1", s.PerPub)
		}
		if s.Quiet <= 0 {
			bad("sub: quiet is not set")
		}
	}
	return errors.Join(errs...)
}

// Result is what a worker reports when its role ends. Times are Unix
// nanoseconds, comparable across workers on one machine.
type Result struct {
	Role  Role `json:"role"`
	Conns int  `json:"conns"` // connections that connected (and subscribed)

	// Publishers: messages written and, at QoS 1, acknowledged.
	Sent  uint64 `json:"sent,omitempty"`
	Acked uint64 `json:"acked,omitempty"`

	// Subscribers, summed over connections.
	Received uint64 `json:"received,omitempty"` // distinct messages that arrived
	Missing  uint64 `json:"missing,omitempty"`  // expected but never arrived
	Gaps     uint64 `json:"gaps,omitempty"`     // jumps forward in a publisher's sequence
	Dups     uint64 `json:"dups,omitempty"`     // repeated or backward sequence numbers
	Foreign  uint64 `json:"foreign,omitempty"`  // messages not from this run's publishers

	FirstRecv int64 `json:"first_recv,omitempty"`
	LastRecv  int64 `json:"last_recv,omitempty"`

	// Latency (µs) over the messages after the warm-up.
	LatencySamples int     `json:"latency_samples,omitempty"`
	P50            float64 `json:"p50_us,omitempty"`
	P99            float64 `json:"p99_us,omitempty"`
	Max            float64 `json:"max_us,omitempty"`

	// Start and End bound the run phase (publishers: first to last write;
	// storm: first dial to last CONNACK).
	Start int64 `json:"start"`
	End   int64 `json:"end"`

	// CPU is this worker process's user+system seconds over the run phase,
	// Wall the phase's length: CPU/Wall is the generator's own load.
	CPU  float64 `json:"cpu_s"`
	Wall float64 `json:"wall_s"`
}

// Seconds is End-Start in seconds.
func (r Result) Seconds() float64 { return float64(r.End-r.Start) / 1e9 }
