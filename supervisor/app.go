package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"
)

type opKind int

const (
	opStart   opKind = iota // run it (now, if in a backoff wait)
	opStop                  // stop it and keep it stopped
	opRestart               // stop it if running, then run it
	opReplace               // take a new spec (the app is stopped)
	opQuit                  // stop it and end the loop (removed or shutdown)
)

type appCmd struct {
	op    opKind
	spec  Spec
	hurry <-chan struct{} // closed: SIGKILL now instead of waiting kill_timeout
	reply chan error
}

// memSample reports an app's group over its max_memory.
type memSample struct {
	pid int
	rss uint64
}

// app is one declared app. Its lifecycle runs in one goroutine (loop) that
// alone starts and stops its processes; others send it commands. Its state
// is read under mu by anyone.
type app struct {
	s       *Supervisor
	name    string
	logPath string
	logw    io.WriteCloser
	logger  *slog.Logger
	cmds    chan appCmd
	quit    chan struct{} // closed when loop has returned
	memOver chan memSample

	mu        sync.Mutex
	spec      Spec // as declared, for Apply's comparison
	st        AppState
	startedAt time.Time
	changed   chan struct{} // closed and replaced on every state change
	prevTicks uint64        // cpu sampling: ticks of prevPID at prevAt
	prevPID   int
	prevAt    time.Time
	lastDelay time.Duration // the restart delay last chosen
	restartAt time.Time     // when the pending restart fires; zero when none is pending
	attempts  int           // process starts tried

	// Owned by loop.
	eff      Spec // spec with defaults
	readyRE  *regexp.Regexp
	p        *proc
	want     bool // should be running
	streak   int  // unstable exits in a row
	restartT *time.Timer
	uptimeT  *time.Timer
	depsC    <-chan struct{} // set while waiting for apps it comes after
}

func newApp(s *Supervisor, sp Spec, now time.Time) *app {
	a := &app{
		s:       s,
		name:    sp.Name,
		logPath: s.logPath(sp.Name),
		logger:  s.log.With("app", sp.Name),
		cmds:    make(chan appCmd),
		quit:    make(chan struct{}),
		memOver: make(chan memSample, 1),
		changed: make(chan struct{}),
	}
	a.logw = NewRotatingWriter(a.logPath, s.opts.LogMaxBytes, s.opts.LogFiles)
	a.st = AppState{Name: sp.Name, Status: StatusLaunching, LogFile: a.logPath, CreatedAt: now}
	a.setSpec(sp)
	return a
}

// setSpec takes a new spec; loop-owned fields are set before the loop runs
// or from within it.
func (a *app) setSpec(sp Spec) {
	a.eff = sp.withDefaults()
	a.readyRE = nil
	if sp.Ready.Log != "" {
		a.readyRE = regexp.MustCompile(sp.Ready.Log) // validated before
	}
	a.mu.Lock()
	a.spec = sp
	a.st.Command, a.st.Args, a.st.Cwd = sp.Command, slices.Clone(sp.Args), sp.Cwd
	a.st.After = slices.Clone(sp.After)
	a.st.Restart = RestartInfo{
		DelaySeconds:      a.eff.Restart.Delay.Seconds(),
		BackoffMaxSeconds: a.eff.Restart.BackoffMax.Seconds(),
		MinUptimeSeconds:  a.eff.Restart.MinUptime.Seconds(),
	}
	a.st.MaxMemoryBytes = sp.MaxMemory
	a.st.ReadyCheck = sp.Ready.String()
	a.st.StopSignal = SignalName(a.eff.StopSignal)
	a.st.KillTimeout = a.eff.KillTimeout.Seconds()
	a.st.EnvNames = slices.Sorted(maps.Keys(sp.Env))
	a.mu.Unlock()
}

// do sends a command to the loop and waits for its answer.
func (a *app) do(c appCmd) error {
	c.reply = make(chan error, 1)
	select {
	case a.cmds <- c:
	case <-a.quit:
		return fmt.Errorf("%w: %q (removed, or the supervisor shut down)", ErrUnknownApp, a.name)
	}
	return <-c.reply
}

func (a *app) loop() {
	defer close(a.quit)
	for {
		var doneC, readyC <-chan struct{}
		if a.p != nil {
			doneC = a.p.done
			if !a.ready() {
				readyC = a.p.ready
			}
		}
		select {
		case c := <-a.cmds:
			if a.handle(c) {
				return
			}
		case <-doneC:
			a.exited()
		case <-readyC:
			a.becameReady()
		case <-timerC(a.restartT):
			a.restartT = nil
			a.mu.Lock()
			a.restartAt = time.Time{}
			a.mu.Unlock()
			a.launch()
		case <-a.depsC:
			a.depsC = nil
			a.launch()
		case <-timerC(a.uptimeT):
			a.uptimeT = nil
			a.streak = 0 // a stable run forgives the crash loop
		case m := <-a.memOver:
			a.overMemory(m)
		}
	}
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// handle runs one command; it reports whether the loop must end.
func (a *app) handle(c appCmd) bool {
	var err error
	switch c.op {
	case opStart:
		if a.p == nil && a.depsC == nil {
			a.cancelWait()
			a.want, a.streak = true, 0
			err = a.launch()
		}
	case opStop:
		a.want = false
		a.cancelWait()
		a.stopProc(c.hurry, "stop requested")
		a.update(func(st *AppState) { st.Status = StatusStopped })
	case opRestart:
		a.cancelWait()
		if a.p != nil {
			a.stopProc(c.hurry, "restart requested")
			a.update(func(st *AppState) { st.Restarts++ })
		}
		a.want, a.streak = true, 0
		err = a.launch()
	case opReplace:
		a.setSpec(c.spec)
	case opQuit:
		a.want = false
		a.cancelWait()
		a.stopProc(c.hurry, "shutting down")
		a.update(func(st *AppState) { st.Status = StatusStopped })
		if err := a.logw.Close(); err != nil {
			a.logger.Warn("closing log", "err", err)
		}
		c.reply <- nil
		return true
	}
	c.reply <- err
	return false
}

// cancelWait drops a pending restart or a wait for dependencies.
func (a *app) cancelWait() {
	if a.restartT != nil {
		a.restartT.Stop()
		a.restartT = nil
	}
	a.mu.Lock()
	a.restartAt = time.Time{}
	a.mu.Unlock()
	a.depsC = nil
}

// launch starts a process now, or waits for the apps this one comes after.
func (a *app) launch() error {
	gen := a.s.readyGen() // taken before the check, so no change is missed
	if !a.s.depsReady(a.eff.After) {
		a.depsC = gen
		a.update(func(st *AppState) { st.Status, st.PID = StatusWaiting, 0 })
		return nil
	}
	a.mu.Lock()
	a.attempts++
	a.mu.Unlock()
	p, err := startProc(a.eff, a.logw, a.readyRE, a.logger)
	if err != nil {
		// Retrying cannot help until something changes on disk: wait the
		// longest delay rather than spin.
		a.streak++
		delay := a.eff.Restart.BackoffMax
		msg := fmt.Sprintf("cannot start: %v", err)
		a.event("%s; retrying in %v", msg, delay)
		a.update(func(st *AppState) {
			// Counted when scheduled, as restartAfter counts: a retry
			// of a start that failed is a restart too.
			st.Status, st.PID, st.LastError, st.RestartReason = StatusErrored, 0, msg, "cannot start"
			st.Restarts++
			st.UnstableRestarts++
		})
		a.schedule(delay)
		return fmt.Errorf("app %q: %w", a.name, err)
	}
	a.p = p
	a.uptimeT = time.NewTimer(a.eff.Restart.MinUptime)
	rec := procRecord{App: a.name, PID: p.pid, PGID: p.pid, StartTicks: p.startTicks,
		BootID: a.s.bootID, Supervisor: os.Getpid()}
	if err := writeRecord(a.s.opts.StateDir, rec); err != nil {
		a.logger.Warn("strays of this run could not be ended by a later one", "err", err)
	}
	a.mu.Lock()
	a.startedAt = p.started
	a.mu.Unlock()
	a.update(func(st *AppState) { st.Status, st.PID, st.Ready, st.User = StatusLaunching, p.pid, false, p.runsAs })
	a.event("started %s (pid %d)", a.eff.Command, p.pid)
	switch {
	case a.eff.Ready.TCP != "":
		go p.waitTCP(a.s.ctx, a.eff.Ready.TCP)
	case a.readyRE == nil:
		p.markReady()
	}
	return nil
}

// schedule launches again after delay.
func (a *app) schedule(delay time.Duration) {
	a.mu.Lock()
	a.lastDelay = delay
	if delay > 0 {
		a.restartAt = time.Now().Add(delay)
	}
	a.mu.Unlock()
	if delay <= 0 {
		a.launch()
		return
	}
	a.restartT = time.NewTimer(delay)
}

func (a *app) becameReady() {
	a.update(func(st *AppState) { st.Status, st.Ready = StatusOnline, true })
	a.event("ready")
}

// exited handles a process that ended on its own.
func (a *app) exited() {
	ex := a.p.exit
	a.endRun(ex)
	a.restartAfter(ex, fmt.Sprintf("%s after %v", ex, ex.Uptime.Round(time.Millisecond)), "exited")
}

// restartAfter schedules the next run after one that ended (on its own, or
// stopped for going over max_memory): the same delay, backoff and
// unstable counting whatever the reason, so an app that outgrows its limit
// at once is held back like one that crashes at once.
func (a *app) restartAfter(ex exitInfo, msg, reason string) {
	unstable := ex.Uptime < a.eff.Restart.MinUptime
	if unstable {
		a.streak++
	} else {
		a.streak = 0
	}
	delay := a.restartDelay()
	errored := unstable && delay >= a.eff.Restart.BackoffMax
	if errored {
		msg += fmt.Sprintf("; crash loop, retrying every %v", delay)
	}
	a.update(func(st *AppState) {
		st.Restarts++
		if unstable {
			st.UnstableRestarts++
		}
		st.Status = StatusLaunching
		if errored {
			st.Status = StatusErrored
		}
		st.LastError = msg
		st.RestartReason = reason
	})
	a.event("%s; restarting in %v", msg, delay)
	a.schedule(delay)
}

// restartDelay is Delay after a stable run; after unstable ones it doubles
// from Delay (at least backoffBase) up to BackoffMax.
func (a *app) restartDelay() time.Duration {
	r := a.eff.Restart
	if a.streak == 0 {
		return r.Delay
	}
	d := max(r.Delay, backoffBase)
	for i := 1; i < a.streak && d < r.BackoffMax; i++ {
		d *= 2
	}
	return min(d, r.BackoffMax)
}

// endRun records the end of the current process.
func (a *app) endRun(ex exitInfo) {
	a.p = nil
	if a.uptimeT != nil {
		a.uptimeT.Stop()
		a.uptimeT = nil
	}
	if err := os.Remove(recordPath(a.s.opts.StateDir, a.name)); err != nil && !os.IsNotExist(err) {
		a.logger.Warn("removing process record", "err", err)
	}
	a.mu.Lock()
	a.startedAt = time.Time{}
	a.mu.Unlock()
	a.update(func(st *AppState) {
		st.PID, st.Ready, st.CPUPercent, st.MemoryBytes = 0, false, 0, 0
		st.LastExitCode, st.LastSignal, st.LastExitAt = ex.Code, ex.Signal, ex.At
		// An earlier run's error must not sit beside this newer exit;
		// restartAfter sets this run's own when it restarts the app.
		st.LastError = ""
	})
}

// stopProc stops the running process, if any: stop_signal to its group,
// then SIGKILL after kill_timeout (or at once when hurry closes).
func (a *app) stopProc(hurry <-chan struct{}, why string) {
	p := a.p
	if p == nil {
		return
	}
	a.update(func(st *AppState) { st.Status = StatusStopping })
	sig := a.eff.StopSignal
	a.event("%s: sending %s to the process group", why, SignalName(sig))
	if err := p.signalGroup(sig); err != nil {
		a.logger.Warn("signalling process group", "err", err)
	}
	t := time.NewTimer(a.eff.KillTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		a.event("still running %v after %s: sending SIGKILL", a.eff.KillTimeout, SignalName(sig))
		_ = p.signalGroup(syscall.SIGKILL)
		<-p.done
	case <-hurry:
		_ = p.signalGroup(syscall.SIGKILL)
		<-p.done
	}
	a.event("stopped: %s", p.exit)
	a.endRun(p.exit)
}

func (a *app) overMemory(m memSample) {
	if a.p == nil || a.p.pid != m.pid {
		return // an earlier run's sample
	}
	msg := fmt.Sprintf("max_memory exceeded: %d > %d bytes", m.rss, a.eff.MaxMemory)
	p := a.p
	a.stopProc(nil, "max_memory exceeded")
	a.restartAfter(p.exit, msg, "max_memory")
}

// ready reports the Ready flag.
func (a *app) ready() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Ready
}

// update changes the state, wakes waiters and tells subscribers.
func (a *app) update(f func(st *AppState)) {
	a.mu.Lock()
	wasReady := a.st.Ready
	f(&a.st)
	nowReady := a.st.Ready
	snap := a.snapshotLocked(time.Now())
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	if wasReady != nowReady {
		a.s.bumpReady()
	}
	a.s.publish(snap)
}

func (a *app) snapshot() AppState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.snapshotLocked(time.Now())
}

func (a *app) snapshotLocked(now time.Time) AppState {
	st := a.st
	st.Args = slices.Clone(st.Args)
	st.After = slices.Clone(st.After)
	if st.LastExitCode != nil {
		c := *st.LastExitCode
		st.LastExitCode = &c
	}
	if !a.startedAt.IsZero() {
		st.UptimeSeconds = now.Sub(a.startedAt).Seconds()
	}
	st.EnvNames = slices.Clone(st.EnvNames)
	st.RestartDelay = a.lastDelay.Seconds()
	if !a.restartAt.IsZero() {
		in := max(a.restartAt.Sub(now), 0).Seconds()
		st.NextRestartIn = &in
	}
	return st
}

// usage takes a /proc sample of the app's process group.
func (a *app) usage(pgUsage map[int]groupUsage, now time.Time) {
	a.mu.Lock()
	pid := a.st.PID
	u := pgUsage[pid]
	var cpu float64
	if pid != 0 && pid == a.prevPID && !a.prevAt.IsZero() && u.ticks >= a.prevTicks {
		if dt := now.Sub(a.prevAt).Seconds(); dt > 0 {
			cpu = float64(u.ticks-a.prevTicks) / clockTicks / dt * 100
		}
	}
	a.prevPID, a.prevTicks, a.prevAt = pid, u.ticks, now
	if pid == 0 {
		u.rss = 0
	}
	changed := cpu != a.st.CPUPercent || u.rss != a.st.MemoryBytes
	limit := a.spec.MaxMemory
	a.mu.Unlock()
	if changed {
		a.update(func(st *AppState) {
			if st.PID == pid {
				st.CPUPercent, st.MemoryBytes = cpu, u.rss
			}
		})
	}
	if pid != 0 && limit > 0 && u.rss > limit {
		select {
		case a.memOver <- memSample{pid: pid, rss: u.rss}:
		default:
		}
	}
}

// event writes a supervisor line into the app's log and to gatewayd's log.
func (a *app) event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.logger.Info(msg)
	line := time.Now().AppendFormat(nil, tsLayout)
	line = append(line, " [gatewayd] "...)
	line = append(line, msg...)
	line = append(line, '\n')
	if _, err := a.logw.Write(line); err != nil && !errors.Is(err, os.ErrClosed) {
		a.logger.Warn("writing app log", "err", err)
	}
}
