// Command gwbench is `make bench`: it measures `gatewayd broker` against
// Debian's mosquitto in one run and prints the figures side by side.
// Started with -worker (by itself) it is one of the load's worker
// processes instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/homebox/gateway/bench"
	"github.com/homebox/gateway/bench/brokers"
	"github.com/homebox/gateway/bench/load"
)

func main() {
	if load.IsWorker() {
		os.Exit(load.WorkerMain())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gwbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a short run that checks everything works (under a minute)")
	rounds := fs.Int("rounds", 0, "rounds per figure, medians over them (default 3, or 1 with -quick)")
	list := fs.String("brokers", "gatewayd,mosquitto", "the two brokers compared, first/second in the ratio: gatewayd or mosquitto")
	gatewayd := fs.String("gatewayd", "", "a gatewayd binary to use (default: go build ./cmd/gatewayd)")
	only := fs.String("figures", "", "comma-separated figures to run (default all): fan-in, fan-out, qos1, latency, storm, idle")
	soak := fs.Bool("soak", false, "instead of the figures, hold a steady QoS 1 load and idle connections and watch for loss and memory growth")
	soakFor := fs.Duration("soak-for", 5*time.Minute, "with -soak: how long each broker is soaked")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "gwbench-")
	if err != nil {
		log.Error("temp folder", "error", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	specs, err := brokerSpecs(ctx, *list, *gatewayd, tmp)
	if err != nil {
		fmt.Fprintln(stderr, "gwbench:", err)
		return 1
	}

	if *soak {
		rep, err := bench.Soak(ctx, bench.SoakConfig{Brokers: specs, For: *soakFor, Progress: stderr})
		if rep != nil {
			rep.WriteTable(stdout)
		}
		if err != nil {
			fmt.Fprintln(stderr, "gwbench:", err)
			return 1
		}
		return 0
	}

	cfg := bench.Config{Brokers: specs, Params: bench.FullParams(), Rounds: 3, Progress: stderr, Dir: tmp}
	if *quick {
		cfg.Params, cfg.Rounds = bench.QuickParams(), 1
	}
	if *rounds > 0 {
		cfg.Rounds = *rounds
	}
	if *only != "" {
		want := map[string]bool{}
		for _, f := range strings.Split(*only, ",") {
			want[strings.TrimSpace(f)] = true
		}
		for _, f := range bench.Figures() {
			if want[f.Name] {
				cfg.Figures = append(cfg.Figures, f)
				delete(want, f.Name)
			}
		}
		if len(want) > 0 {
			fmt.Fprintf(stderr, "gwbench: -figures: unknown figure(s) %v; known: fan-in, fan-out, qos1, latency, storm, idle\n", keys(want))
			return 2
		}
	}
	rep, err := bench.Run(ctx, cfg)
	if rep != nil && err == nil {
		mode := "full"
		if *quick {
			mode = "quick"
		}
		fmt.Fprintf(stdout, "gwbench %s run, %s, %d round(s), %s\n", mode, rep.Started.Format("2006-01-02 15:04 MST"), rep.Rounds, rep.Elapsed.Round(time.Second))
		fmt.Fprintf(stdout, "machine: %s; shared with other sessions while measured\n\n", bench.Machine())
		rep.WriteTable(stdout)
		fmt.Fprintln(stdout)
		rep.WriteCPU(stdout)
		fmt.Fprintln(stdout)
		rep.WriteNotes(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "gwbench:", err)
		return 1
	}
	if len(rep.Failures) > 0 {
		return 1
	}
	return 0
}

// brokerSpecs turns -brokers into specs; gatewayd is built unless given.
func brokerSpecs(ctx context.Context, list, gatewayd, tmp string) ([]brokers.Spec, error) {
	var specs []brokers.Spec
	seen := map[string]int{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		spec := brokers.Spec{Name: name, Kind: brokers.Kind(name)}
		switch spec.Kind {
		case brokers.Mosquitto:
			bin, err := brokers.MosquittoBin()
			if err != nil {
				return nil, err
			}
			spec.Bin = bin
		case brokers.Gatewayd:
			if gatewayd == "" {
				bin, err := bench.BuildGatewayd(ctx, tmp)
				if err != nil {
					return nil, fmt.Errorf("-brokers gatewayd: %w", err)
				}
				gatewayd = bin
			}
			// The brokers start in their own temp folders, so a relative
			// path (make bench passes bin/gatewayd) must be made absolute.
			abs, err := filepath.Abs(gatewayd)
			if err != nil {
				return nil, fmt.Errorf("-gatewayd: %w", err)
			}
			spec.Bin = abs
		default:
			return nil, fmt.Errorf("-brokers: %q is not gatewayd or mosquitto", name)
		}
		// The same broker twice (to check the bench itself) gets told apart.
		if seen[name]++; seen[name] > 1 {
			spec.Name = fmt.Sprintf("%s#%d", name, seen[name])
		}
		specs = append(specs, spec)
	}
	if len(specs) != 2 {
		return nil, fmt.Errorf("-brokers: name two brokers, got %d", len(specs))
	}
	return specs, nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
