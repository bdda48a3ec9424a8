package confflow

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/supervisor"
)

// fakeApps is a supervisor that runs nothing: each restart plays a script
// of the states its next Gets return (the last one repeats), so a test
// decides exactly how the broker behaves after each restart.
type fakeApps struct {
	t       *testing.T
	app     string
	conf    string // path whose bytes are recorded at each restart
	logFile string

	mu         sync.Mutex
	pid        int
	script     []supervisor.AppState
	restarts   int
	seenConf   []string // the conf's bytes at each restart
	restartErr func(n int) error
	// onRestart, when set, picks restart n's script (n from 1) and may
	// write the broker's log lines.
	onRestart func(f *fakeApps, n, pid int) []supervisor.AppState
	subs      int
}

func newFakeApps(t *testing.T, conf string) *fakeApps {
	f := &fakeApps{t: t, app: "mqtt", conf: conf, pid: 100}
	f.logFile = filepath.Join(t.TempDir(), "mqtt.log")
	// The broker ran before the change: a log with old lines in it.
	if err := os.WriteFile(f.logFile, []byte("2026-11-23T09:00:00.000Z error: an old error, before the change\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.script = []supervisor.AppState{{Name: "mqtt", Status: "online", PID: f.pid, Ready: true}}
	return f
}

func (f *fakeApps) RestartApp(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name != f.app {
		f.t.Errorf("restart of %q, want %q", name, f.app)
	}
	f.restarts++
	b, _ := os.ReadFile(f.conf)
	f.seenConf = append(f.seenConf, string(b))
	if f.restartErr != nil {
		if err := f.restartErr(f.restarts); err != nil {
			return err
		}
	}
	f.pid++
	f.script = f.onRestart(f, f.restarts, f.pid)
	return nil
}

func (f *fakeApps) Get(name string) (supervisor.AppState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name != f.app {
		return supervisor.AppState{}, errors.New("no such app")
	}
	st := f.script[0]
	if len(f.script) > 1 {
		f.script = f.script[1:]
	}
	st.Name = name
	return st, nil
}

func (f *fakeApps) LogFile(name string) (string, error) { return f.logFile, nil }

func (f *fakeApps) Subscribe() (<-chan supervisor.AppState, func()) {
	f.mu.Lock()
	f.subs++
	f.mu.Unlock()
	var once sync.Once
	return make(chan supervisor.AppState), func() {
		once.Do(func() {
			f.mu.Lock()
			f.subs--
			f.mu.Unlock()
		})
	}
}

func (f *fakeApps) log(line string) {
	fh, err := os.OpenFile(f.logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		f.t.Error(err)
		return
	}
	defer fh.Close()
	fh.WriteString(line + "\n")
}

func (f *fakeApps) state() (restarts int, seen []string, subs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restarts, slices.Clone(f.seenConf), f.subs
}

// Restart scripts.
func ready(_ *fakeApps, _, pid int) []supervisor.AppState {
	return []supervisor.AppState{{Status: "online", PID: pid, Ready: true}}
}

func neverReady(_ *fakeApps, _, pid int) []supervisor.AppState {
	return []supervisor.AppState{{Status: "launching", PID: pid}}
}

// crashing is a broker that starts, prints its error and exits.
func crashing(f *fakeApps, _, pid int) []supervisor.AppState {
	f.log("2026-11-23T09:19:10.100Z [gatewayd] started gatewayd (pid 1)")
	f.log("2026-11-23T09:19:10.200Z error: mosquitto.conf:1: listener: cannot listen on :1884: bind: address already in use")
	f.log("2026-11-23T09:19:10.210Z [gatewayd] exit status 1 after 110ms; restarting in 1s")
	exited := supervisor.AppState{Status: "errored", LastExitAt: time.Now(), LastError: "exit status 1"}
	return []supervisor.AppState{{Status: "launching", PID: pid}, exited}
}

// then plays first on the first restart and next on the later ones.
func then(first, next func(*fakeApps, int, int) []supervisor.AppState) func(*fakeApps, int, int) []supervisor.AppState {
	return func(f *fakeApps, n, pid int) []supervisor.AppState {
		if n == 1 {
			return first(f, n, pid)
		}
		return next(f, n, pid)
	}
}

const (
	oldConf = "listener 1883\n"
	newConf = "listener 1884\n"
	// wantChange is how the history describes the change old → new.
	wantChange = "+ listener 1884; − listener 1883"
)

type fixture struct {
	dir, conf string
	apps      *fakeApps
	hist      *History
	flow      *Flow

	mu    sync.Mutex
	steps []Step
}

// newFixture has a conf on disk (oldConf, mode 0640) and a flow over a
// fake supervisor.
func newFixture(t *testing.T, script func(*fakeApps, int, int) []supervisor.AppState) *fixture {
	t.Helper()
	x := &fixture{dir: t.TempDir()}
	x.conf = filepath.Join(x.dir, "mosquitto.conf")
	if err := os.WriteFile(x.conf, []byte(oldConf), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(x.conf, 0o640); err != nil { // whatever the umask
		t.Fatal(err)
	}
	x.apps = newFakeApps(t, x.conf)
	x.apps.onRestart = script
	x.hist = NewHistory(filepath.Join(x.dir, "history"), 0)
	x.flow = New(Options{
		Apps:         x.apps,
		ConfPath:     x.conf,
		BrokerDir:    x.dir,
		History:      x.hist,
		ReadyTimeout: 2 * time.Second,
		Settle:       5 * time.Millisecond,
		OnStep: func(s Step) {
			x.mu.Lock()
			x.steps = append(x.steps, s)
			x.mu.Unlock()
		},
	})
	return x
}

func (x *fixture) run(t *testing.T, files ...File) (Result, error) {
	t.Helper()
	return x.flow.Run(context.Background(), "edit", func() ([]File, error) { return files, nil })
}

// stepNames is the OnStep sequence as "step:status".
func (x *fixture) stepNames() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for _, s := range x.steps {
		out = append(out, s.Step+":"+s.Status)
	}
	return out
}

func (x *fixture) checkSteps(t *testing.T, res Result, want ...string) {
	t.Helper()
	if got := x.stepNames(); !slices.Equal(got, want) {
		t.Errorf("steps\n got %q\nwant %q", got, want)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.steps {
		if s.Flow != res.Flow || s.Kind != "edit" || s.Time.IsZero() || s.Message == "" {
			t.Errorf("step %+v: want flow %q, kind edit, a time and a message", s, res.Flow)
		}
	}
}

func wantFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if string(b) != data {
		t.Errorf("%s holds %q, want %q", filepath.Base(path), b, data)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != mode {
		t.Errorf("%s has mode %v, want %v", filepath.Base(path), st.Mode().Perm(), mode)
	}
}

func (x *fixture) wantNoHistory(t *testing.T) {
	t.Helper()
	for _, kind := range []string{KindConf, KindPasswords} {
		if l, err := x.hist.List(kind); err != nil || len(l) != 0 {
			t.Errorf("history of %s: %v %v, want none", kind, l, err)
		}
	}
}

func (x *fixture) wantNoSubscriptions(t *testing.T) {
	t.Helper()
	if _, _, subs := x.apps.state(); subs != 0 {
		t.Errorf("%d supervisor subscriptions left open", subs)
	}
}

var okSteps = []string{
	"check:running", "check:ok", "write:running", "write:ok",
	"restart:running", "restart:ok", "wait:running", "wait:ok", "done:ok",
}

func TestRunWritesRestartsAndKeepsTheOldVersion(t *testing.T) {
	x := newFixture(t, ready)
	res, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte(newConf)})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Unchanged || res.Flow == "" {
		t.Errorf("result %+v", res)
	}
	wantFile(t, x.conf, newConf, 0o640) // mode 0 keeps the file's mode
	restarts, seen, _ := x.apps.state()
	if restarts != 1 || seen[0] != newConf {
		t.Errorf("%d restarts on %q, want 1 on the new conf", restarts, seen)
	}
	// The old version is in the history, under the id the result names.
	e, data, err := x.hist.Read(KindConf, res.Version)
	if err != nil || string(data) != oldConf || e.Reason != "before a edit change" {
		t.Errorf("history %q: %+v %q %v", res.Version, e, data, err)
	}
	if l, _ := x.hist.List(KindConf); len(l) != 1 {
		t.Errorf("history holds %d versions, want 1", len(l))
	}
	// The kept version says what replaced it, and that it took.
	if e, _, _ := x.hist.Read(KindConf, res.Version); e.Outcome != OutcomeApplied || e.Change != wantChange {
		t.Errorf("history entry says change %q, outcome %q; want %q, %q", e.Change, e.Outcome, wantChange, OutcomeApplied)
	}
	x.checkSteps(t, res, okSteps...)
	x.wantNoSubscriptions(t)

	// A second change gets its own flow id and one more version.
	res2, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte("listener 1885\n")})
	if err != nil || res2.Flow == res.Flow || res2.Version == res.Version {
		t.Errorf("second run %+v %v (first %+v)", res2, err, res)
	}
	if _, data, _ := x.hist.Read(KindConf, res2.Version); string(data) != newConf {
		t.Errorf("second version holds %q, want %q", data, newConf)
	}
}

func TestRunWritesEveryFileAndItsMode(t *testing.T) {
	x := newFixture(t, ready)
	pw := filepath.Join(x.dir, "passwords")
	res, err := x.run(t,
		File{Path: x.conf, Kind: KindConf, Data: []byte(newConf), Mode: 0o600},
		File{Path: pw, Kind: KindPasswords, Data: []byte("alice:hash\n"), Mode: 0o600},
	)
	if err != nil {
		t.Fatal(err)
	}
	wantFile(t, x.conf, newConf, 0o600)
	wantFile(t, pw, "alice:hash\n", 0o600)
	// The password file did not exist: nothing of it to keep.
	if l, _ := x.hist.List(KindPasswords); len(l) != 0 {
		t.Errorf("password history %v, want none", l)
	}
	if res.Version == "" {
		t.Error("no version of the conf kept")
	}
}

// rolledBack checks the error of a change the broker would not take.
func rolledBack(t *testing.T, res Result, err error) *RolledBackError {
	t.Helper()
	var rb *RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("error %v (%T), want a *RolledBackError", err, err)
	}
	if rb.Flow != res.Flow || rb.Cause == nil {
		t.Errorf("rolled back %+v (flow %q)", rb, res.Flow)
	}
	if res.Version != "" {
		t.Errorf("result names version %q of a change that did not take", res.Version)
	}
	return rb
}

func TestRunRollsBackWhenTheBrokerExits(t *testing.T) {
	x := newFixture(t, then(crashing, ready))
	pw := filepath.Join(x.dir, "passwords")
	res, err := x.run(t,
		File{Path: x.conf, Kind: KindConf, Data: []byte(newConf), Mode: 0o644},
		File{Path: pw, Kind: KindPasswords, Data: []byte("alice:hash\n")},
	)
	rb := rolledBack(t, res, err)
	if rb.RestoreErr != nil {
		t.Errorf("restore failed: %v", rb.RestoreErr)
	}
	if !strings.Contains(rb.Cause.Error(), "did not stay up: exit status 1") {
		t.Errorf("cause %v", rb.Cause)
	}
	if want := "error: mosquitto.conf:1: listener: cannot listen on :1884: bind: address already in use"; rb.BrokerError != want {
		t.Errorf("broker error %q, want %q", rb.BrokerError, want)
	}
	// Only the lines of this attempt, not the old error before it.
	if len(rb.Log) != 3 || strings.Contains(strings.Join(rb.Log, "\n"), "old error") {
		t.Errorf("log %q", rb.Log)
	}
	if !strings.Contains(err.Error(), "previous one is back") {
		t.Errorf("message %q", err)
	}

	// The previous bytes and mode are back, and the file that was not
	// there is gone again; the broker was restarted on them.
	wantFile(t, x.conf, oldConf, 0o640)
	if _, err := os.Stat(pw); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("new password file left behind: %v", err)
	}
	restarts, seen, _ := x.apps.state()
	if restarts != 2 || seen[0] != newConf || seen[1] != oldConf {
		t.Errorf("restarts on %q, want the new conf then the old one", seen)
	}
	// The old version was kept before writing, and stays kept, saying
	// the change that replaced it was rolled back.
	if l, _ := x.hist.List(KindConf); len(l) != 1 || l[0].Outcome != OutcomeRolledBack || l[0].Change != wantChange {
		t.Errorf("history %+v, want the version from before the change, marked rolled back", l)
	}
	x.checkSteps(t, res,
		"check:running", "check:ok", "write:running", "write:ok",
		"restart:running", "restart:ok", "wait:running", "wait:failed",
		"rollback:running", "rollback:ok", "done:failed")
	x.wantNoSubscriptions(t)
}

func TestRunRollsBackWhenTheBrokerIsNeverReady(t *testing.T) {
	x := newFixture(t, then(neverReady, ready))
	x.flow.o.ReadyTimeout = 50 * time.Millisecond
	res, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte(newConf)})
	rb := rolledBack(t, res, err)
	if !strings.Contains(rb.Cause.Error(), "was not ready within 50ms (launching)") || rb.RestoreErr != nil {
		t.Errorf("cause %v, restore %v", rb.Cause, rb.RestoreErr)
	}
	if rb.BrokerError != "" || len(rb.Log) != 0 {
		t.Errorf("broker said nothing, got %q %q", rb.BrokerError, rb.Log)
	}
	wantFile(t, x.conf, oldConf, 0o640)
	if restarts, _, _ := x.apps.state(); restarts != 2 {
		t.Errorf("%d restarts, want 2", restarts)
	}
}

func TestRunRollsBackWhenReadyDoesNotLast(t *testing.T) {
	// Ready at first look, gone when the settle time is up.
	flaky := func(_ *fakeApps, _, pid int) []supervisor.AppState {
		up := supervisor.AppState{Status: "online", PID: pid, Ready: true}
		down := supervisor.AppState{Status: "errored", LastExitAt: time.Now(), LastError: "exit status 1"}
		return []supervisor.AppState{up, up, down}
	}
	x := newFixture(t, then(flaky, ready))
	res, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte(newConf)})
	rb := rolledBack(t, res, err)
	if !strings.Contains(rb.Cause.Error(), "did not stay up") {
		t.Errorf("cause %v", rb.Cause)
	}
	wantFile(t, x.conf, oldConf, 0o640)
}

func TestRunRollsBackWhenTheRestartFails(t *testing.T) {
	x := newFixture(t, ready)
	errBusy := errors.New("supervisor busy")
	x.apps.restartErr = func(n int) error {
		if n == 1 {
			return errBusy
		}
		return nil
	}
	res, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte(newConf)})
	rb := rolledBack(t, res, err)
	if !errors.Is(err, errBusy) || rb.RestoreErr != nil {
		t.Errorf("error %v does not carry the restart's error, or restore failed: %v", err, rb.RestoreErr)
	}
	wantFile(t, x.conf, oldConf, 0o640)
	x.checkSteps(t, res,
		"check:running", "check:ok", "write:running", "write:ok",
		"restart:running", "restart:failed",
		"rollback:running", "rollback:ok", "done:failed")
}

func TestRunSaysWhenTheRollbackFailsToo(t *testing.T) {
	x := newFixture(t, then(crashing, crashing))
	res, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte(newConf)})
	rb := rolledBack(t, res, err)
	if rb.RestoreErr == nil || !strings.Contains(rb.RestoreErr.Error(), "did not come back on the previous files") {
		t.Fatalf("restore error %v", rb.RestoreErr)
	}
	if !strings.Contains(err.Error(), "restoring the previous one failed too") {
		t.Errorf("message %q", err)
	}
	// The old files are still what is on disk: the best the flow can do.
	wantFile(t, x.conf, oldConf, 0o640)
	if got := x.stepNames(); got[len(got)-1] != "rollback:failed" {
		t.Errorf("last step %q, want rollback:failed", got[len(got)-1])
	}
}

func TestRunRollsBackEvenWhenTheCallerGivesUp(t *testing.T) {
	x := newFixture(t, then(neverReady, ready))
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	x.flow.o.OnStep = func(s Step) {
		if s.Step == "wait" && s.Status == "running" {
			once.Do(cancel) // the browser went away while waiting
		}
	}
	res, err := x.flow.Run(ctx, "edit", func() ([]File, error) {
		return []File{{Path: x.conf, Kind: KindConf, Data: []byte(newConf)}}, nil
	})
	rb := rolledBack(t, res, err)
	if rb.RestoreErr != nil {
		t.Errorf("restore on a cancelled context: %v", rb.RestoreErr)
	}
	wantFile(t, x.conf, oldConf, 0o640)
}

func TestRunCheckErrorWritesNothing(t *testing.T) {
	x := newFixture(t, ready)
	pw := filepath.Join(x.dir, "passwords")
	res, err := x.run(t,
		File{Path: pw, Kind: KindPasswords, Data: []byte("alice:hash\n")},
		File{Path: x.conf, Kind: KindConf, Data: []byte("\nlistener 70000\n")},
	)
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a *CheckError", err)
	}
	if len(ce.Diagnostics.Errors) != 1 || ce.Diagnostics.Errors[0].Pos.Line != 2 {
		t.Errorf("diagnostics %+v, want one error on line 2", ce.Diagnostics)
	}
	if err.Error() != "mosquitto.conf has 1 error; nothing was written" {
		t.Errorf("message %q", err)
	}
	wantFile(t, x.conf, oldConf, 0o640)
	if _, err := os.Stat(pw); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("password file written: %v", err)
	}
	x.wantNoHistory(t)
	if restarts, _, _ := x.apps.state(); restarts != 0 {
		t.Errorf("%d restarts", restarts)
	}
	x.checkSteps(t, res, "check:running", "check:failed")
}

func TestRunPrepareErrorIsReturnedAsIs(t *testing.T) {
	x := newFixture(t, ready)
	errForm := errors.New("bridge name is empty")
	res, err := x.flow.Run(context.Background(), "edit", func() ([]File, error) { return nil, errForm })
	if err != errForm {
		t.Errorf("error %v, want the prepare's own", err)
	}
	if restarts, _, _ := x.apps.state(); restarts != 0 {
		t.Errorf("%d restarts", restarts)
	}
	x.checkSteps(t, res, "check:running", "check:failed")
}

func TestRunSameBytesDoesNotRestart(t *testing.T) {
	x := newFixture(t, ready)
	res, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte(oldConf)})
	if err != nil || !res.Unchanged || res.Version != "" {
		t.Errorf("result %+v %v, want unchanged", res, err)
	}
	if restarts, _, _ := x.apps.state(); restarts != 0 {
		t.Errorf("%d restarts", restarts)
	}
	x.wantNoHistory(t)
	x.checkSteps(t, res, "check:running", "check:ok", "done:ok")
}

func TestRunWithoutTheBrokerAppWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*fixture)
	}{
		{"no supervisor", func(x *fixture) { x.flow.o.Apps = nil }},
		{"no mqtt app", func(x *fixture) { x.flow.o.App = "broker" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newFixture(t, ready)
			tc.set(x)
			_, err := x.run(t, File{Path: x.conf, Kind: KindConf, Data: []byte(newConf)})
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("error %v, want ErrUnavailable", err)
			}
			wantFile(t, x.conf, oldConf, 0o640)
			x.wantNoHistory(t)
		})
	}
}

func TestRunPutsBackWhatItWroteWhenAWriteFails(t *testing.T) {
	x := newFixture(t, ready)
	missing := filepath.Join(x.dir, "no-such-folder", "passwords")
	_, err := x.run(t,
		File{Path: x.conf, Kind: KindConf, Data: []byte(newConf), Mode: 0o600},
		File{Path: missing, Kind: KindPasswords, Data: []byte("alice:hash\n")},
	)
	if err == nil || !strings.Contains(err.Error(), "no-such-folder") {
		t.Fatalf("error %v, want the failed write", err)
	}
	wantFile(t, x.conf, oldConf, 0o640)
	if restarts, _, _ := x.apps.state(); restarts != 0 {
		t.Errorf("%d restarts after a failed write", restarts)
	}
}

func TestBrokerDirComesFromTheSupervisor(t *testing.T) {
	x := newFixture(t, ready)
	x.flow.o.BrokerDir = ""
	if got := x.flow.BrokerDir(); got != x.dir {
		t.Errorf("no cwd from the supervisor: %q, want the conf's folder %q", got, x.dir)
	}
	x.apps.script = []supervisor.AppState{{PID: 100, Ready: true, Cwd: "/data/mqtt"}}
	if got := x.flow.BrokerDir(); got != "/data/mqtt" {
		t.Errorf("BrokerDir %q, want the app's cwd", got)
	}
	if got := x.flow.Resolve("certs/ca.pem"); got != "/data/mqtt/certs/ca.pem" {
		t.Errorf("Resolve %q", got)
	}
	if got := x.flow.Resolve("/etc/ca.pem"); got != "/etc/ca.pem" {
		t.Errorf("Resolve of an absolute path %q", got)
	}
}
