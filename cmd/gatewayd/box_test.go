package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/supervisor/config"
)

// The box in-process: start with --dev's overrides, reload a good and a
// broken gateway.yaml, stop with every app gone.
func TestBoxInProcess(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, strings.Replace(twoApps, `listen: "127.0.0.1:0"`, `listen: "127.0.0.1:1"`, 1))
	var stderr testkit.Buffer
	// --dev's console address, made free for the test (8080 may be taken).
	dev := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	b, err := startBox(context.Background(), boxOptions{Root: root, Dev: true, DevConsole: dev, Stderr: &stderr, Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = b.stop()
		}
	})
	if c := b.config(); c.Console.Listen != dev || c.Discovery.MDNS.Enabled {
		t.Errorf("--dev overrides missing: %+v", c)
	}
	if b.lan.addr() != dev {
		t.Errorf("console on %q, want %s", b.lan.addr(), dev)
	}
	if err := b.sup.WaitReady(context.Background(), "worker"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"console:  http://" + dev + "/\n", "broker:   mqtt       127.0.0.1:1883\n", "websockets 127.0.0.1:9001\n"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stderr.String())
		}
	}
	// The shipped conf, seeded by a development run, binds loopback only.
	conf, err := os.ReadFile(paths.Root(root).Join(paths.MosquittoConf))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "\nlistener 1883 127.0.0.1\n") || !strings.Contains(string(conf), "\nlistener 9001 127.0.0.1\n") {
		t.Errorf("development conf binds beyond loopback:\n%s", conf)
	}

	writeConfig(t, root, strings.Replace(twoApps, "allow: [loopback]", "allow: [loopback, 10.0.0.0/8]", 1))
	if err := b.reload(); err != nil {
		t.Fatal(err)
	}
	if got := b.config().LAN.Allow; len(got) != 2 {
		t.Errorf("lan.allow after reload: %v", got)
	}
	writeConfig(t, root, "apps: [")
	err = b.reload()
	if len(config.ErrorList(err)) == 0 {
		t.Errorf("broken reload: %v", err)
	}
	if got := b.config().LAN.Allow; len(got) != 2 {
		t.Errorf("a broken reload changed the config in force: %v", got)
	}
	pids := map[string]int{}
	for _, s := range b.sup.List() {
		pids[s.Name] = s.PID
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	for n, pid := range pids {
		if testkit.Alive(pid) {
			t.Errorf("%s (pid %d) runs after stop", n, pid)
		}
	}
	for _, s := range b.sup.List() {
		if s.Status != supervisor.StatusStopped {
			t.Errorf("%s: %s after stop", s.Name, s.Status)
		}
	}
	if _, err := os.Stat(paths.Root(root).Join(paths.Socket)); !os.IsNotExist(err) {
		t.Errorf("socket left after stop: %v", err)
	}
}

// A console that cannot listen fails the start, and the start is undone:
// no app runs, no socket is left, and nothing holds the root.
func TestFailedStartIsUndone(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	root := t.TempDir()
	writeConfig(t, root, strings.Replace(twoApps, `listen: "127.0.0.1:0"`, `listen: "`+held.Addr().String()+`"`, 1))
	_, err = startBox(context.Background(), boxOptions{Root: root, Stderr: &testkit.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "console.listen "+held.Addr().String()) {
		t.Fatalf("err = %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "run/gateway/*.proc.json")); len(m) != 0 {
		t.Errorf("apps still recorded as running: %v", m)
	}
	if _, err := os.Stat(paths.Root(root).Join(paths.Socket)); !os.IsNotExist(err) {
		t.Errorf("socket left: %v", err)
	}
	writeConfig(t, root, twoApps)
	b, err := startBox(context.Background(), boxOptions{Root: root, Stderr: &testkit.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesWhenSomethingAnswersOnTheSocket(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	sock := paths.Root(root).Join(paths.Socket)
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = startBox(context.Background(), boxOptions{Root: root, Stderr: &testkit.Buffer{}})
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
	b, err := startBox(context.Background(), boxOptions{Root: root, Stderr: &testkit.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
}
