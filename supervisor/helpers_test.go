package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childBin is testdata/child, built once for all tests.
var childBin string

func TestMain(m *testing.M) {
	if os.Getenv(hostEnv) != "" {
		os.Exit(runHost())
	}
	dir, err := os.MkdirTemp("", "supervisor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	childBin = filepath.Join(dir, "child")
	build := exec.Command("go", "build", "-o", childBin, "./testdata/child")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building testdata/child with the go tool:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// child returns a spec running the test child with args.
func child(name string, args ...string) Spec {
	return Spec{
		Name:        name,
		Command:     childBin,
		Args:        args,
		KillTimeout: 2 * time.Second,
		Restart:     RestartPolicy{Delay: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, MinUptime: 50 * time.Millisecond},
	}
}

type testSup struct {
	*Supervisor
	logDir, stateDir string
}

// newSup makes a supervisor in temp folders that is shut down, and checked
// for zombies, when the test ends.
func newSup(t testing.TB, tweak func(*Options)) *testSup {
	t.Helper()
	dir := t.TempDir()
	opts := Options{LogDir: filepath.Join(dir, "log"), StateDir: filepath.Join(dir, "run"), SampleInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tweak != nil {
		tweak(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if z := zombieChildren(); len(z) > 0 {
			t.Errorf("zombie children left after Shutdown: %v", z)
		}
	})
	return &testSup{Supervisor: s, logDir: opts.LogDir, stateDir: opts.StateDir}
}

func (s *testSup) start(t testing.TB, specs ...Spec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx, specs); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func (s *testSup) get(t testing.TB, name string) AppState {
	t.Helper()
	st, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitState polls an app's state until cond holds.
func (s *testSup) waitState(t testing.TB, name, what string, timeout time.Duration, cond func(AppState) bool) AppState {
	t.Helper()
	var st AppState
	waitFor(t, timeout, name+": "+what, func() bool {
		st = s.get(t, name)
		return cond(st)
	})
	return st
}

func (s *testSup) waitReady(t testing.TB, name string) AppState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, name); err != nil {
		t.Fatal(err)
	}
	return s.get(t, name)
}

// waitFor polls cond every few milliseconds until it holds or timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond) // poll interval, not a wait for an event
	}
}

// alive reports whether pid runs (a zombie is dead).
func alive(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.State != 'Z'
}

// zombieChildren lists this process's children in state Z.
func zombieChildren() []int {
	procs, _ := allProcs()
	var out []int
	for _, p := range procs {
		if p.PPID == os.Getpid() && p.State == 'Z' {
			out = append(out, p.PID)
		}
	}
	return out
}

// readPids reads the pid file written by the child's -pidfile.
func readPids(t testing.TB, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitPids waits until the pid file lists n pids.
func waitPids(t testing.TB, path string, n int) []int {
	t.Helper()
	var pids []int
	waitFor(t, 10*time.Second, fmt.Sprintf("%d pids in %s", n, path), func() bool {
		pids = readPids(t, path)
		return len(pids) >= n
	})
	return pids
}

func waitGone(t testing.TB, timeout time.Duration, pids ...int) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("pids %v to be gone", pids), func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}
