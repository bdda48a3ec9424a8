// Package bench is `make bench`: it measures `gatewayd broker` and Debian's
// mosquitto side by side in one run, with the same conf, the same load and
// the same machine, alternating which goes first, and prints each figure's
// median for both and their ratio.
//
// The brokers run as child processes (package brokers), each started fresh
// for every measurement so no figure inherits another's memory or backlog.
// The load comes from worker processes running package load, which this
// binary re-executes itself to be; publishers and subscribers never share a
// process, and each reports its own CPU so the table shows whether the
// generator or the broker was the limit.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/homebox/gateway/bench/brokers"
	"github.com/homebox/gateway/bench/load"
)

// Config is one benchmark run.
type Config struct {
	// Brokers are compared as Brokers[0] / Brokers[1] in the ratio column.
	Brokers []brokers.Spec
	Params  Params
	// Rounds of every figure on every broker; medians are over rounds.
	Rounds int
	// Worker starts a load worker; default: this executable with
	// load.WorkerFlag.
	Worker []string
	// Figures to measure; default Figures().
	Figures []Figure
	// Dir holds the brokers' confs and stores; default a temp folder,
	// removed at the end.
	Dir string
	// Progress gets one line per measurement; nil discards.
	Progress io.Writer
}

// Fixture is what a figure measures with: one freshly started broker.
type Fixture struct {
	Broker *brokers.Broker
	Cred   brokers.Credentials
	P      Params
	// Topic is unique to this measurement; figures publish under it.
	Topic   string
	worker  []string
	restart func(context.Context) error
}

// Restart replaces the broker with a fresh one (same conf, empty store),
// so that one step of a search does not inherit the last one's backlog.
func (fx *Fixture) Restart(ctx context.Context) error { return fx.restart(ctx) }

// StartWorker starts a load worker against the fixture's broker; addr,
// login, client prefix and a timeout are filled in when unset.
func (fx *Fixture) StartWorker(ctx context.Context, s load.Spec) (*load.Worker, error) {
	s.Addr = fx.Broker.Addr
	s.Username, s.Password = fx.Cred.Username, fx.Cred.Password
	if s.ClientPrefix == "" {
		s.ClientPrefix = "gwb-" + string(s.Role)
	}
	if s.Timeout == 0 {
		s.Timeout = fx.P.WorkerTimeout
	}
	return load.StartWorker(ctx, fx.worker, s)
}

// Sample is one measurement of one figure on one broker.
type Sample struct {
	Values map[string]float64 // by Metric.Key
	// BrokerCPU is the broker's CPU over the measured phase, in % of one
	// core; GenCPU the same for each worker process, by role.
	BrokerCPU float64
	GenCPU    map[string]float64
	Note      string
}

// Metric is one row of the table.
type Metric struct {
	Key   string
	Label string
	Unit  string
	Lower bool // lower is better
	// Goal is what issue 8 asks of Brokers[0] against Brokers[1]; nil for
	// none.
	Goal *Goal
}

// Goal is a target for a metric: Met says whether subject against
// reference meets it.
type Goal struct {
	Text string
	Met  func(subject, reference float64) bool
}

// Figure is one kind of measurement. The bridge figure plugs in here: its
// ExtraConf adds a `connection` block (and may start the remote broker,
// registering its stop with cleanup) and its Measure counts what crosses.
type Figure struct {
	Name      string
	Metrics   []Metric
	ExtraConf func(ctx context.Context, dir string, cleanup func(func())) ([]string, error)
	Measure   func(ctx context.Context, fx *Fixture) (Sample, error)
}

// Report is the outcome of Run.
type Report struct {
	Brokers  []string
	Rounds   int
	Quick    bool
	Started  time.Time
	Elapsed  time.Duration
	Figures  []Figure
	Samples  map[string]map[string][]Sample // figure → broker → samples in round order
	Failures []string                       // measurements that failed, with why
}

// Run measures every figure on every broker, Rounds times, alternating
// which broker goes first.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Brokers) != 2 {
		return nil, fmt.Errorf("bench: need two brokers to compare, got %d", len(cfg.Brokers))
	}
	if cfg.Brokers[0].Name == cfg.Brokers[1].Name {
		return nil, fmt.Errorf("bench: both brokers are named %q", cfg.Brokers[0].Name)
	}
	if cfg.Rounds < 1 {
		cfg.Rounds = 1
	}
	if cfg.Figures == nil {
		cfg.Figures = Figures()
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Worker == nil {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Worker = []string{exe, load.WorkerFlag}
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "gwbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}
	raiseFileLimit()
	cred, err := newCredentials()
	if err != nil {
		return nil, err
	}

	rep := &Report{Rounds: cfg.Rounds, Quick: cfg.Params.Quick, Started: time.Now(), Figures: cfg.Figures, Samples: map[string]map[string][]Sample{}}
	for _, b := range cfg.Brokers {
		rep.Brokers = append(rep.Brokers, b.Name)
	}
	for round := range cfg.Rounds {
		for fi, fig := range cfg.Figures {
			order := slices.Clone(cfg.Brokers)
			if (round+fi)%2 == 1 {
				slices.Reverse(order)
			}
			for _, spec := range order {
				if err := ctx.Err(); err != nil {
					return rep, err
				}
				dir := filepath.Join(cfg.Dir, fmt.Sprintf("r%d-%s-%s", round+1, slug(fig.Name), slug(spec.Name)))
				t0 := time.Now()
				s, err := measure(ctx, cfg, fig, spec, dir, cred, round)
				if err != nil {
					msg := fmt.Sprintf("round %d, %s, %s: %v", round+1, fig.Name, spec.Name, err)
					rep.Failures = append(rep.Failures, msg)
					fmt.Fprintln(cfg.Progress, "FAILED", msg)
					if ctx.Err() != nil {
						return rep, ctx.Err()
					}
					continue
				}
				if rep.Samples[fig.Name] == nil {
					rep.Samples[fig.Name] = map[string][]Sample{}
				}
				rep.Samples[fig.Name][spec.Name] = append(rep.Samples[fig.Name][spec.Name], s)
				fmt.Fprintf(cfg.Progress, "round %d/%d  %-8s %-10s %5.1fs  %s\n", round+1, cfg.Rounds, fig.Name, spec.Name, time.Since(t0).Seconds(), s.describe(fig))
			}
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

// measure starts a fresh broker, measures one figure on it and stops it.
func measure(ctx context.Context, cfg Config, fig Figure, spec brokers.Spec, dir string, cred brokers.Credentials, round int) (s Sample, err error) {
	var cleanups []func()
	defer func() {
		for _, f := range slices.Backward(cleanups) {
			f()
		}
	}()
	var extra []string
	if fig.ExtraConf != nil {
		if extra, err = fig.ExtraConf(ctx, dir, func(f func()) { cleanups = append(cleanups, f) }); err != nil {
			return s, err
		}
	}
	fx := &Fixture{Cred: cred, P: cfg.Params, Topic: fmt.Sprintf("gwbench/r%d/%s", round+1, slug(fig.Name)), worker: cfg.Worker}
	fx.restart = func(ctx context.Context) error {
		if fx.Broker != nil {
			if err := fx.Broker.Stop(); err != nil {
				return err
			}
			fx.Broker = nil
		}
		if err := os.RemoveAll(filepath.Join(dir, "store")); err != nil {
			return err
		}
		b, err := brokers.Start(ctx, spec, dir, cred, extra)
		fx.Broker = b
		return err
	}
	if err := fx.restart(ctx); err != nil {
		return s, err
	}
	defer func() {
		if fx.Broker != nil {
			if stopErr := fx.Broker.Stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}
		_ = os.RemoveAll(dir) // stores can be large; the output is kept in errors
	}()
	s, err = fig.Measure(ctx, fx)
	if err == nil && fx.Broker != nil && !fx.Broker.Alive() {
		err = errors.New("broker exited during the measurement")
	}
	if err != nil && fx.Broker != nil {
		return s, fmt.Errorf("%w; broker output: %s", err, lastLines(fx.Broker.Output(), 5))
	}
	return s, err
}

func newCredentials() (brokers.Credentials, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return brokers.Credentials{}, err
	}
	return brokers.Credentials{Username: "gwbench", Password: hex.EncodeToString(b)}, nil
}

// raiseFileLimit lifts the soft open-files limit to the hard one; the
// brokers and workers inherit it and the storm needs thousands.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
