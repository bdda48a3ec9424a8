package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/homebox/gateway/internal/atomicfile"
)

// MemStatsEnv names a folder; when set, SIGUSR1 makes gatewayd (either
// command: `run` and its `broker` child inherit it) write its Go memory
// figures into FOLDER/PID.json, after a heap profile in FOLDER/PID.heap.pprof
// (run with GODEBUG=memprofilerate=1 to see every allocation). It is how the box's idle-memory benchmark
// (e2e) tells heap from stacks from runtime overhead inside each process;
// /proc alone only shows anonymous memory as one figure.
const MemStatsEnv = "GATEWAYD_MEMSTATS"

// MemStats is what the file holds: runtime/metrics figures by name, with
// the "/memory/classes/" prefix and the ":bytes" unit cut, plus
// "goroutines".
type MemStats map[string]uint64

// serveMemStats answers SIGUSR1 when $GATEWAYD_MEMSTATS is set; otherwise it
// does nothing (SIGUSR1 keeps its default meaning).
func serveMemStats() {
	dir := os.Getenv(MemStatsEnv)
	if dir == "" {
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	go func() {
		for range sigs {
			base := filepath.Join(dir, strconv.Itoa(os.Getpid()))
			if err := errors.Join(writeHeapProfile(base+".heap.pprof"), writeMemStats(base+".json")); err != nil {
				fmt.Fprintln(os.Stderr, "warning:", MemStatsEnv+":", err)
			}
		}
	}()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
}

func writeMemStats(path string) error {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") || d.Name == "/sched/goroutines:goroutines" {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	out := MemStats{}
	for _, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			continue
		}
		name := strings.TrimPrefix(s.Name, "/memory/classes/")
		name = strings.TrimSuffix(name, ":bytes")
		if s.Name == "/sched/goroutines:goroutines" {
			name = "goroutines"
		}
		out[name] = s.Value.Uint64()
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600) // a reader never sees half a file
}
