package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/supervisor"
)

const twoApps = `console: {listen: "127.0.0.1:0"}
lan: {allow: [loopback]}
discovery: {mdns: {enabled: false}}
apps:
  - name: ticker
    command: sh
    args: [-c, 'echo started in $(pwd); i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done']
    cwd: "{root}/data"
    kill_timeout: 2s
  - name: worker
    command: sleep
    args: ["600"]
    after: [ticker]
    max_memory: 64MiB
`

// runBox runs `gatewayd run --root root` and waits until gwctl gets an
// answer from it.
func runBox(t *testing.T, root string, extra ...string) *testkit.Proc {
	t.Helper()
	p := testkit.Start(t, gatewaydBin, append([]string{"run", "--root", root}, extra...)...)
	testkit.WaitFor(t, 15*time.Second, "gatewayd's control socket", func() bool {
		if p.Exited() {
			t.Fatalf("gatewayd exited:\n%s", p.Output())
		}
		_, code := gwctlRun(t, root, "status")
		return code == 0
	})
	return p
}

func gwctlRun(t *testing.T, root string, args ...string) (string, int) {
	t.Helper()
	return testkit.Run(t, 30*time.Second, gwctlBin, append([]string{"--root", root}, args...)...)
}

func gwctl(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, code := gwctlRun(t, root, args...)
	if code != 0 {
		t.Fatalf("gwctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func states(t *testing.T, root string) map[string]supervisor.AppState {
	t.Helper()
	var list []supervisor.AppState
	out := gwctl(t, root, "status", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	m := map[string]supervisor.AppState{}
	for _, a := range list {
		m[a.Name] = a
	}
	return m
}

func waitOnline(t *testing.T, root string, names ...string) map[string]supervisor.AppState {
	t.Helper()
	var m map[string]supervisor.AppState
	testkit.WaitFor(t, 10*time.Second, "apps online", func() bool {
		m = states(t, root)
		for _, n := range names {
			if m[n].Status != supervisor.StatusOnline || m[n].PID == 0 {
				return false
			}
		}
		return true
	})
	return m
}

func TestRunAndGwctl(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	box := runBox(t, root)
	m := waitOnline(t, root, "ticker", "worker")

	sock := filepath.Join(root, "run/gateway/gatewayd.sock")
	st, err := os.Stat(sock)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: mode %v, %v", sock, st.Mode(), err)
	}

	// The table.
	out := gwctl(t, root, "status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME STATUS PID UPTIME RESTARTS CPU MEMORY" {
		t.Fatalf("table:\n%s", out)
	}
	for i, name := range []string{"ticker", "worker"} {
		f := strings.Fields(lines[i+1])
		if len(f) < 7 || f[0] != name || f[1] != "online" || f[2] != strconv.Itoa(m[name].PID) || f[4] != "0" || !strings.HasSuffix(f[5], "%") {
			t.Errorf("row %q", lines[i+1])
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes without a terminal")
	}

	// One app, every field pm2 show has.
	out = gwctl(t, root, "status", "ticker")
	fields := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, "  ")
		fields[k] = strings.TrimSpace(v)
	}
	for _, k := range []string{"name", "status", "pid", "uptime", "restarts", "unstable restarts", "last exit", "ready",
		"cpu", "memory", "command", "args", "cwd", "log file", "created at",
		"next restart", "restart policy", "ready check", "max memory", "stop", "env"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("status ticker lacks %q:\n%s", k, out)
		}
	}
	if fields["cwd"] != filepath.Join(root, "data") || fields["log file"] != filepath.Join(root, "var/log/gateway/ticker.log") ||
		fields["ready"] != "yes" || fields["command"] != "sh" || fields["pid"] != strconv.Itoa(m["ticker"].PID) {
		t.Errorf("status ticker:\n%s", out)
	}

	// JSON keys are a contract.
	var one map[string]any
	if err := json.Unmarshal([]byte(gwctl(t, root, "status", "worker", "--json")), &one); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "status", "pid", "uptime_s", "restarts", "unstable_restarts", "last_exit_code",
		"last_signal", "ready", "cpu_percent", "memory_bytes", "command", "args", "cwd", "log_file",
		"restart", "next_restart_in_s", "max_memory_bytes", "ready_check"} {
		if _, ok := one[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	if r, _ := one["restart"].(map[string]any); r == nil || r["delay_s"] == nil || r["backoff_max_s"] == nil || r["min_uptime_s"] == nil {
		t.Errorf("--json restart = %v, want delay_s, backoff_max_s, min_uptime_s", one["restart"])
	}
	if one["next_restart_in_s"] != nil {
		t.Errorf("an online app has next_restart_in_s %v, want null", one["next_restart_in_s"])
	}

	// stop, start, restart.
	workerPID := m["worker"].PID
	if out := gwctl(t, root, "stop", "worker"); !strings.Contains(out, "stopped") {
		t.Errorf("stop printed:\n%s", out)
	}
	if testkit.Alive(workerPID) {
		t.Errorf("worker pid %d alive after gwctl stop", workerPID)
	}
	if s := states(t, root)["worker"]; s.Status != supervisor.StatusStopped || s.PID != 0 {
		t.Errorf("after stop: %+v", s)
	}
	gwctl(t, root, "start", "worker")
	m2 := waitOnline(t, root, "worker")
	if m2["worker"].PID == workerPID || !testkit.Alive(m2["worker"].PID) {
		t.Errorf("start: pid %d", m2["worker"].PID)
	}
	gwctl(t, root, "restart", "ticker")
	m3 := waitOnline(t, root, "ticker")
	if m3["ticker"].PID == m["ticker"].PID || testkit.Alive(m["ticker"].PID) {
		t.Errorf("restart: old pid %d, new %d", m["ticker"].PID, m3["ticker"].PID)
	}

	// logs -n and -f.
	testkit.WaitFor(t, 10*time.Second, "ticks in the log", func() bool {
		out, _ := gwctlRun(t, root, "logs", "ticker", "-n", "3")
		return strings.Count(out, "tick ") == 3
	})
	out = gwctl(t, root, "logs", "ticker", "-n", "3")
	if got := strings.Split(strings.TrimSpace(out), "\n"); len(got) != 3 {
		t.Errorf("logs -n 3 gave %d lines:\n%s", len(got), out)
	}
	follow := testkit.Start(t, gwctlBin, "--root", root, "logs", "ticker", "-n", "1", "-f")
	m1 := follow.WaitLine(t, 10*time.Second, regexp.MustCompile(`tick (\d+)`))
	n1, _ := strconv.Atoi(m1[1])
	follow.WaitLine(t, 10*time.Second, regexp.MustCompile(`tick (`+strconv.Itoa(n1+5)+`)$`))
	_ = follow.Signal(syscall.SIGTERM)
	follow.Wait(t, 5*time.Second)

	// Mistakes and exit codes.
	if out, code := gwctlRun(t, root, "status", "ghost"); code != 1 || !strings.Contains(out, `no app named "ghost"`) {
		t.Errorf("status ghost: %d %s", code, out)
	}
	if out, code := gwctlRun(t, root, "restart", "ghost"); code != 1 || !strings.Contains(out, "ghost") {
		t.Errorf("restart ghost: %d %s", code, out)
	}
	for _, args := range [][]string{{"bogus"}, {"status", "a", "b"}, {"start"}, {"logs", "ticker", "-n", "x"}, {"status", "--colour"}, {}} {
		if out, code := gwctlRun(t, root, args...); code != 2 {
			t.Errorf("gwctl %q: exit %d, want 2\n%s", args, code, out)
		}
	}
	env := exec.Command(gwctlBin, "status", "worker")
	env.Env = append(os.Environ(), "GATEWAY_ROOT="+root)
	if out, err := env.CombinedOutput(); err != nil || !strings.Contains(string(out), "worker") {
		t.Errorf("GATEWAY_ROOT: %v\n%s", err, out)
	}

	// One gatewayd per root.
	out, code := testkit.Run(t, 15*time.Second, gatewaydBin, "run", "--root", root)
	if code != 1 || !strings.Contains(out, "another gatewayd") {
		t.Errorf("second gatewayd: exit %d\n%s", code, out)
	}
	if s := states(t, root); !testkit.Alive(s["worker"].PID) || s["worker"].PID != m2["worker"].PID {
		t.Errorf("the second gatewayd disturbed the first's apps: %+v", s["worker"])
	}

	// SIGTERM: apps stop, gatewayd exits 0, socket goes.
	final := states(t, root)
	if err := box.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := box.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("gatewayd exit %d after SIGTERM\n%s", code, box.Output())
	}
	for _, a := range final {
		if testkit.Alive(a.PID) {
			t.Errorf("%s (pid %d) outlived gatewayd", a.Name, a.PID)
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	out, code = gwctlRun(t, root, "status")
	if want := "gatewayd is not running (no socket at " + sock + ")"; code != 1 || !strings.Contains(out, want) {
		t.Errorf("gwctl with no daemon: exit %d %q, want %q", code, out, want)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	box := runBox(t, root)
	before := waitOnline(t, root, "ticker", "worker")

	writeConfig(t, root, strings.Replace(twoApps, `args: ["600"]`, `args: ["601"]`, 1))
	if err := box.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var after map[string]supervisor.AppState
	testkit.WaitFor(t, 15*time.Second, "worker restarted with its new args", func() bool {
		after = states(t, root)
		w := after["worker"]
		return w.Status == supervisor.StatusOnline && w.PID != before["worker"].PID && len(w.Args) == 1 && w.Args[0] == "601"
	})
	if after["ticker"].PID != before["ticker"].PID {
		t.Errorf("unchanged ticker restarted: pid %d -> %d", before["ticker"].PID, after["ticker"].PID)
	}
	if testkit.Alive(before["worker"].PID) {
		t.Errorf("old worker %d still runs", before["worker"].PID)
	}

	// A broken file: the error names its line, and nothing changes.
	broken := strings.Replace(twoApps, "kill_timeout: 2s", "kill_timeout: forever", 1)
	writeConfig(t, root, broken)
	line := 0
	for i, l := range strings.Split(broken, "\n") {
		if strings.Contains(l, "forever") {
			line = i + 1
		}
	}
	if err := box.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	box.WaitLine(t, 10*time.Second, regexp.MustCompile(`reload refused.*gateway\.yaml:`+strconv.Itoa(line)+`: apps\[ticker\]\.kill_timeout`))
	now := states(t, root)
	for _, n := range []string{"ticker", "worker"} {
		if now[n].PID != after[n].PID || now[n].Status != supervisor.StatusOnline {
			t.Errorf("%s changed after a refused reload: %+v", n, now[n])
		}
	}
	logFile, _ := os.ReadFile(filepath.Join(root, "var/log/gateway/gatewayd.log"))
	if !strings.Contains(string(logFile), "reload refused") {
		t.Error("gatewayd's own log file lacks the refused reload")
	}
	if err := box.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := box.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestKill9LeavesNoAppBehind(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	box := runBox(t, root)
	m := waitOnline(t, root, "ticker", "worker")
	if err := box.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	box.Wait(t, 10*time.Second)
	testkit.WaitFor(t, 10*time.Second, "the apps to die with gatewayd", func() bool {
		return !testkit.Alive(m["ticker"].PID) && !testkit.Alive(m["worker"].PID)
	})

	// The socket left behind is stale: a new gatewayd takes over.
	if _, err := os.Stat(filepath.Join(root, "run/gateway/gatewayd.sock")); err != nil {
		t.Fatalf("expected a stale socket after kill -9: %v", err)
	}
	if out, code := gwctlRun(t, root, "status"); code != 1 || !strings.Contains(out, "gatewayd is not running") {
		t.Errorf("gwctl on a stale socket: %d %s", code, out)
	}
	box2 := runBox(t, root)
	waitOnline(t, root, "ticker", "worker")
	box2.WaitLine(t, 5*time.Second, regexp.MustCompile(`removed a stale control socket`))
	_ = box2.Signal(syscall.SIGTERM)
	if code := box2.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestBrokenConfigAtStart(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, "apps:\n  - name: x\n    command: sleep\n    stop_signal: SIGNOPE\n")
	out, code := testkit.Run(t, 15*time.Second, gatewaydBin, "run", "--root", root)
	want := filepath.Join(root, "etc/gateway/gateway.yaml") + `:4: apps[x].stop_signal: "SIGNOPE" is not a signal name`
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 1 with %q:\n%s", code, want, out)
	}
	if _, err := os.Stat(filepath.Join(root, "run/gateway/gatewayd.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left after a failed start: %v", err)
	}
}

func TestDevBannerAndInit(t *testing.T) {
	root := t.TempDir()
	out, code := testkit.Run(t, 15*time.Second, gatewaydBin, "init", "--root", root)
	if code != 0 || !strings.Contains(out, filepath.Join(root, "etc/gateway/gateway.yaml")) {
		t.Fatalf("init: %d\n%s", code, out)
	}
	out, code = testkit.Run(t, 15*time.Second, gatewaydBin, "init", "--root", root)
	if code != 0 || !strings.Contains(out, "nothing to write") {
		t.Fatalf("second init: %d\n%s", code, out)
	}
	// The shipped apps need a broker binary and hass; a dev run here
	// declares its own so that only the banner is under test.
	writeConfig(t, root, twoApps)
	box := runBox(t, root, "--dev")
	for _, re := range []string{`root: +` + regexp.QuoteMeta(root), `socket: +` + regexp.QuoteMeta(filepath.Join(root, "run/gateway/gatewayd.sock")),
		`logs: +` + regexp.QuoteMeta(filepath.Join(root, "var/log/gateway")), `console: +http://127\.0\.0\.1:8080/`, `mDNS is off on a development machine`,
		`broker: +mqtt +\S+:1883`, `^ +websockets +\S+:9001`} {
		box.WaitLine(t, 5*time.Second, regexp.MustCompile(re))
	}
	_ = box.Signal(syscall.SIGINT)
	if code := box.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
	if out, code := testkit.Run(t, 5*time.Second, gatewaydBin, "--version"); code != 0 || !strings.HasPrefix(out, "gatewayd ") {
		t.Errorf("gatewayd --version: %d %s", code, out)
	}
	if out, code := testkit.Run(t, 5*time.Second, gwctlBin, "--version"); code != 0 || !strings.HasPrefix(out, "gwctl ") {
		t.Errorf("gwctl --version: %d %s", code, out)
	}
	if _, code := testkit.Run(t, 5*time.Second, gatewaydBin, "frobnicate"); code != 2 {
		t.Errorf("gatewayd frobnicate: exit %d, want 2", code)
	}
}

// Off the disk image (a developer's folder, an owner's own OS) the box has
// no slots: gwctl says so, updates and factory resets are refused with the
// reason, and the reset asks for --yes before anything.
func TestSystemOffTheImage(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, twoApps)
	box := runBox(t, root)
	out := gwctl(t, root, "system")
	if !strings.Contains(out, "slots     none") || !strings.Contains(out, "not started from the gateway's disk image") {
		t.Errorf("gwctl system:\n%s", out)
	}
	if out, code := gwctlRun(t, root, "update", "no-such.update"); code != 1 || !strings.Contains(out, "disk image") {
		t.Errorf("gwctl update off the image: exit %d\n%s", code, out)
	}
	if out, code := gwctlRun(t, root, "factory-reset"); code != 2 || !strings.Contains(out, "--yes") {
		t.Errorf("gwctl factory-reset without --yes: exit %d\n%s", code, out)
	}
	if out, code := gwctlRun(t, root, "factory-reset", "--yes"); code != 1 || !strings.Contains(out, "disk image") {
		t.Errorf("gwctl factory-reset off the image: exit %d\n%s", code, out)
	}
	_ = box.Signal(syscall.SIGTERM)
	if code := box.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
