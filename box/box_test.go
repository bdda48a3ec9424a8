package box_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/box"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/supervisor/config"

	"github.com/homebox/gateway/internal/testkit"
)

// recorder is a Plugin that notes what the box asks of it.
type recorder struct {
	name   string
	mu     *sync.Mutex
	events *[]string
	host   *box.Host
	fail   error
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Start(_ context.Context, h *box.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.events = append(*r.events, "start "+r.name)
	r.host = h
	return r.fail
}
func (r *recorder) Stop(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.events = append(*r.events, "stop "+r.name)
	return nil
}
func (r *recorder) Reload(cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.events = append(*r.events, "reload "+r.name+" "+cfg.Console.Listen+" "+strings.Join(cfg.LAN.Allow, ","))
	return nil
}

func TestPluginsAndReloadInProcess(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	var mu sync.Mutex
	var events []string
	a := &recorder{name: "discovery", mu: &mu, events: &events}
	c := &recorder{name: box.ConsolePlugin, mu: &mu, events: &events}
	var stderr testkit.Buffer
	b, err := box.Start(context.Background(), box.Options{Root: root, Dev: true, Stderr: &stderr, Version: "t", Plugins: []box.Plugin{a, c}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = b.Stop()
		}
	})
	h := c.host
	if h == nil || h.Supervisor == nil || h.API == nil || h.Root != root || !h.Dev {
		t.Fatalf("host %+v", h)
	}
	if h.Config.Console.Listen != box.DevConsole || h.Config.Discovery.MDNS.Enabled {
		t.Errorf("--dev overrides missing: %+v", h.Config)
	}
	if err := h.Supervisor.WaitReady(context.Background(), "worker"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "console:  http://"+box.DevConsole+"/\n") {
		t.Errorf("banner:\n%s", stderr.String())
	}

	writeConfig(t, root, strings.Replace(twoApps, "allow: [loopback]", "allow: [loopback, 10.0.0.0/8]", 1))
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, root, "apps: [")
	err = b.Reload()
	if len(config.ErrorList(err)) == 0 {
		t.Errorf("broken reload: %v", err)
	}
	if b.Config().Console.Listen != box.DevConsole {
		t.Errorf("config in force changed: %+v", b.Config().Console)
	}
	pids := map[string]int{}
	for _, s := range h.Supervisor.List() {
		pids[s.Name] = s.PID
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	mu.Lock()
	got := strings.Join(events, "; ")
	mu.Unlock()
	want := "start discovery; start console; reload discovery 127.0.0.1:8080 loopback,10.0.0.0/8; reload console 127.0.0.1:8080 loopback,10.0.0.0/8; stop console; stop discovery"
	if got != want {
		t.Errorf("events\n got %s\nwant %s", got, want)
	}
	for n, pid := range pids {
		if procAlive(pid) {
			t.Errorf("%s (pid %d) runs after Stop", n, pid)
		}
	}
	for _, s := range h.Supervisor.List() {
		if s.Status != supervisor.StatusStopped {
			t.Errorf("%s: %s after Stop", s.Name, s.Status)
		}
	}
}

func TestFailedPluginUndoesTheStart(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	var mu sync.Mutex
	var events []string
	a := &recorder{name: "discovery", mu: &mu, events: &events}
	bad := &recorder{name: "console", mu: &mu, events: &events, fail: errors.New("port taken")}
	_, err := box.Start(context.Background(), box.Options{Root: root, Stderr: &testkit.Buffer{}, Plugins: []box.Plugin{a, bad}})
	if err == nil || !strings.Contains(err.Error(), "start console: port taken") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(events, "; "); got != "start discovery; start console; stop discovery" {
		t.Errorf("events %s", got)
	}
	pids := a.host.Supervisor.List()
	for _, s := range pids {
		if s.PID != 0 {
			t.Errorf("%s still has pid %d", s.Name, s.PID)
		}
	}
	if _, err := os.Stat(box.SocketPath(root)); !os.IsNotExist(err) {
		t.Errorf("socket left: %v", err)
	}
	// Nothing holds the root: a new box starts.
	b, err := box.Start(context.Background(), box.Options{Root: root, Stderr: &testkit.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesWhenSomethingAnswersOnTheSocket(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	sock := box.SocketPath(root)
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = box.Start(context.Background(), box.Options{Root: root, Stderr: &testkit.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "another gatewayd answers on "+sock) {
		t.Fatalf("err = %v", err)
	}
	// Its socket is still there and still answers.
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		t.Fatalf("the other's socket was taken away: %v", err)
	}
	c.Close()
	// And no app was started (strays are not ended either: it would be
	// the other's apps).
	if m, _ := filepath.Glob(filepath.Join(root, "run/gateway/*.proc.json")); len(m) != 0 {
		t.Errorf("apps were recorded: %v", m)
	}
	// Once the other is gone, nothing of the refused start holds the root.
	ln.Close()
	b, err := box.Start(context.Background(), box.Options{Root: root, Stderr: &testkit.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
}
