package bench

import (
	"bytes"
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/bench/brokers"
	"github.com/homebox/gateway/bench/load"
)

// TestMain lets the test binary be a load worker too: the generator runs
// in separate processes here just as under gwbench.
func TestMain(m *testing.M) {
	if load.IsWorker() {
		os.Exit(load.WorkerMain())
	}
	os.Exit(m.Run())
}

func workerCommand(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, load.WorkerFlag}
}

func mosquittoSpec(t *testing.T, name string) brokers.Spec {
	t.Helper()
	bin, err := brokers.MosquittoBin()
	if err != nil {
		t.Fatal(err)
	}
	return brokers.Spec{Name: name, Kind: brokers.Mosquitto, Bin: bin}
}

// tinyParams keep every figure to a fraction of a second.
func tinyParams() Params {
	return Params{
		FanInPubs: 8, FanInCount: 2000,
		FanOutSubs: 10, FanOutCount: 300,
		QoS1Pubs: 4, QoS1Start: 2000, QoS1Max: 4000, QoS1Step: 250 * time.Millisecond,
		LatencyRate: 1000, LatencyFor: 300 * time.Millisecond, LatencySkip: 50 * time.Millisecond,
		StormConns: 200, StormConcurrency: 32,
		IdleConns:     100,
		Quiet:         300 * time.Millisecond,
		WorkerTimeout: 20 * time.Second,
	}
}

// fixture starts a real mosquitto with the bench conf.
func fixture(t *testing.T, ctx context.Context) *Fixture {
	t.Helper()
	spec := mosquittoSpec(t, "mosquitto")
	cred := brokers.Credentials{Username: "gwbench", Password: "test-pw"}
	dir := t.TempDir()
	fx := &Fixture{Cred: cred, P: tinyParams(), Topic: "gwbench/test", worker: workerCommand(t)}
	fx.restart = func(ctx context.Context) error {
		if fx.Broker != nil {
			_ = fx.Broker.Stop()
		}
		b, err := brokers.Start(ctx, spec, dir, cred, nil)
		fx.Broker = b
		return err
	}
	if err := fx.restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.Broker.Stop() })
	return fx
}

func TestGeneratorCountsAddUpAgainstMosquitto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	fx := fixture(t, ctx)

	t.Run("fan-in QoS 0", func(t *testing.T) {
		pr, sr, s, err := pubSub(ctx, fx,
			load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/in/#", Conns: 1, Publishers: 8, PerPub: 2000, Quiet: 300 * time.Millisecond},
			load.Spec{Role: load.RolePub, Topic: fx.Topic + "/in", Conns: 8, Count: 2000})
		if err != nil {
			t.Fatal(err)
		}
		if pr.Conns != 8 || pr.Sent != 16000 || sr.Conns != 1 {
			t.Fatalf("publishers %d sent %d, subscribers %d", pr.Conns, pr.Sent, sr.Conns)
		}
		if sr.Received == 0 || sr.Received+sr.Missing != pr.Sent || sr.Foreign != 0 || sr.Dups != 0 {
			t.Fatalf("sent %d: received %d missing %d foreign %d dups %d", pr.Sent, sr.Received, sr.Missing, sr.Foreign, sr.Dups)
		}
		if sr.FirstRecv == 0 || sr.LastRecv < sr.FirstRecv || pr.End < pr.Start {
			t.Fatalf("times: first %d last %d, publish %d..%d", sr.FirstRecv, sr.LastRecv, pr.Start, pr.End)
		}
		if _, ok := s.GenCPU["pub"]; !ok {
			t.Fatalf("no generator CPU reported: %+v", s)
		}
	})

	t.Run("fan-out QoS 0", func(t *testing.T) {
		pr, sr, _, err := pubSub(ctx, fx,
			load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/out/#", Conns: 10, Publishers: 1, PerPub: 300, Quiet: 300 * time.Millisecond},
			load.Spec{Role: load.RolePub, Topic: fx.Topic + "/out", Conns: 1, Count: 300})
		if err != nil {
			t.Fatal(err)
		}
		if sr.Conns != 10 || sr.Received+sr.Missing != 10*pr.Sent || sr.Received == 0 {
			t.Fatalf("sent %d to %d subscribers: received %d missing %d", pr.Sent, sr.Conns, sr.Received, sr.Missing)
		}
	})

	t.Run("QoS 1 paced: every message acknowledged and delivered in order", func(t *testing.T) {
		pr, sr, _, err := pubSub(ctx, fx,
			load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/q1/#", Conns: 1, QoS: 1, Publishers: 4, PerPub: 250, Quiet: 300 * time.Millisecond},
			load.Spec{Role: load.RolePub, Topic: fx.Topic + "/q1", Conns: 4, QoS: 1, Count: 250, Rate: 1000})
		if err != nil {
			t.Fatal(err)
		}
		// QoS 1 to a connected subscriber loses nothing: a count, not a time.
		if pr.Sent != 1000 || pr.Acked != 1000 || sr.Received != 1000 || sr.Missing != 0 || sr.Gaps != 0 || sr.Dups != 0 {
			t.Fatalf("sent %d acked %d; received %d missing %d gaps %d dups %d", pr.Sent, pr.Acked, sr.Received, sr.Missing, sr.Gaps, sr.Dups)
		}
	})

	t.Run("latency samples", func(t *testing.T) {
		_, sr, _, err := pubSub(ctx, fx,
			load.Spec{Role: load.RoleSub, Topic: fx.Topic + "/lat/#", Conns: 1, Publishers: 1, PerPub: 200, Quiet: 300 * time.Millisecond, Latency: true, SkipLatency: 20},
			load.Spec{Role: load.RolePub, Topic: fx.Topic + "/lat", Conns: 1, Count: 200, Rate: 1000, Batch: 1})
		if err != nil {
			t.Fatal(err)
		}
		if want := int(sr.Received) - 20; sr.LatencySamples != want {
			t.Fatalf("%d latency samples of %d received, want %d", sr.LatencySamples, sr.Received, want)
		}
		if !(0 < sr.P50 && sr.P50 <= sr.P99 && sr.P99 <= sr.Max) {
			t.Fatalf("percentiles out of order: p50 %g p99 %g max %g", sr.P50, sr.P99, sr.Max)
		}
	})

	t.Run("storm and idle connections", func(t *testing.T) {
		s, err := storm(ctx, fx)
		if err != nil {
			t.Fatal(err) // storm fails unless all 200 connected
		}
		if s.Values["rate"] <= 0 {
			t.Fatalf("storm rate %g", s.Values["rate"])
		}
		s, err = idle(ctx, fx)
		if err != nil {
			t.Fatal(err) // idle fails unless all 100 were held
		}
		if s.Values["base"] <= 0 {
			t.Fatalf("fresh broker RSS %g MiB", s.Values["base"])
		}
	})

	t.Run("a wrong password is refused, clearly", func(t *testing.T) {
		bad := *fx
		bad.Cred.Password = "wrong"
		_, err := bad.StartWorker(ctx, load.Spec{Role: load.RoleIdle, Conns: 1})
		if err == nil || !strings.Contains(err.Error(), "CONNACK code 5") {
			t.Fatalf("got %v, want a refusal naming CONNACK code 5", err)
		}
	})
}

// TestRunPrintsEveryFigure runs the whole runner, tiny, with mosquitto on
// both sides, and checks the table has every row filled.
func TestRunPrintsEveryFigure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{
		Brokers:  []brokers.Spec{mosquittoSpec(t, "a"), mosquittoSpec(t, "b")},
		Params:   tinyParams(),
		Rounds:   1,
		Worker:   workerCommand(t),
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("failures: %v\nprogress:\n%s", rep.Failures, progress.String())
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	rep.WriteCPU(&table)
	for _, f := range rep.Figures {
		for _, m := range f.Metrics {
			for _, b := range rep.Brokers {
				if math.IsNaN(rep.Median(f.Name, b, m.Key)) {
					t.Errorf("%s / %s has no value for %s", f.Name, m.Key, b)
				}
			}
			if !strings.Contains(table.String(), m.Label) {
				t.Errorf("table has no row %q", m.Label)
			}
		}
	}
	if t.Failed() {
		t.Logf("table:\n%s\nprogress:\n%s", table.String(), progress.String())
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := Run(ctx, Config{Brokers: []brokers.Spec{mosquittoSpec(t, "a")}}); err == nil {
		t.Fatal("one broker accepted")
	}
	if _, err := Run(ctx, Config{Brokers: []brokers.Spec{mosquittoSpec(t, "a"), mosquittoSpec(t, "a")}}); err == nil {
		t.Fatal("two brokers with one name accepted")
	}
}

func TestMedianRatioAndFormat(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median %g", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Fatalf("median %g", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Fatal("median of nothing is a number")
	}
	if r := ratio(341.2e3, 170.6e3); r != "2.00×" {
		t.Fatalf("ratio %q", r)
	}
	if r := ratio(0, 0); r != "=" {
		t.Fatalf("ratio of zeros %q", r)
	}
	if s := si(170_600); s != "170.6k" {
		t.Fatalf("si %q", s)
	}
	if g := atLeast(2); !g.Met(2, 1) || g.Met(1.9, 1) {
		t.Fatal("atLeast(2)")
	}
}
