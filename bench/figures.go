package bench

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/homebox/gateway/bench/brokers"
	"github.com/homebox/gateway/bench/load"
)

// Params size the load. Counts are bounded so a full run stays well under
// ten minutes on two cores.
type Params struct {
	Quick bool

	FanInPubs, FanInCount   int // publishers, messages each
	FanOutSubs, FanOutCount int // subscribers, messages published

	QoS1Pubs   int           // publishers of the paced QoS 1 steps
	QoS1Start  float64       // first step, total messages/s
	QoS1Max    float64       // no step above this
	QoS1Step   time.Duration // how long each step publishes
	QoS1Refine int           // bisections between the last good and first bad step

	LatencyRate float64       // messages/s
	LatencyFor  time.Duration // how long
	LatencySkip time.Duration // warm-up left out

	StormConns, StormConcurrency int
	IdleConns                    int

	Quiet         time.Duration // a subscriber ends after this long with nothing new
	WorkerTimeout time.Duration
}

// FullParams is `make bench`.
func FullParams() Params {
	return Params{
		FanInPubs: 8, FanInCount: 100_000,
		FanOutSubs: 50, FanOutCount: 20_000,
		QoS1Pubs: 8, QoS1Start: 10_000, QoS1Max: 640_000, QoS1Step: 2 * time.Second, QoS1Refine: 3,
		LatencyRate: 1000, LatencyFor: 5 * time.Second, LatencySkip: 500 * time.Millisecond,
		StormConns: 2000, StormConcurrency: 64,
		IdleConns:     1000,
		Quiet:         time.Second,
		WorkerTimeout: 2 * time.Minute,
	}
}

// QuickParams is `gwbench -quick`: the same figures, smaller, to check
// that everything works in well under a minute.
func QuickParams() Params {
	return Params{
		Quick:     true,
		FanInPubs: 8, FanInCount: 10_000,
		FanOutSubs: 50, FanOutCount: 1_000,
		QoS1Pubs: 8, QoS1Start: 10_000, QoS1Max: 160_000, QoS1Step: 500 * time.Millisecond, QoS1Refine: 0,
		LatencyRate: 1000, LatencyFor: time.Second, LatencySkip: 200 * time.Millisecond,
		StormConns: 500, StormConcurrency: 64,
		IdleConns:     300,
		Quiet:         500 * time.Millisecond,
		WorkerTimeout: 30 * time.Second,
	}
}

func atLeast(x float64) *Goal {
	return &Goal{Text: fmt.Sprintf("≥ %g×", x), Met: func(s, r float64) bool { return r > 0 && s/r >= x }}
}

func atMost(x float64) *Goal {
	return &Goal{Text: fmt.Sprintf("≤ %g×", x), Met: func(s, r float64) bool { return r > 0 && s/r <= x }}
}

// Figures are the measurements of `make bench`, goals from issue 8.
func Figures() []Figure {
	return []Figure{
		{Name: "fan-in", Measure: fanIn, Metrics: []Metric{
			{Key: "rate", Label: "fan-in 8 → 1, QoS 0, delivered/s", Unit: "/s", Goal: atLeast(2)},
			{Key: "dropped", Label: "fan-in 8 → 1, QoS 0, dropped", Unit: "%", Lower: true,
				Goal: &Goal{Text: "0 %", Met: func(s, _ float64) bool { return s == 0 }}},
		}},
		{Name: "fan-out", Measure: fanOut, Metrics: []Metric{
			{Key: "rate", Label: "fan-out 1 → 50, QoS 0, deliveries/s", Unit: "/s", Goal: atLeast(2)},
			{Key: "dropped", Label: "fan-out 1 → 50, QoS 0, dropped", Unit: "%", Lower: true},
		}},
		{Name: "qos1", Measure: qos1Steps, Metrics: []Metric{
			{Key: "rate", Label: "QoS 1 8 → 1, top paced rate with no loss", Unit: "/s", Goal: atLeast(1.5)},
		}},
		{Name: "latency", Measure: latency, Metrics: []Metric{
			{Key: "p50", Label: "latency at 1,000 msg/s, p50", Unit: "µs", Lower: true},
			{Key: "p99", Label: "latency at 1,000 msg/s, p99", Unit: "µs", Lower: true, Goal: atMost(1)},
		}},
		{Name: "storm", Measure: storm, Metrics: []Metric{
			{Key: "rate", Label: "connect storm, connects/s", Unit: "/s", Goal: atLeast(1)},
		}},
		{Name: "idle", Measure: idle, Metrics: []Metric{
			{Key: "kb", Label: "resident memory per idle connection", Unit: "KB", Lower: true,
				Goal: &Goal{Text: "≤ 4 KB", Met: func(s, _ float64) bool { return s <= 4 }}},
			{Key: "base", Label: "resident memory of a fresh broker", Unit: "MiB", Lower: true},
		}},
	}
}

// pubSub runs one subscriber worker and one publisher worker to the end
// and reads the broker's CPU over the measured phase.
func pubSub(ctx context.Context, fx *Fixture, sub, pub load.Spec) (pr, sr load.Result, s Sample, err error) {
	sw, err := fx.StartWorker(ctx, sub)
	if err != nil {
		return pr, sr, s, err
	}
	defer sw.Kill()
	pw, err := fx.StartWorker(ctx, pub)
	if err != nil {
		return pr, sr, s, err
	}
	defer pw.Kill()
	cpu0, err := fx.Broker.CPUSeconds()
	if err != nil {
		return pr, sr, s, err
	}
	t0 := time.Now()
	if err := sw.Go(); err != nil {
		return pr, sr, s, err
	}
	if err := pw.Go(); err != nil {
		return pr, sr, s, err
	}
	if pr, err = pw.Result(ctx); err != nil {
		return pr, sr, s, err
	}
	sw.Stop()
	if sr, err = sw.Result(ctx); err != nil {
		return pr, sr, s, err
	}
	cpu1, err := fx.Broker.CPUSeconds()
	if err != nil {
		return pr, sr, s, err
	}
	// The broker is idle once the last message is out; the subscriber's
	// quiet wait after that is left out of the window.
	end := max(sr.LastRecv, pr.End)
	wall := float64(end-t0.UnixNano()) / 1e9
	s = Sample{Values: map[string]float64{}, GenCPU: map[string]float64{"pub": pct(pr.CPU, pr.Wall), "sub": pct(sr.CPU, sr.Wall)}}
	if wall > 0 {
		s.BrokerCPU = pct(cpu1-cpu0, wall)
	}
	if sr.Foreign > 0 || sr.Dups > 0 {
		s.Note = fmt.Sprintf("%d foreign and %d duplicate messages", sr.Foreign, sr.Dups)
	}
	return pr, sr, s, nil
}

func pct(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * part / whole
}

// rate is messages per second between the first and last arrival.
func rate(r load.Result) float64 {
	d := float64(r.LastRecv-r.FirstRecv) / 1e9
	if r.Received < 2 || d <= 0 {
		return 0
	}
	return float64(r.Received) / d
}

// checkCounts refuses results that do not add up: every message sent is
// either received or missing, and nothing arrives that was not sent.
func checkCounts(pr, sr load.Result, fanout int) error {
	want := pr.Sent * uint64(fanout)
	if sr.Received+sr.Missing != want {
		return fmt.Errorf("counts do not add up: %d sent × %d subscribers, %d received + %d missing", pr.Sent, fanout, sr.Received, sr.Missing)
	}
	if sr.Foreign > 0 {
		return fmt.Errorf("%d messages arrived that this run did not send", sr.Foreign)
	}
	return nil
}

func fanIn(ctx context.Context, fx *Fixture) (Sample, error) {
	p := fx.P
	pr, sr, s, err := pubSub(ctx, fx,
		load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/#", Conns: 1, Publishers: p.FanInPubs, PerPub: p.FanInCount, Quiet: p.Quiet},
		load.Spec{Role: load.RolePub, Topic: fx.Topic, Conns: p.FanInPubs, Count: p.FanInCount})
	if err != nil {
		return s, err
	}
	if err := checkCounts(pr, sr, 1); err != nil {
		return s, err
	}
	s.Values["rate"] = rate(sr)
	s.Values["dropped"] = pct(float64(sr.Missing), float64(pr.Sent))
	if sr.Gaps > 0 {
		s.Note = strings.TrimSpace(fmt.Sprintf("%s %d sequence gaps", s.Note, sr.Gaps))
	}
	return s, nil
}

func fanOut(ctx context.Context, fx *Fixture) (Sample, error) {
	p := fx.P
	pr, sr, s, err := pubSub(ctx, fx,
		load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/#", Conns: p.FanOutSubs, Publishers: 1, PerPub: p.FanOutCount, Quiet: p.Quiet},
		load.Spec{Role: load.RolePub, Topic: fx.Topic, Conns: 1, Count: p.FanOutCount})
	if err != nil {
		return s, err
	}
	if err := checkCounts(pr, sr, p.FanOutSubs); err != nil {
		return s, err
	}
	s.Values["rate"] = rate(sr)
	s.Values["dropped"] = pct(float64(sr.Missing), float64(pr.Sent)*float64(p.FanOutSubs))
	return s, nil
}

// qos1Step publishes at total rate r for QoS1Step and says whether the
// broker kept up with nothing lost. Each step but the first gets a fresh
// broker, so none inherits the last one's backlog.
func qos1Step(ctx context.Context, fx *Fixture, r float64, fresh bool) (ok bool, why string, s Sample, err error) {
	p := fx.P
	if !fresh {
		if err := fx.Restart(ctx); err != nil {
			return false, "", s, err
		}
	}
	drain := max(time.Second, p.QoS1Step/2)
	perPub := max(1, int(r/float64(p.QoS1Pubs)*p.QoS1Step.Seconds()))
	pr, sr, s, err := pubSub(ctx, fx,
		load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/#", Conns: 1, QoS: 1, Publishers: p.QoS1Pubs, PerPub: perPub, Quiet: p.Quiet, Drain: drain},
		load.Spec{Role: load.RolePub, Topic: fx.Topic, Conns: p.QoS1Pubs, QoS: 1, Count: perPub, Rate: r / float64(p.QoS1Pubs), Drain: drain})
	if err != nil {
		return false, "", s, err
	}
	if err := checkCounts(pr, sr, 1); err != nil {
		return false, "", s, err
	}
	achieved := float64(pr.Sent) / pr.Seconds()
	lag := time.Duration(sr.LastRecv - pr.End)
	maxLag := max(100*time.Millisecond, p.QoS1Step/10)
	switch {
	case sr.Missing > 0:
		return false, fmt.Sprintf("%d of %d not delivered within %s of the last publish", sr.Missing, pr.Sent, drain), s, nil
	case pr.Acked < pr.Sent:
		return false, fmt.Sprintf("%d unacknowledged", pr.Sent-pr.Acked), s, nil
	case achieved < 0.95*r:
		return false, fmt.Sprintf("publishers held back to %.0f/s", achieved), s, nil
	case lag > maxLag:
		return false, fmt.Sprintf("subscriber %s behind", lag.Round(time.Millisecond)), s, nil
	}
	return true, "", s, nil
}

// qos1Steps doubles the paced rate until a step loses or lags, then
// bisects between the last good and the first bad rate.
func qos1Steps(ctx context.Context, fx *Fixture) (Sample, error) {
	p := fx.P
	var good, bad float64
	var best Sample
	var log []string
	try := func(r float64) error {
		ok, why, s, err := qos1Step(ctx, fx, r, len(log) == 0)
		if err != nil {
			return fmt.Errorf("step %.0f/s: %w", r, err)
		}
		if ok {
			good, best = r, s
			log = append(log, si(r)+" ok")
		} else {
			bad = r
			log = append(log, si(r)+" "+why)
		}
		return nil
	}
	for r := p.QoS1Start; r <= p.QoS1Max; r *= 2 {
		if err := try(r); err != nil {
			return best, err
		}
		if bad > 0 {
			break
		}
	}
	// The first step failed: walk down instead.
	for r := p.QoS1Start / 2; good == 0 && r >= p.QoS1Start/16; r /= 2 {
		if err := try(r); err != nil {
			return best, err
		}
	}
	for range p.QoS1Refine {
		if good == 0 || bad == 0 {
			break
		}
		if err := try(math.Round((good+bad)/2/100) * 100); err != nil {
			return best, err
		}
	}
	if best.Values == nil {
		best = Sample{Values: map[string]float64{}}
	}
	best.Values["rate"] = good
	best.Note = strings.Join(log, ", ")
	return best, nil
}

func latency(ctx context.Context, fx *Fixture) (Sample, error) {
	p := fx.P
	n := int(p.LatencyRate * p.LatencyFor.Seconds())
	skip := int(p.LatencyRate * p.LatencySkip.Seconds())
	pr, sr, s, err := pubSub(ctx, fx,
		load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/#", Conns: 1, Publishers: 1, PerPub: n, Quiet: p.Quiet, Latency: true, SkipLatency: skip},
		load.Spec{Role: load.RolePub, Topic: fx.Topic, Conns: 1, Count: n, Rate: p.LatencyRate, Batch: 1})
	if err != nil {
		return s, err
	}
	if err := checkCounts(pr, sr, 1); err != nil {
		return s, err
	}
	if sr.LatencySamples == 0 {
		return s, fmt.Errorf("no latency samples (%d of %d received)", sr.Received, n)
	}
	s.Values["p50"], s.Values["p99"] = sr.P50, sr.P99
	s.Note = strings.TrimSpace(fmt.Sprintf("%s max %.0f µs over %d samples, %d lost", s.Note, sr.Max, sr.LatencySamples, sr.Missing))
	return s, nil
}

func storm(ctx context.Context, fx *Fixture) (Sample, error) {
	p := fx.P
	w, err := fx.StartWorker(ctx, load.Spec{Role: load.RoleStorm, Conns: p.StormConns, Concurrency: p.StormConcurrency})
	if err != nil {
		return Sample{}, err
	}
	defer w.Kill()
	cpu0, _ := fx.Broker.CPUSeconds()
	if err := w.Go(); err != nil {
		return Sample{}, err
	}
	r, err := w.Result(ctx)
	if err != nil {
		return Sample{}, err
	}
	cpu1, _ := fx.Broker.CPUSeconds()
	if r.Conns != p.StormConns {
		return Sample{}, fmt.Errorf("%d of %d connected", r.Conns, p.StormConns)
	}
	return Sample{
		Values:    map[string]float64{"rate": float64(r.Conns) / r.Seconds()},
		BrokerCPU: pct(cpu1-cpu0, r.Wall),
		GenCPU:    map[string]float64{"storm": pct(r.CPU, r.Wall)},
	}, nil
}

func idle(ctx context.Context, fx *Fixture) (Sample, error) {
	p := fx.P
	base, err := settledRSS(ctx, fx.Broker)
	if err != nil {
		return Sample{}, err
	}
	w, err := fx.StartWorker(ctx, load.Spec{Role: load.RoleIdle, Conns: p.IdleConns, Concurrency: 32})
	if err != nil {
		return Sample{}, err
	}
	defer w.Kill()
	held, err := settledRSS(ctx, fx.Broker)
	if err != nil {
		return Sample{}, err
	}
	if err := w.Go(); err != nil {
		return Sample{}, err
	}
	w.Stop()
	r, err := w.Result(ctx)
	if err != nil {
		return Sample{}, err
	}
	if r.Conns != p.IdleConns {
		return Sample{}, fmt.Errorf("%d of %d idle connections held", r.Conns, p.IdleConns)
	}
	return Sample{
		Values: map[string]float64{"kb": float64(held-base) / float64(p.IdleConns), "base": float64(base) / 1024},
		Note:   fmt.Sprintf("VmRSS %d KiB → %d KiB with %d connections", base, held, p.IdleConns),
	}, nil
}

// settledRSS waits until the broker's VmRSS stops moving (five readings
// 100 ms apart within 1 %), at most 3 s, and returns the last reading.
func settledRSS(ctx context.Context, b *brokers.Broker) (int64, error) {
	deadline := time.Now().Add(3 * time.Second)
	var recent []int64
	for {
		kb, err := b.RSSKB()
		if err != nil {
			return 0, err
		}
		recent = append(recent, kb)
		if len(recent) > 5 {
			recent = recent[1:]
		}
		if len(recent) == 5 {
			lo, hi := recent[0], recent[0]
			for _, v := range recent {
				lo, hi = min(lo, v), max(hi, v)
			}
			if float64(hi-lo) <= 0.01*float64(hi) {
				return kb, nil
			}
		}
		if time.Now().After(deadline) {
			return kb, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
