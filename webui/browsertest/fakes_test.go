package browsertest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/webui"
	"github.com/homebox/gateway/webui/api"
	"github.com/homebox/gateway/webui/confflow"
	"github.com/homebox/gateway/webui/topics"
)

// The parts of the box the page tests do not start for real: a supervisor
// whose "processes" are records the test steers, a device registry and the
// broker's $SYS figures. Each implements the interface the real app asks
// for, so a change there fails to compile here rather than drifting.
var (
	_ webui.Apps    = (*fakeApps)(nil)
	_ confflow.Apps = (*fakeApps)(nil)
	_ webui.Devices = (*fakeDevices)(nil)
	_ webui.Stats   = (*fakeStats)(nil)
)

// fakeApps is a supervisor without processes. A start (or restart) gives
// the app a new pid and the status launching, as the real one does once
// the process runs; then, in the background, the app's comesUp decides
// whether it becomes ready or exits, after its hold (if any) is released.
// Every change goes to the subscribers (the event stream, the config flow)
// and to the app's log file, which the real log tail reads.
type fakeApps struct {
	mu      sync.Mutex
	apps    []*fakeApp
	subs    map[chan supervisor.AppState]struct{}
	nsubs   int
	nextPID int
	quit    chan struct{}
	wg      sync.WaitGroup
}

type fakeApp struct {
	st      supervisor.AppState
	started time.Time
	// comesUp says, once started, whether the app stays up: "" it does,
	// else the error line it prints before it exits with status 1.
	comesUp func() string
	// hold, when set, keeps the next start launching until it is closed.
	hold chan struct{}
}

func newFakeApps() *fakeApps {
	return &fakeApps{subs: map[chan supervisor.AppState]struct{}{}, nextPID: 5000, quit: make(chan struct{})}
}

// add declares an app; st.LogFile is created with lines in it.
func (f *fakeApps) add(st supervisor.AppState, started time.Time, comesUp func() string, lines ...string) {
	if comesUp == nil {
		comesUp = func() string { return "" }
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps = append(f.apps, &fakeApp{st: st, started: started, comesUp: comesUp})
	for _, l := range lines {
		f.logLocked(st.Name, l)
	}
}

// Close ends the background starts still held.
func (f *fakeApps) Close() {
	close(f.quit)
	f.wg.Wait()
}

func (f *fakeApps) find(name string) (*fakeApp, error) {
	for _, a := range f.apps {
		if a.st.Name == name {
			return a, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", supervisor.ErrUnknownApp, name)
}

func (a *fakeApp) state() supervisor.AppState {
	st := a.st
	st.Args = append([]string(nil), a.st.Args...)
	if st.PID != 0 {
		st.UptimeSeconds = time.Since(a.started).Seconds()
	}
	return st
}

func (f *fakeApps) List() []supervisor.AppState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]supervisor.AppState, 0, len(f.apps))
	for _, a := range f.apps {
		out = append(out, a.state())
	}
	return out
}

func (f *fakeApps) Get(name string) (supervisor.AppState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.find(name)
	if err != nil {
		return supervisor.AppState{}, err
	}
	return a.state(), nil
}

func (f *fakeApps) LogFile(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.find(name)
	if err != nil {
		return "", err
	}
	return a.st.LogFile, nil
}

// each runs do on one app, or on every app for "all".
func (f *fakeApps) each(name string, do func(a *fakeApp)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "all" {
		for _, a := range f.apps {
			do(a)
		}
		return nil
	}
	a, err := f.find(name)
	if err != nil {
		return err
	}
	do(a)
	return nil
}

func (f *fakeApps) StartApp(name string) error {
	return f.each(name, func(a *fakeApp) {
		if a.st.PID == 0 || a.st.Status == supervisor.StatusErrored {
			f.startLocked(a)
		}
	})
}

func (f *fakeApps) RestartApp(name string) error {
	return f.each(name, func(a *fakeApp) {
		if a.st.PID != 0 {
			f.logLocked(a.st.Name, "[gatewayd] restart asked; stopping pid "+fmt.Sprint(a.st.PID))
		}
		a.st.Restarts++
		f.startLocked(a)
	})
}

func (f *fakeApps) StopApp(name string) error {
	return f.each(name, func(a *fakeApp) {
		if a.st.PID == 0 && a.st.Status == supervisor.StatusStopped {
			return
		}
		f.logLocked(a.st.Name, "[gatewayd] stopped")
		a.st.Status, a.st.PID, a.st.Ready, a.st.MemoryBytes = supervisor.StatusStopped, 0, false, 0
		f.publishLocked(a)
	})
}

// startLocked "runs" a new process for a, and decides in the background
// how it goes on.
func (f *fakeApps) startLocked(a *fakeApp) {
	f.nextPID++
	pid := f.nextPID
	a.st.PID, a.st.Status, a.st.Ready, a.st.LastError = pid, supervisor.StatusLaunching, false, ""
	a.started = time.Now()
	f.logLocked(a.st.Name, fmt.Sprintf("[gatewayd] started %s (pid %d)", a.st.Command, pid))
	f.publishLocked(a)
	hold := a.hold
	a.hold = nil
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if hold != nil {
			select {
			case <-hold:
			case <-f.quit:
				return
			}
		}
		bad := a.comesUp()
		f.mu.Lock()
		defer f.mu.Unlock()
		if a.st.PID != pid {
			return // stopped or started again meanwhile
		}
		if bad == "" {
			a.st.Status, a.st.Ready, a.st.MemoryBytes = supervisor.StatusOnline, true, 14<<20
			f.logLocked(a.st.Name, "listener up")
		} else {
			code := 1
			f.logLocked(a.st.Name, bad)
			a.st.Status, a.st.PID, a.st.Ready = supervisor.StatusErrored, 0, false
			a.st.LastExitCode, a.st.LastExitAt = &code, time.Now().UTC()
			a.st.LastError = fmt.Sprintf("exit status 1 after %s", time.Since(a.started).Round(time.Millisecond))
			f.logLocked(a.st.Name, "[gatewayd] "+a.st.LastError)
		}
		f.publishLocked(a)
	}()
}

// holdNext keeps the next start of name launching until the returned
// function is called.
func (f *fakeApps) holdNext(name string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.find(name)
	if err != nil {
		panic(err)
	}
	ch := make(chan struct{})
	a.hold = ch
	return sync.OnceFunc(func() { close(ch) })
}

// log appends a line to name's log file, as the app would print it.
func (f *fakeApps) log(name, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logLocked(name, line)
}

func (f *fakeApps) logLocked(name, line string) {
	a, err := f.find(name)
	if err != nil || a.st.LogFile == "" {
		return
	}
	fh, err := os.OpenFile(a.st.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer fh.Close()
	fmt.Fprintf(fh, "%s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), line)
}

func (f *fakeApps) Subscribe() (<-chan supervisor.AppState, func()) {
	ch := make(chan supervisor.AppState, 64)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.nsubs++
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

// subscribed counts the change feeds ever asked for (an event stream's, a
// flow's): a page's stream hears every change made once this has grown
// since the page was opened.
func (f *fakeApps) subscribed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nsubs
}

// publishLocked tells the subscribers; a full channel loses the change, as
// the real supervisor's does (the flow polls as well).
func (f *fakeApps) publishLocked(a *fakeApp) {
	st := a.state()
	for ch := range f.subs {
		select {
		case ch <- st:
		default:
		}
	}
}

// unprivilegedBroker is the mqtt app's comesUp: like a broker run as a
// user, it exits when the conf asks for a listener port below 1024.
func unprivilegedBroker(confPath string) func() string {
	return func() string {
		b, err := os.ReadFile(confPath)
		if err != nil {
			return "error: " + err.Error()
		}
		for i, l := range strings.Split(string(b), "\n") {
			var port int
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "listener" {
				if _, err := fmt.Sscan(f[1], &port); err == nil && port > 0 && port < 1024 {
					return fmt.Sprintf("error: %s:%d: listener: cannot listen on :%d: listen tcp :%d: bind: permission denied",
						filepath.Base(confPath), i+1, port, port)
				}
			}
		}
		return ""
	}
}

// fakeDevices is a device registry with a fixed list.
type fakeDevices struct {
	mu   sync.Mutex
	list []discovery.Device
}

func (d *fakeDevices) Devices() []discovery.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]discovery.Device(nil), d.list...)
}

func (d *fakeDevices) Device(id string) (discovery.Device, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.list {
		if x.ID == id {
			return x, true
		}
	}
	return discovery.Device{}, false
}

// Forget drops the device; the cleared topics are its availability
// topics, standing in for its announces.
func (d *fakeDevices) Forget(id string, clear bool) (discovery.Forgotten, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range d.list {
		if x.ID == id {
			d.list = append(d.list[:i], d.list[i+1:]...)
			f := discovery.Forgotten{ID: id, Cleared: []string{}, ComesBackFrom: []string{}}
			if clear {
				f.Cleared = append(f.Cleared, x.AvailabilityTopics...)
			} else {
				f.ComesBackFrom = append(f.ComesBackFrom, x.AvailabilityTopics...)
			}
			return f, nil
		}
	}
	return discovery.Forgotten{}, discovery.ErrUnknownDevice
}

// fakeStats is the broker's figures as the $SYS collector would hold them;
// set changes them and tells the event streams.
type fakeStats struct {
	mu    sync.Mutex
	snap  sysstats.Snapshot
	subs  map[chan struct{}]struct{}
	nsubs int
}

func newFakeStats(s sysstats.Snapshot) *fakeStats {
	return &fakeStats{snap: s, subs: map[chan struct{}]struct{}{}}
}

func (s *fakeStats) Snapshot() sysstats.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.snap
	out.History = append([]sysstats.Point(nil), s.snap.History...)
	return out
}

func (s *fakeStats) Changed() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.nsubs++
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

// subscribed counts the event streams that ever followed the figures.
func (s *fakeStats) subscribed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nsubs
}

func (s *fakeStats) set(change func(*sysstats.Snapshot)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&s.snap)
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// fakeTopics is the topic explorer over a real tree, with a broker that
// takes every publish as it comes (a retained one is kept retained).
type fakeTopics struct {
	tree      *topics.Tree
	mu        sync.Mutex
	published []api.PublishInput
}

func newFakeTopics() *fakeTopics { return &fakeTopics{tree: topics.NewTree(0)} }

func (f *fakeTopics) Tree() *topics.Tree { return f.tree }

func (f *fakeTopics) Publish(topic string, payload []byte, qos byte, retain bool) error {
	f.mu.Lock()
	f.published = append(f.published, api.PublishInput{Topic: topic, Payload: string(payload), QoS: qos, Retain: retain})
	f.mu.Unlock()
	f.tree.Record(topics.Message{Topic: topic, Payload: payload, QoS: qos, Retained: retain, At: time.Now()})
	return nil
}

func (f *fakeTopics) Retained(topic string, subtree bool) ([]string, error) {
	return f.tree.Retained(topic, subtree), nil
}

func (f *fakeTopics) sent() []api.PublishInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.published)
}
