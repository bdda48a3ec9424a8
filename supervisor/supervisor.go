// Package supervisor keeps the box's apps (the broker, Home Assistant, ...)
// running, in the manner of PM2, for an appliance nobody watches: it
// restarts what exits with a backoff that never gives up, starts an app only
// once the apps it comes after are ready, runs each app in its own process
// group so stopping it leaves no descendant or zombie behind, restarts an
// app that outgrows its memory limit, and writes each app's output to a
// small rotated log. Apps die with the supervisor (parent-death signal), and
// a new supervisor ends whatever an earlier one left (recorded pids).
//
// It is Linux-only: it reads /proc and relies on Linux process semantics.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Options says where the supervisor keeps its files.
type Options struct {
	LogDir         string        // <root>/var/log/gateway: <app>.log, rotated
	LogMaxBytes    int64         // default 1 MiB
	LogFiles       int           // default 3 (app.log, app.log.1, app.log.2)
	StateDir       string        // <root>/run/gateway: where running pids are recorded to end strays later
	Logger         *slog.Logger  // default slog.Default()
	SampleInterval time.Duration // cpu and memory sampling period; default 1s
}

// ErrUnknownApp is returned for a name no declared app has.
var ErrUnknownApp = errors.New("unknown app")

// AllApps is the name that means every app in StartApp, StopApp and RestartApp.
const AllApps = reservedName

// Supervisor runs a set of apps. Its methods are safe for concurrent use.
type Supervisor struct {
	opts   Options
	log    *slog.Logger
	bootID string

	opMu sync.Mutex // serialises Start, Apply and Shutdown

	mu      sync.Mutex
	apps    map[string]*app
	order   []string // declaration order
	started bool
	closed  bool

	ctx    context.Context // lifetime of the apps' loops and the sampler
	cancel context.CancelFunc
	wg     sync.WaitGroup

	readyMu  sync.Mutex
	readyCh  chan struct{} // closed and replaced when any app's readiness changes
	subMu    sync.Mutex
	subs     map[chan AppState]struct{}
	subsDone bool
}

// New checks the options; nothing runs until Start.
func New(opts Options) (*Supervisor, error) {
	if opts.LogDir == "" {
		return nil, errors.New("supervisor: Options.LogDir is empty")
	}
	if opts.StateDir == "" {
		return nil, errors.New("supervisor: Options.StateDir is empty")
	}
	if opts.LogMaxBytes <= 0 {
		opts.LogMaxBytes = DefaultLogMaxBytes
	}
	if opts.LogFiles <= 0 {
		opts.LogFiles = DefaultLogFiles
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Supervisor{
		opts:    opts,
		log:     opts.Logger,
		bootID:  bootID(),
		apps:    map[string]*app{},
		readyCh: make(chan struct{}),
		subs:    map[chan AppState]struct{}{},
	}, nil
}

// Start validates specs (names unique, After known, no cycles), ends the
// strays of an earlier run recorded in StateDir, and starts the apps in
// dependency order. It returns without waiting for readiness (see
// WaitReady). ctx bounds only this start-up work; the apps run until
// Shutdown. An app that cannot start does not fail Start: it shows errored
// and is retried.
func (s *Supervisor) Start(ctx context.Context, specs []Spec) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if started {
		return errors.New("supervisor: already started")
	}
	order, err := checkedOrder(specs)
	if err != nil {
		return err
	}
	for _, dir := range []string{s.opts.StateDir, s.opts.LogDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
	}
	if err := endStrays(ctx, s.opts.StateDir, s.bootID, s.log); err != nil {
		return fmt.Errorf("supervisor: ending strays of an earlier run: %w", err)
	}

	s.ctx, s.cancel = context.WithCancel(context.Background())
	now := time.Now()
	s.mu.Lock()
	for _, sp := range specs {
		s.apps[sp.Name] = newApp(s, sp, now)
		s.order = append(s.order, sp.Name)
	}
	s.started = true
	apps := s.appsLocked(order)
	s.mu.Unlock()

	s.wg.Add(1)
	go s.sampler()
	for _, a := range apps {
		s.runLoop(a)
	}
	for _, a := range apps {
		if err := a.do(appCmd{op: opStart}); err != nil {
			s.log.Warn("app did not start", "app", a.name, "err", err)
		}
	}
	return nil
}

func (s *Supervisor) runLoop(a *app) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		a.loop()
	}()
}

// Apply moves to a new app list (gateway.yaml re-read on SIGHUP): apps whose
// spec changed restart, unchanged ones are left alone, removed ones stop and
// new ones start. An invalid list changes nothing. Stops happen dependents
// first; starts in dependency order. An app stopped by hand stays stopped.
func (s *Supervisor) Apply(specs []Spec) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	order, err := checkedOrder(specs)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		return errors.New("supervisor: not running")
	}
	oldSpecs := make([]Spec, 0, len(s.order))
	for _, n := range s.order {
		a := s.apps[n]
		a.mu.Lock()
		oldSpecs = append(oldSpecs, a.spec)
		a.mu.Unlock()
	}
	s.mu.Unlock()

	next := make(map[string]Spec, len(specs))
	for _, sp := range specs {
		next[sp.Name] = sp
	}
	oldOrder, _ := topoOrder(oldSpecs)
	changed := map[string]bool{} // name -> was it wanted running
	var errs []error
	// Stop, dependents first: removed apps for good, changed ones for now.
	for _, name := range slices.Backward(oldOrder) {
		a := s.lookupApp(name)
		sp, kept := next[name]
		switch {
		case !kept:
			if err := a.do(appCmd{op: opQuit}); err != nil {
				errs = append(errs, err)
			}
			s.mu.Lock()
			delete(s.apps, name)
			s.mu.Unlock()
			s.log.Info("app removed from the app list", "app", name)
		case !a.specCopy().equal(sp):
			changed[name] = a.snapshot().Status != StatusStopped
			if err := a.do(appCmd{op: opStop}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.mu.Lock()
	s.order = s.order[:0]
	var added []*app
	now := time.Now()
	for _, sp := range specs {
		s.order = append(s.order, sp.Name)
		if _, ok := s.apps[sp.Name]; !ok {
			a := newApp(s, sp, now)
			s.apps[sp.Name] = a
			added = append(added, a)
		}
	}
	s.mu.Unlock()
	for _, a := range added {
		s.runLoop(a)
	}
	// Start in dependency order: changed apps with their new spec, new apps.
	for _, name := range order {
		a := s.lookupApp(name)
		wanted, isChanged := changed[name]
		isNew := slices.Contains(added, a)
		if isChanged {
			if err := a.do(appCmd{op: opReplace, spec: next[name]}); err != nil {
				errs = append(errs, err)
			}
		}
		if isNew || (isChanged && wanted) {
			if err := a.do(appCmd{op: opStart}); err != nil {
				s.log.Warn("app did not start", "app", name, "err", err)
			}
		}
	}
	return errors.Join(errs...)
}

// Shutdown stops every app, dependents before what they depend on, and
// waits for them. When ctx ends first, what still runs gets SIGKILL at
// once and ctx's error is returned. The supervisor cannot start again.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	apps := s.appsLocked(s.order)
	s.mu.Unlock()
	if started {
		// Each app stops once every app that comes after it has stopped;
		// independent apps stop in parallel.
		stopped := make(map[string]chan struct{}, len(apps))
		for _, a := range apps {
			stopped[a.name] = make(chan struct{})
		}
		dependents := map[string][]string{}
		for _, a := range apps {
			for _, dep := range a.specCopy().After {
				dependents[dep] = append(dependents[dep], a.name)
			}
		}
		var wg sync.WaitGroup
		for _, a := range apps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(stopped[a.name])
				for _, d := range dependents[a.name] {
					<-stopped[d]
				}
				_ = a.do(appCmd{op: opQuit, hurry: ctx.Done()})
			}()
		}
		wg.Wait()
		s.cancel()
		s.wg.Wait()
	}
	s.subMu.Lock()
	s.subsDone = true
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.subMu.Unlock()
	return ctx.Err()
}

// List returns every app's state in declaration order.
func (s *Supervisor) List() []AppState {
	s.mu.Lock()
	apps := s.appsLocked(s.order)
	s.mu.Unlock()
	out := make([]AppState, 0, len(apps))
	for _, a := range apps {
		out = append(out, a.snapshot())
	}
	return out
}

// Get returns one app's state.
func (s *Supervisor) Get(name string) (AppState, error) {
	a, err := s.app(name)
	if err != nil {
		return AppState{}, err
	}
	return a.snapshot(), nil
}

// StartApp starts a stopped app, or an errored one at once instead of after
// its backoff; a running app is left alone. "all" starts every app. It
// returns once the process runs (or waits for the apps it comes after).
func (s *Supervisor) StartApp(name string) error {
	return s.each(name, false, appCmd{op: opStart})
}

// StopApp stops an app and keeps it stopped until StartApp; it returns once
// the app's process group is gone. "all" stops every app, dependents first.
func (s *Supervisor) StopApp(name string) error {
	return s.each(name, true, appCmd{op: opStop})
}

// RestartApp stops an app (if running) and starts it again; it returns once
// the new process runs, so a following WaitReady waits for the new one.
// "all" stops every app dependents first, then starts them in order.
func (s *Supervisor) RestartApp(name string) error {
	if name == AllApps {
		if err := s.each(name, true, appCmd{op: opStop}); err != nil {
			return err
		}
		return s.each(name, false, appCmd{op: opStart})
	}
	return s.each(name, false, appCmd{op: opRestart})
}

// each sends c to one app or, for "all", to every app in dependency order
// (reversed when backward).
func (s *Supervisor) each(name string, backward bool, c appCmd) error {
	if name != AllApps {
		a, err := s.app(name)
		if err != nil {
			return err
		}
		return a.do(c)
	}
	s.mu.Lock()
	specs := make([]Spec, 0, len(s.order))
	for _, n := range s.order {
		specs = append(specs, s.apps[n].specCopy())
	}
	s.mu.Unlock()
	order, _ := topoOrder(specs)
	if backward {
		slices.Reverse(order)
	}
	var errs []error
	for _, n := range order {
		if a := s.lookupApp(n); a != nil {
			errs = append(errs, a.do(c))
		}
	}
	return errors.Join(errs...)
}

// WaitReady waits until the app is online. It fails at once for a stopped
// app, and when ctx ends; the error carries the app's last error.
func (s *Supervisor) WaitReady(ctx context.Context, name string) error {
	a, err := s.app(name)
	if err != nil {
		return err
	}
	for {
		a.mu.Lock()
		st, changed := a.st, a.changed
		a.mu.Unlock()
		if st.Ready {
			return nil
		}
		why := ""
		if st.LastError != "" {
			why = ": " + st.LastError
		}
		if st.Status == StatusStopped {
			return fmt.Errorf("app %q is stopped%s", name, why)
		}
		select {
		case <-changed:
		case <-a.quit:
			return fmt.Errorf("%w: %q was removed", ErrUnknownApp, name)
		case <-ctx.Done():
			return fmt.Errorf("app %q not ready (%s%s): %w", name, st.Status, why, ctx.Err())
		}
	}
}

// LogFile is the path of the app's current log file.
func (s *Supervisor) LogFile(name string) (string, error) {
	if _, err := s.app(name); err != nil {
		return "", err
	}
	return s.logPath(name), nil
}

// Subscribe returns a channel of app states, one per change, and a function
// that ends the subscription. A subscriber that does not keep up misses
// changes (later states still come); the channel closes on Shutdown.
func (s *Supervisor) Subscribe() (<-chan AppState, func()) {
	ch := make(chan AppState, 64)
	s.subMu.Lock()
	if s.subsDone {
		close(ch)
	} else {
		s.subs[ch] = struct{}{}
	}
	s.subMu.Unlock()
	return ch, func() {
		s.subMu.Lock()
		defer s.subMu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	}
}

func (s *Supervisor) publish(st AppState) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- st:
		default: // slow reader: drop
		}
	}
}

func (s *Supervisor) logPath(name string) string {
	return filepath.Join(s.opts.LogDir, name+".log")
}

func (s *Supervisor) app(name string) (*app, error) {
	if a := s.lookupApp(name); a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownApp, name)
}

func (s *Supervisor) lookupApp(name string) *app {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apps[name]
}

func (s *Supervisor) appsLocked(names []string) []*app {
	out := make([]*app, 0, len(names))
	for _, n := range names {
		if a, ok := s.apps[n]; ok {
			out = append(out, a)
		}
	}
	return out
}

func (a *app) specCopy() Spec {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.spec
}

// readyGen returns a channel closed at the next readiness change.
func (s *Supervisor) readyGen() <-chan struct{} {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	return s.readyCh
}

func (s *Supervisor) bumpReady() {
	s.readyMu.Lock()
	close(s.readyCh)
	s.readyCh = make(chan struct{})
	s.readyMu.Unlock()
}

// depsReady reports whether every named app is ready.
func (s *Supervisor) depsReady(names []string) bool {
	for _, n := range names {
		a := s.lookupApp(n)
		if a == nil || !a.ready() {
			return false
		}
	}
	return true
}

// groupUsage is one process group's share of a /proc sample.
type groupUsage struct {
	rss   uint64
	ticks uint64
}

// sampler reads /proc once per interval for every app's cpu and memory.
func (s *Supervisor) sampler() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		procs, err := allProcs()
		if err != nil {
			s.log.Warn("sampling /proc", "err", err)
			continue
		}
		usage := map[int]groupUsage{}
		for _, p := range procs {
			u := usage[p.PGID]
			u.rss += p.RSSBytes
			u.ticks += p.CPUTicks
			usage[p.PGID] = u
		}
		s.mu.Lock()
		apps := s.appsLocked(s.order)
		s.mu.Unlock()
		now := time.Now()
		for _, a := range apps {
			a.usage(usage, now)
		}
	}
}
