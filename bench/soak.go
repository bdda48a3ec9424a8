package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/homebox/gateway/bench/brokers"
	"github.com/homebox/gateway/bench/load"
)

// SoakConfig is `make soak`: each broker in turn holds idle connections
// while a steady paced QoS 1 fan-in runs in chunks, for For.
type SoakConfig struct {
	Brokers   []brokers.Spec
	For       time.Duration // per broker
	Rate      float64       // total QoS 1 messages/s (default 500: a load both brokers carry, so a change over time means a leak or a stall)
	Chunk     time.Duration // one publish-and-count cycle (default 10 s)
	IdleConns int           // held throughout (default 1,000)
	Worker    []string      // as in Config
	Progress  io.Writer
}

// SoakResult is one broker's soak.
type SoakResult struct {
	Broker                   string
	Chunks                   int
	Sent, Undelivered        uint64        // undelivered: not in by 2 s after a chunk's last publish
	WorstLag                 time.Duration // subscriber behind the publishers at a chunk's end
	RSSStart, RSSMax, RSSEnd int64         // KiB
	CPU                      float64       // broker, % of a core over the soak
	Err                      string
}

// SoakReport is the outcome of Soak.
type SoakReport struct {
	Config  SoakConfig
	Results []SoakResult
}

// Soak runs the soak on every broker, one after the other.
func Soak(ctx context.Context, cfg SoakConfig) (*SoakReport, error) {
	if cfg.For <= 0 {
		return nil, fmt.Errorf("soak: duration %s is not positive", cfg.For)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 500
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = 10 * time.Second
	}
	if cfg.IdleConns <= 0 {
		cfg.IdleConns = 1000
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
	raiseFileLimit()
	cred, err := newCredentials()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gwbench-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	rep := &SoakReport{Config: cfg}
	for _, spec := range cfg.Brokers {
		res := soakOne(ctx, cfg, spec, filepath.Join(dir, slug(spec.Name)), cred)
		rep.Results = append(rep.Results, res)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	return rep, nil
}

func soakOne(ctx context.Context, cfg SoakConfig, spec brokers.Spec, dir string, cred brokers.Credentials) (res SoakResult) {
	res.Broker = spec.Name
	fail := func(err error) SoakResult {
		res.Err = err.Error()
		fmt.Fprintf(cfg.Progress, "soak %s: FAILED %v\n", spec.Name, err)
		return res
	}
	b, err := brokers.Start(ctx, spec, dir, cred, nil)
	if err != nil {
		return fail(err)
	}
	defer b.Stop()
	p := FullParams()
	p.QoS1Step = cfg.Chunk
	fx := &Fixture{Broker: b, Cred: cred, P: p, Topic: "gwbench/soak", worker: cfg.Worker}

	idle, err := fx.StartWorker(ctx, load.Spec{Role: load.RoleIdle, Conns: cfg.IdleConns, Concurrency: 32, Timeout: cfg.For + time.Minute})
	if err != nil {
		return fail(err)
	}
	defer idle.Kill()
	if err := idle.Go(); err != nil {
		return fail(err)
	}
	if res.RSSStart, err = b.RSSKB(); err != nil {
		return fail(err)
	}
	res.RSSMax = res.RSSStart
	cpu0, _ := b.CPUSeconds()
	t0 := time.Now()
	perPub := max(1, int(cfg.Rate/8*cfg.Chunk.Seconds()))
	for time.Since(t0) < cfg.For {
		pr, sr, _, err := pubSub(ctx, fx,
			load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/#", Conns: 1, QoS: 1, Publishers: 8, PerPub: perPub, Quiet: 2 * time.Second},
			load.Spec{Role: load.RolePub, Topic: fx.Topic, Conns: 8, QoS: 1, Count: perPub, Rate: cfg.Rate / 8})
		if err != nil {
			return fail(err)
		}
		res.Chunks++
		res.Sent += pr.Sent
		res.Undelivered += sr.Missing
		res.WorstLag = max(res.WorstLag, time.Duration(sr.LastRecv-pr.End))
		if !b.Alive() {
			return fail(fmt.Errorf("broker exited: %s", lastLines(b.Output(), 5)))
		}
		rss, err := b.RSSKB()
		if err != nil {
			return fail(err)
		}
		res.RSSEnd, res.RSSMax = rss, max(res.RSSMax, rss)
		fmt.Fprintf(cfg.Progress, "soak %s: %s, %d sent, %d undelivered, RSS %d KiB\n", spec.Name, time.Since(t0).Round(time.Second), res.Sent, res.Undelivered, rss)
	}
	cpu1, _ := b.CPUSeconds()
	res.CPU = pct(cpu1-cpu0, time.Since(t0).Seconds())
	idle.Stop()
	if r, err := idle.Result(ctx); err != nil || r.Conns != cfg.IdleConns {
		return fail(fmt.Errorf("idle connections: %d of %d held to the end: %v", r.Conns, cfg.IdleConns, err))
	}
	return res
}

// WriteTable prints the soak's outcome as a Markdown table.
func (r *SoakReport) WriteTable(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "soak: %s per broker, QoS 1 8 → 1 at %.0f msg/s in %s chunks, %d idle connections held\n\n", c.For, c.Rate, c.Chunk, c.IdleConns)
	fmt.Fprintln(w, "| broker | chunks | sent | undelivered | worst lag | RSS start → max → end | broker CPU | error |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
	for _, s := range r.Results {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %.1f → %.1f → %.1f MiB | %.0f %% | %s |\n", s.Broker, s.Chunks, s.Sent, s.Undelivered,
			s.WorstLag.Round(time.Millisecond), float64(s.RSSStart)/1024, float64(s.RSSMax)/1024, float64(s.RSSEnd)/1024, s.CPU, s.Err)
	}
}
