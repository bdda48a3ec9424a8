package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRestartAfterCrash(t *testing.T) {
	s := newSup(t, nil)
	sp := child("crashy", "-crash-after", "150ms", "-code", "3")
	s.start(t, sp)
	first := s.waitState(t, "crashy", "a pid", 5*time.Second, func(st AppState) bool { return st.PID != 0 })
	st := s.waitState(t, "crashy", "restarted", 5*time.Second, func(st AppState) bool {
		return st.Restarts >= 1 && st.PID != 0 && st.PID != first.PID
	})
	if st.LastExitCode == nil || *st.LastExitCode != 3 || st.LastSignal != "" {
		t.Errorf("last exit = %v %q, want code 3", st.LastExitCode, st.LastSignal)
	}
	if st.UnstableRestarts != 0 {
		t.Errorf("unstable restarts = %d after a run longer than min_uptime", st.UnstableRestarts)
	}
	if !strings.Contains(st.LastError, "exited with code 3") {
		t.Errorf("last_error = %q", st.LastError)
	}
	if alive(first.PID) {
		t.Errorf("first process %d still alive", first.PID)
	}
	if !alive(st.PID) {
		t.Errorf("new process %d not running", st.PID)
	}
	log := readFile(t, s.logPath("crashy"))
	if !strings.Contains(log, "[gatewayd] exited with code 3") {
		t.Errorf("log lacks the exit event:\n%s", log)
	}
}

func TestBackoffGrowsThenErroredThenRecovers(t *testing.T) {
	s := newSup(t, nil)
	crashFile := filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(crashFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sp := child("loop", "-crash-if-exists", crashFile, "-code", "2")
	sp.Restart = RestartPolicy{Delay: 20 * time.Millisecond, BackoffMax: 320 * time.Millisecond, MinUptime: 300 * time.Millisecond}
	events, stop := s.Subscribe()
	defer stop()
	s.start(t, sp)

	// Time each new process from the Subscribe stream.
	var spawns []time.Time
	var sawErrored bool
	lastPID := 0
	deadline := time.After(15 * time.Second)
	for len(spawns) < 7 {
		select {
		case st := <-events:
			if st.PID != 0 && st.PID != lastPID {
				lastPID = st.PID
				spawns = append(spawns, time.Now())
			}
			if st.Status == StatusErrored {
				sawErrored = true
			}
		case <-deadline:
			t.Fatalf("only %d starts in 15s", len(spawns))
		}
	}
	// Each gap is the run (a few ms) plus the delay, which doubles from
	// Delay up to BackoffMax.
	want := []time.Duration{20, 40, 80, 160, 320, 320}
	for i, w := range want {
		gap := spawns[i+1].Sub(spawns[i])
		if gap < w*time.Millisecond {
			t.Errorf("gap %d = %v, want at least %v", i+1, gap, w*time.Millisecond)
		}
	}
	if !sawErrored {
		t.Error("never showed errored in the crash loop")
	}
	st := s.get(t, "loop")
	if st.UnstableRestarts < 6 || !strings.Contains(st.LastError, "crash loop") {
		t.Errorf("unstable_restarts=%d last_error=%q", st.UnstableRestarts, st.LastError)
	}

	// Recovery: the next run stays up, goes online and, after min_uptime,
	// a crash is stable again and restarts after the base delay.
	if err := os.Remove(crashFile); err != nil {
		t.Fatal(err)
	}
	// (A run that checked the file just before it went may still crash.)
	up := s.waitState(t, "loop", "online past min_uptime after the fix", 10*time.Second, func(st AppState) bool {
		return st.Status == StatusOnline && st.UptimeSeconds > 0.4
	})
	unstable := up.UnstableRestarts
	if err := syscall.Kill(up.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = s.waitState(t, "loop", "restart after a stable run", 5*time.Second, func(st AppState) bool {
		return st.PID != 0 && st.PID != up.PID
	})
	if st.UnstableRestarts != unstable {
		t.Errorf("unstable_restarts grew from %d to %d after a stable run", unstable, st.UnstableRestarts)
	}
	if st.LastSignal != "SIGKILL" || st.LastExitCode != nil {
		t.Errorf("last exit = %v %q, want SIGKILL", st.LastExitCode, st.LastSignal)
	}
	a := s.lookupApp("loop")
	a.mu.Lock()
	delay := a.lastDelay
	a.mu.Unlock()
	if delay != 20*time.Millisecond {
		t.Errorf("delay after a stable run = %v, want the base 20ms (backoff reset)", delay)
	}
}

func TestMissingExecutableErroredWithoutBusyLoop(t *testing.T) {
	s := newSup(t, nil)
	sp := child("ghost")
	sp.Command = filepath.Join(t.TempDir(), "no-such-program")
	sp.Restart.BackoffMax = 100 * time.Millisecond
	s.start(t, sp) // an app that cannot start does not fail Start
	st := s.waitState(t, "ghost", "errored", 5*time.Second, func(st AppState) bool { return st.Status == StatusErrored })
	if !strings.Contains(st.LastError, "no such file or directory") || !strings.Contains(st.LastError, "no-such-program") {
		t.Errorf("last_error = %q, want the reason", st.LastError)
	}
	a := s.lookupApp("ghost")
	attempts := func() int { a.mu.Lock(); defer a.mu.Unlock(); return a.attempts }
	t0, n0 := time.Now(), attempts()
	waitFor(t, 5*time.Second, "two more attempts", func() bool { return attempts() >= n0+2 })
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Errorf("two retries took %v; want them backoff_max (100ms) apart", d)
	}
	if err := s.StartApp("ghost"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("StartApp = %v, want the reason", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.WaitReady(ctx, "ghost"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("WaitReady = %v, want an error carrying last_error", err)
	}

	// Fixing the spec recovers it.
	sp.Command = childBin
	if err := s.Apply([]Spec{sp}); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, "ghost")
}

func TestReadinessOrder(t *testing.T) {
	// No cpu/memory samples: they would crowd the events read below.
	s := newSup(t, func(o *Options) { o.SampleInterval = time.Hour })
	addr := freeAddr(t)
	broker := child("broker", "-listen", addr, "-listen-after", "500ms")
	broker.Ready.TCP = addr
	// hass exits 7 at once if the broker does not accept yet.
	hass := child("hass", "-require-tcp", addr)
	hass.After = []string{"broker"}
	logReady := child("logready", "-ready-line", "hello, ready", "-ready-after", "200ms")
	logReady.Ready.Log = `^hello, ready$`
	events, stop := s.Subscribe()
	defer stop()
	s.start(t, hass, broker, logReady) // declared before what it comes after on purpose

	if st := s.get(t, "hass"); st.Status != StatusWaiting || st.PID != 0 {
		t.Errorf("hass right after Start: %s pid %d, want waiting, no pid", st.Status, st.PID)
	}
	if st := s.get(t, "broker"); st.Status != StatusLaunching || st.Ready {
		t.Errorf("broker right after Start: %s ready=%v, want launching", st.Status, st.Ready)
	}
	if st := s.get(t, "logready"); st.Status != StatusLaunching {
		t.Errorf("logready right after Start: %s, want launching", st.Status)
	}
	st := s.waitReady(t, "hass")
	if st.Restarts != 0 || st.LastExitCode != nil {
		t.Errorf("hass restarts=%d last exit=%v: it started before the broker accepted", st.Restarts, st.LastExitCode)
	}
	brokerReadyAt, hassPIDAt := -1, -1
	for i := 0; len(events) > 0; i++ {
		e := <-events
		if e.Name == "broker" && e.Ready && brokerReadyAt < 0 {
			brokerReadyAt = i
		}
		if e.Name == "hass" && e.PID != 0 && hassPIDAt < 0 {
			hassPIDAt = i
		}
	}
	if brokerReadyAt < 0 || hassPIDAt < brokerReadyAt {
		t.Errorf("event order: broker ready at %d, hass started at %d", brokerReadyAt, hassPIDAt)
	}
	s.waitReady(t, "logready")
	if log := readFile(t, s.logPath("logready")); !strings.Contains(log, " hello, ready\n") {
		t.Errorf("log lacks the ready line:\n%s", log)
	}
}

func TestStopKillsGrandchildren(t *testing.T) {
	s := newSup(t, nil)
	dir := t.TempDir()
	pidsA, pidsB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	s.start(t,
		child("family", "-grandchildren", "3", "-pidfile", pidsA),
		child("crasher", "-grandchildren", "2", "-pidfile", pidsB, "-crash-after", "300ms"))

	st := s.waitReady(t, "family")
	grand := waitPids(t, pidsA, 3)
	for _, p := range grand {
		if !alive(p) {
			t.Fatalf("grandchild %d not running", p)
		}
	}
	if err := s.StopApp("family"); err != nil {
		t.Fatal(err)
	}
	st2 := s.get(t, "family")
	if st2.Status != StatusStopped || st2.PID != 0 || st2.LastSignal != "SIGTERM" {
		t.Errorf("after StopApp: %s pid %d signal %q", st2.Status, st2.PID, st2.LastSignal)
	}
	waitGone(t, 2*time.Second, append(grand, st.PID)...)

	// A leader that crashes takes its group with it.
	first := waitPids(t, pidsB, 2)
	s.waitState(t, "crasher", "restarted", 5*time.Second, func(st AppState) bool { return st.Restarts >= 1 })
	waitGone(t, 2*time.Second, first...)
}

func TestKillTimeoutEscalatesToSIGKILL(t *testing.T) {
	s := newSup(t, nil)
	pids := filepath.Join(t.TempDir(), "pids")
	sp := child("stubborn", "-ignore-term", "-grandchildren", "1", "-pidfile", pids)
	sp.KillTimeout = 300 * time.Millisecond
	s.start(t, sp)
	st := s.waitReady(t, "stubborn")
	grand := waitPids(t, pids, 1)
	t0 := time.Now()
	if err := s.StopApp("stubborn"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Errorf("stop of a SIGTERM-ignoring app took %v, want at least kill_timeout 300ms", d)
	}
	if got := s.get(t, "stubborn").LastSignal; got != "SIGKILL" {
		t.Errorf("last signal = %q, want SIGKILL", got)
	}
	waitGone(t, 2*time.Second, append(grand, st.PID)...)
	if log := readFile(t, s.logPath("stubborn")); !strings.Contains(log, "sending SIGKILL") {
		t.Errorf("log lacks the escalation:\n%s", log)
	}
}

func TestMaxMemoryRestarts(t *testing.T) {
	s := newSup(t, nil)
	sp := child("hog", "-grow-mb", "200", "-grow-every", "3ms")
	sp.MaxMemory = 40 << 20
	s.start(t, sp)
	first := s.waitState(t, "hog", "memory sampled", 10*time.Second, func(st AppState) bool { return st.MemoryBytes > 10<<20 })
	st := s.waitState(t, "hog", "a max_memory restart", 10*time.Second, func(st AppState) bool {
		return st.Restarts >= 1 && strings.HasPrefix(st.LastError, "max_memory exceeded")
	})
	var n, m uint64
	if _, err := fmt.Sscanf(st.LastError, "max_memory exceeded: %d > %d", &n, &m); err != nil || n <= m || m != 40<<20 {
		t.Errorf("last_error = %q (parsed %d > %d, %v)", st.LastError, n, m, err)
	}
	waitGone(t, 2*time.Second, first.PID)
}

func TestLogCaptureAndRotation(t *testing.T) {
	s := newSup(t, func(o *Options) { o.LogMaxBytes = 4096; o.LogFiles = 3 })
	s.start(t, child("chatty", "-print-lines", "500", "-line-size", "100"))
	logPath, err := s.LogFile("chatty")
	if err != nil || logPath != filepath.Join(s.logDir, "chatty.log") {
		t.Fatalf("LogFile = %q, %v", logPath, err)
	}
	files := []string{logPath + ".2", logPath + ".1", logPath}
	waitFor(t, 10*time.Second, "the last line in the log", func() bool {
		for _, f := range files {
			if strings.Contains(readFile(t, f), "0000000499 ") {
				return true
			}
		}
		return false
	})
	if _, err := os.Stat(logPath + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists (or %v); want 3 files at most", logPath, err)
	}
	var nums []int
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 4096 {
			t.Errorf("%s is %d bytes, over 4096", f, fi.Size())
		}
		for _, line := range strings.Split(strings.TrimSuffix(readFile(t, f), "\n"), "\n") {
			ts, rest, _ := strings.Cut(line, " ")
			if _, err := time.Parse(tsLayout, ts); err != nil || len(ts) < len("2006-01-02T15:04:05.000Z") {
				t.Fatalf("%s: line without an RFC 3339 ms timestamp: %q", f, line)
			}
			var n int
			if _, err := fmt.Sscanf(rest, "%d ", &n); err == nil && len(rest) > 10 && rest[10] == ' ' {
				nums = append(nums, n)
			}
		}
	}
	// The kept window is whole: consecutive lines, stdout (even) and
	// stderr (odd) both, ending with the last.
	if len(nums) < 50 || nums[len(nums)-1] != 499 {
		t.Fatalf("kept %d lines ending %v", len(nums), nums[max(0, len(nums)-3):])
	}
	for i := 1; i < len(nums); i++ {
		if nums[i] != nums[i-1]+1 {
			t.Fatalf("line %d follows line %d in the kept logs", nums[i], nums[i-1])
		}
	}
}

func TestStraysOfEarlierRunEnded(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "run")
	boot := bootID()
	startGroup := func(args ...string) *exec.Cmd {
		cmd := exec.Command(childBin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		})
		return cmd
	}
	record := func(app string, pid int, ticksDelta uint64, bootID string) {
		st, err := readProcStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		rec := procRecord{App: app, PID: pid, PGID: pid, StartTicks: st.StartTicks + ticksDelta, BootID: bootID}
		if err := writeRecord(stateDir, rec); err != nil {
			t.Fatal(err)
		}
	}

	// A whole app of the earlier run: leader and grandchildren.
	whole := startGroup("-grandchildren", "2", "-pidfile", filepath.Join(dir, "whole"))
	wholePids := append(waitPids(t, filepath.Join(dir, "whole"), 2), whole.Process.Pid)
	record("whole", whole.Process.Pid, 0, boot)
	// An app whose leader died (parent-death signal) but whose grandchild lives on.
	orphaned := startGroup("-grandchildren", "1", "-pidfile", filepath.Join(dir, "orphaned"))
	orphans := waitPids(t, filepath.Join(dir, "orphaned"), 1)
	record("orphaned", orphaned.Process.Pid, 0, boot)
	orphaned.Process.Kill()
	orphaned.Wait()
	// Records that do not name their process any more: not to be touched.
	reused := startGroup()
	record("reused", reused.Process.Pid, 1, boot)
	otherBoot := startGroup()
	record("otherboot", otherBoot.Process.Pid, 0, "not-this-boot")

	s := newSup(t, func(o *Options) { o.StateDir = stateDir })
	s.start(t, child("fresh"))
	waitGone(t, time.Second, append(wholePids, orphans...)...) // Start waited; this only re-checks
	whole.Wait()                                               // the killed leader is this test's child
	if !alive(reused.Process.Pid) || !alive(otherBoot.Process.Pid) {
		t.Error("a process whose record no longer names it was killed")
	}
	recs, _ := filepath.Glob(filepath.Join(stateDir, "*"+recordSuffix))
	if len(recs) != 1 || filepath.Base(recs[0]) != "fresh"+recordSuffix {
		t.Errorf("records after Start: %v, want only fresh's", recs)
	}
}

func TestNoZombiesInCrashLoop(t *testing.T) {
	s := newSup(t, nil)
	sp := child("flaky", "-grandchildren", "2", "-crash-after", "20ms")
	sp.Restart = RestartPolicy{Delay: 5 * time.Millisecond, MinUptime: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	s.start(t, sp)
	s.waitState(t, "flaky", "five restarts", 10*time.Second, func(st AppState) bool { return st.Restarts >= 5 })
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombie children while restarting: %v", z)
	}
	// newSup's cleanup checks again after Shutdown.
}

func TestShutdownStopsDependentsFirst(t *testing.T) {
	s := newSup(t, nil)
	b, c := child("b"), child("c")
	b.After, c.After = []string{"a"}, []string{"b"}
	s.start(t, c, b, child("a"), child("solo"))
	for _, n := range []string{"a", "b", "c", "solo"} {
		s.waitReady(t, n)
	}
	events, _ := s.Subscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopping, stopped := map[string]int{}, map[string]int{}
	i := 0
	for e := range events { // closed by Shutdown
		if _, seen := stopping[e.Name]; e.Status == StatusStopping && !seen {
			stopping[e.Name] = i
		}
		if _, seen := stopped[e.Name]; e.Status == StatusStopped && !seen {
			stopped[e.Name] = i
		}
		i++
	}
	if len(stopped) != 4 {
		t.Fatalf("stopped events for %v, want 4 apps", stopped)
	}
	if stopped["c"] > stopping["b"] || stopped["b"] > stopping["a"] {
		t.Errorf("stop order: stopping %v stopped %v; want c stopped before b stops, b before a", stopping, stopped)
	}
	for _, st := range s.List() {
		if st.Status != StatusStopped || st.PID != 0 {
			t.Errorf("%s after Shutdown: %s pid %d", st.Name, st.Status, st.PID)
		}
	}
	if err := s.StartApp("a"); err == nil {
		t.Error("StartApp after Shutdown succeeded")
	}
}

func TestApply(t *testing.T) {
	s := newSup(t, nil)
	b := child("b")
	b.After = []string{"a"}
	s.start(t, child("a"), b, child("c"))
	before := map[string]AppState{}
	for _, n := range []string{"a", "b", "c"} {
		before[n] = s.waitReady(t, n)
	}

	// An invalid list changes nothing.
	bad := child("b")
	bad.After = []string{"b2"}
	b2 := child("b2")
	b2.After = []string{"b"}
	err := s.Apply([]Spec{child("a"), bad, b2})
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "circle") {
		t.Fatalf("Apply with a cycle = %v", err)
	}
	for n, st := range before {
		if got := s.get(t, n); got.PID != st.PID {
			t.Errorf("%s restarted by an invalid Apply", n)
		}
	}

	a2 := child("a", "-print-env", "FOO")
	a2.Env = map[string]string{"FOO": "bar"}
	a2.Cwd = t.TempDir()
	if err := s.Apply([]Spec{child("d"), a2, b}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range s.List() {
		names = append(names, st.Name)
	}
	if !slices.Equal(names, []string{"d", "a", "b"}) {
		t.Errorf("List order %v, want the new declaration order d a b", names)
	}
	if st := s.waitReady(t, "a"); st.PID == before["a"].PID || st.Restarts != 0 && st.Restarts != 1 {
		t.Errorf("changed app a: pid %d (was %d)", st.PID, before["a"].PID)
	}
	if st := s.get(t, "b"); st.PID != before["b"].PID || st.Restarts != 0 {
		t.Errorf("unchanged app b was touched: pid %d (was %d), restarts %d", st.PID, before["b"].PID, st.Restarts)
	}
	if _, err := s.Get("c"); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("Get(removed c) = %v, want ErrUnknownApp", err)
	}
	waitGone(t, 2*time.Second, before["c"].PID)
	s.waitReady(t, "d")
	waitFor(t, 5*time.Second, "a's env line in its log", func() bool {
		return strings.Contains(readFile(t, s.logPath("a")), "FOO=bar cwd="+a2.Cwd)
	})
}

func TestControl(t *testing.T) {
	s := newSup(t, nil)
	b := child("b")
	b.After = []string{"a"}
	s.start(t, child("a"), b)
	a1 := s.waitReady(t, "a")
	s.waitReady(t, "b")

	if err := s.StopApp("a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, "a"); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("WaitReady(stopped) = %v", err)
	}
	if err := s.StartApp("a"); err != nil {
		t.Fatal(err)
	}
	a2 := s.waitReady(t, "a")
	if a2.PID == a1.PID || !alive(a2.PID) {
		t.Errorf("StartApp: pid %d (was %d)", a2.PID, a1.PID)
	}
	if err := s.RestartApp("a"); err != nil {
		t.Fatal(err)
	}
	// RestartApp returns with the new process running, so this waits for it.
	a3 := s.waitReady(t, "a")
	if a3.PID == a2.PID || a3.Restarts != 1 {
		t.Errorf("RestartApp: pid %d (was %d), restarts %d", a3.PID, a2.PID, a3.Restarts)
	}
	if err := s.StopApp(AllApps); err != nil {
		t.Fatal(err)
	}
	for _, st := range s.List() {
		if st.Status != StatusStopped {
			t.Errorf("%s after stop all: %s", st.Name, st.Status)
		}
	}
	if err := s.RestartApp(AllApps); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, "a")
	s.waitReady(t, "b")
	for _, err := range []error{s.StartApp("nope"), s.StopApp("nope"), s.RestartApp("nope"),
		s.WaitReady(ctx, "nope")} {
		if !errors.Is(err, ErrUnknownApp) {
			t.Errorf("unknown app: %v, want ErrUnknownApp", err)
		}
	}
	if _, err := s.LogFile("nope"); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("LogFile(nope) = %v", err)
	}
	st := s.get(t, "a")
	if st.Command != childBin || st.LogFile != s.logPath("a") || st.CreatedAt.IsZero() || st.UptimeSeconds <= 0 {
		t.Errorf("state fields: %+v", st)
	}
}

func TestStartValidates(t *testing.T) {
	cyc1, cyc2 := child("x"), child("y")
	cyc1.After, cyc2.After = []string{"y"}, []string{"x"}
	both := child("both")
	both.Ready = ReadyCheck{TCP: "127.0.0.1:1", Log: "x"}
	badRE := child("badre")
	badRE.Ready.Log = "("
	unknown := child("u")
	unknown.After = []string{"ghost"}
	noCmd := child("nocmd")
	noCmd.Command = ""
	noHost := child("nohost")
	noHost.Ready.TCP = ":1883"
	stopSig := child("stopsig")
	stopSig.StopSignal = syscall.SIGSTOP
	cases := []struct {
		specs []Spec
		want  []string
	}{
		{[]Spec{child("a"), child("a")}, []string{`app "a" (apps[1]): name: "a" is already the name of another app (apps[0])`}},
		{[]Spec{child("all")}, []string{`"all" is reserved`}},
		{[]Spec{child("a/b")}, []string{`app "a/b"`, "letters, digits"}},
		{[]Spec{cyc1, cyc2}, []string{"circle: x -> y -> x"}},
		{[]Spec{both, badRE}, []string{`app "both" (apps[0]): ready: give tcp or log`, `app "badre" (apps[1]): ready.log`}},
		{[]Spec{unknown, noCmd}, []string{`names "ghost", which is not an app`, `app "nocmd" (apps[1]): command: every app needs a command`}},
		{[]Spec{noHost, stopSig}, []string{`ready.tcp: ":1883" has no host`, `stop_signal: SIGSTOP cannot stop an app`}},
	}
	for _, c := range cases {
		s := newSup(t, nil)
		err := s.Start(context.Background(), c.specs)
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("Start(%v) = %v, want ErrInvalidSpec", c.specs, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
		if len(s.List()) != 0 {
			t.Errorf("apps exist after a failed Start")
		}
	}
}

func TestCPUAndMemorySampled(t *testing.T) {
	s := newSup(t, nil)
	s.start(t, child("busy", "-spin"), child("idle"))
	s.waitState(t, "busy", "cpu_percent above 5", 10*time.Second, func(st AppState) bool {
		return st.CPUPercent > 5 && st.MemoryBytes > 0
	})
	st := s.waitState(t, "idle", "memory sampled", 10*time.Second, func(st AppState) bool { return st.MemoryBytes > 0 })
	if st.CPUPercent > 50 {
		t.Errorf("idle app at %.1f%% cpu", st.CPUPercent)
	}
}

func TestShutdownLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	s, err := New(Options{LogDir: filepath.Join(dir, "log"), StateDir: filepath.Join(dir, "run"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SampleInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	never := child("never") // its ready check keeps dialling until the end
	never.Ready.TCP = freeAddr(t)
	quiet := child("quiet")
	quiet.Ready.Log = "never printed"
	after := child("after")
	after.After = []string{"never"}
	if err := s.Start(context.Background(), []Spec{never, quiet, after, child("plain")}); err != nil {
		t.Fatal(err)
	}
	ch, _ := s.Subscribe()
	if err := s.WaitReady(context.Background(), "plain"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range ch { // closed by Shutdown
	}
	waitFor(t, 5*time.Second, fmt.Sprintf("goroutines back to %d", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

// A max_memory restart is held back like a crash: counted as unstable when
// the run was short, with the backoff, and shown as errored in a loop.
func TestMaxMemoryRestartsFollowThePolicy(t *testing.T) {
	s := newSup(t, nil)
	sp := child("hog", "-grow-mb", "200", "-grow-every", "3ms")
	sp.MaxMemory = 40 << 20
	sp.Restart = RestartPolicy{Delay: 0, BackoffMax: 400 * time.Millisecond, MinUptime: time.Minute}
	s.start(t, sp)
	st := s.waitState(t, "hog", "a max_memory crash loop", 20*time.Second, func(st AppState) bool {
		return st.Status == StatusErrored && st.UnstableRestarts >= 2
	})
	if st.RestartReason != "max_memory" || !strings.Contains(st.LastError, "crash loop") {
		t.Errorf("restart reason %q, last error %q", st.RestartReason, st.LastError)
	}
}
