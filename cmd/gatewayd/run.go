package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/homebox/gateway/internal/version"
	"github.com/homebox/gateway/rootfs"
)

// runMain is `gatewayd run`: SIGTERM and SIGINT stop the box (exit 0),
// SIGHUP re-reads gateway.yaml.
func runMain(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", defaultRoot(), "the box's root folder")
	dev := fs.Bool("dev", false, "development: console on "+devConsole+", mDNS off, a banner saying where things are")
	self := fs.String("self", "", "the gatewayd that apps with command \"gatewayd\" run (default: this binary; set it when a wrapper starts gatewayd)")
	trial := fs.Duration("trial-timeout", defaultTrialTimeout, "how long a newly updated root slot gets to show a working broker and console before the box falls back")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatewayd run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	defaultGC(50)
	// Signals are caught before anything starts, so none is lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := startBox(ctx, boxOptions{Root: *root, Dev: *dev, Stderr: stderr, Version: version.Version, Self: *self, TrialTimeout: *trial})
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd: %v\n", err)
		return 1
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			_ = b.reload() // logged by reload; the box runs on as before
			continue
		}
		b.log.Info("signal received", "signal", sig.String())
		break
	}
	if err := b.stop(); err != nil {
		fmt.Fprintf(stderr, "gatewayd: %v\n", err)
		return 1
	}
	return 0
}

// initMain is `gatewayd init`: the shipped defaults, without overwriting.
func initMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", defaultRoot(), "the box's root folder")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatewayd init: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	abs, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd init: %v\n", err)
		return 1
	}
	wrote, err := rootfs.Seed(abs)
	for _, f := range wrote {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd init: %v\n", err)
		return 1
	}
	if len(wrote) == 0 {
		fmt.Fprintf(stdout, "nothing to write: every shipped file is already under %s\n", abs)
	}
	return 0
}

// defaultGC sets the process's GC target (GOGC) unless $GOGC says
// otherwise. gatewayd run uses 50: its live heap is ~1.5 MiB (supervisor,
// API, console, discovery), so with the default it idles at the runtime's
// 4 MiB minimum heap goal, mostly garbage; at 50 that floor is 2 MiB. It
// moves no messages, so the extra collections cost it a fraction of a
// percent of CPU.
//
// The broker keeps the default, 100. 200 was tried: fan-in +10-20 %, but
// mochi allocates a 64 KiB outbound queue per client that counts as live
// heap though its pages are never touched, so with 1,000 clients the heap
// goal grew by ~64 MiB and the soak's RSS from 104 to 160 MiB.
func defaultGC(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}
