package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// startProfile starts a CPU profile into $GATEWAYD_CPUPROFILE, for the
// profile-led work of docs/BENCHMARKS.md; the returned stop writes it, and
// also writes a heap profile into $GATEWAYD_MEMPROFILE when that is set.
// Without either variable it does nothing.
func startProfile(stderr io.Writer) (stop func()) {
	cpuPath, memPath := os.Getenv("GATEWAYD_CPUPROFILE"), os.Getenv("GATEWAYD_MEMPROFILE")
	var cpu *os.File
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "warning: GATEWAYD_CPUPROFILE:", err)
		} else {
			cpu = f
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if memPath == "" {
			return
		}
		if err := writeHeapProfile(memPath); err != nil {
			fmt.Fprintln(stderr, "warning: GATEWAYD_MEMPROFILE:", err)
		}
	}
}
