package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/rootfs"
)

// `service install` would change the machine, so the tests check the text
// it installs, and run the sysv script for real against a temp root.

func TestServiceSystemdUnit(t *testing.T) {
	u := initText(t, systemdUnit, "/opt/gw bin/gatewayd", "/data/100% $HOME")
	for _, want := range []string{
		`ExecStart="/opt/gw bin/gatewayd" run --root "/data/100%% $$HOME"` + "\n",
		"Restart=always\n", "RestartSec=1\n", "KillMode=control-group\n", "StartLimitIntervalSec=0\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
	if strings.Contains(u, "RestartSec=120") {
		t.Error("kardianos' 120 s restart delay leaked in")
	}
	// kardianos renders the script with its template engine: with no
	// action in it, what it installs is exactly this text.
	for _, s := range []string{u, initText(t, sysvScript, "/x/gatewayd", "/")} {
		if strings.Contains(s, "{{") {
			t.Errorf("template action in the script:\n%s", s)
		}
	}
}

func TestServiceSupport(t *testing.T) {
	files := func(paths ...string) func(string) bool {
		return func(p string) bool {
			for _, q := range paths {
				if p == q {
					return true
				}
			}
			return false
		}
	}
	noEnv := func(string) string { return "" }
	cases := []struct {
		name string
		p    probe
		ok   bool
	}{
		{"systemd", probe{"linux-systemd", files(), noEnv}, true},
		{"openrc", probe{"linux-openrc", files(), noEnv}, true},
		{"debian sysv", probe{"unix-systemv", files("/etc/init.d", "/etc/rc2.d"), noEnv}, true},
		{"sysv fallback with nothing to run it", probe{"unix-systemv", files("/etc/init.d"), noEnv}, false},
		{"no init.d at all", probe{"unix-systemv", files(), noEnv}, false},
		{"android by env", probe{"unix-systemv", files("/etc/init.d", "/etc/rc2.d"), func(k string) string {
			if k == "ANDROID_ROOT" {
				return "/system"
			}
			return ""
		}}, false},
		{"android by files", probe{"unix-systemv", files("/system/bin/app_process"), noEnv}, false},
		{"nothing detected", probe{"", files(), noEnv}, false},
	}
	for _, c := range cases {
		ok, why := serviceSupport(c.p)
		if ok != c.ok || (!ok && why == "") {
			t.Errorf("%s: ok=%v why=%q", c.name, ok, why)
		}
	}
	line := bootLine("/data/gw/gatewayd", "/data/it's")
	if line != `(while :; do '/data/gw/gatewayd' run --root '/data/it'\''s'; sleep 1; done) </dev/null >/dev/null 2>&1 &` {
		t.Errorf("boot line %s", line)
	}
}

const sleeperConfig = `console: {listen: "127.0.0.1:0"}
lan: {allow: [loopback]}
discovery: {mdns: {enabled: false}}
apps:
  - name: sleeper
    command: sleep
    args: ["600"]
`

// TestSysvScriptRuns starts the box with the sysv script, kills gatewayd
// to see the keeper bring it back, and stops it.
func TestServiceSysvScriptRuns(t *testing.T) {
	testkit.RequireTool(t, "sh")
	exe := testkit.Build(t, "./cmd/gatewayd")
	root := t.TempDir()
	testkit.WriteFile(t, filepath.Join(root, "etc/gateway/gateway.yaml"), sleeperConfig)
	script := filepath.Join(t.TempDir(), "gatewayd.init")
	testkit.WriteFile(t, script, initText(t, sysvScript, exe, root))
	initd := func(arg string) (string, int) {
		return testkit.Run(t, 30*time.Second, "sh", script, arg)
	}
	t.Cleanup(func() { initd("stop") })

	if out, code := initd("status"); code == 0 || !strings.HasPrefix(out, "Stopped") {
		t.Errorf("status before start: %d %q", code, out)
	}
	if out, code := initd("start"); code != 0 {
		t.Fatalf("start: %d %s", code, out)
	}
	first := waitApp(t, root, 0)
	if out, code := initd("status"); code != 0 || !strings.HasPrefix(out, "Running") {
		t.Errorf("status: %d %q (kardianos reads the Running prefix)", code, out)
	}

	// gatewayd dies hard: its app goes with it and the keeper brings both back.
	gw := readPID(t, filepath.Join(root, "run/gateway/gatewayd.pid"))
	if err := syscall.Kill(gw, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := waitApp(t, root, first)
	if testkit.Alive(first) {
		t.Errorf("app %d outlived gatewayd", first)
	}
	if gw2 := readPID(t, filepath.Join(root, "run/gateway/gatewayd.pid")); gw2 == gw || !testkit.Alive(gw2) {
		t.Errorf("gatewayd not restarted: %d -> %d", gw, gw2)
	}

	out, code := initd("stop")
	if code != 0 || !strings.Contains(out, "gatewayd stopped") || strings.Contains(out, "SIGKILL") {
		t.Fatalf("stop: %d %s", code, out)
	}
	if testkit.Alive(second) {
		t.Errorf("app %d runs after stop", second)
	}
	if _, err := os.Stat(filepath.Join(root, "run/gateway/gatewayd.sock")); !os.IsNotExist(err) {
		t.Errorf("socket after stop: %v", err)
	}
}

// TestSysvStopEscalates stops a "gatewayd" that ignores SIGTERM.
func TestServiceSysvStopEscalates(t *testing.T) {
	dir := t.TempDir()
	stubborn := filepath.Join(dir, "stubborn")
	testkit.WriteFile(t, stubborn, "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.1; done\n")
	if err := os.Chmod(stubborn, 0o755); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	script := filepath.Join(dir, "gatewayd.init")
	testkit.WriteFile(t, script, initText(t, sysvScript, stubborn, root))
	if out, code := testkit.Run(t, 10*time.Second, "sh", script, "start"); code != 0 {
		t.Fatalf("start: %s", out)
	}
	pidfile := filepath.Join(root, "run/gateway/gatewayd.pid")
	testkit.WaitFor(t, 5*time.Second, "the pid file", func() bool { _, err := os.Stat(pidfile); return err == nil })
	pid := readPID(t, pidfile)
	t.Setenv("GATEWAYD_STOP_TIMEOUT", "1")
	out, code := testkit.Run(t, 30*time.Second, "sh", script, "stop")
	if code != 0 || !strings.Contains(out, "sending SIGKILL") {
		t.Fatalf("stop: %d %s", code, out)
	}
	if testkit.Alive(pid) {
		t.Errorf("pid %d survived stop", pid)
	}
}

// waitApp waits until the box answers with a running sleeper other than
// not, and returns its pid.
func waitApp(t *testing.T, root string, not int) int {
	t.Helper()
	sock := filepath.Join(root, "run/gateway/gatewayd.sock")
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	defer c.CloseIdleConnections()
	pid := 0
	testkit.WaitFor(t, 20*time.Second, "the sleeper app through the control socket", func() bool {
		resp, err := c.Get("http://gatewayd/api/apps/sleeper")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			PID    int    `json:"pid"`
			Status string `json:"status"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		pid = st.PID
		return st.Status == "online" && pid != 0 && pid != not
	})
	return pid
}

func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %q", file, b)
	}
	return pid
}

func initText(t *testing.T, render func(exe, root string) (string, error), exe, root string) string {
	t.Helper()
	text, err := render(exe, root)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// The init files are kept once, in rootfs: for the image's /usr/bin/gatewayd
// and root /, install writes them byte for byte.
func TestServiceInstallsTheShippedInitFiles(t *testing.T) {
	for name, render := range map[string]func(exe, root string) (string, error){
		systemdUnitFile: systemdUnit,
		sysvScriptFile:  sysvScript,
	} {
		want, err := rootfs.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := initText(t, render, "/usr/bin/gatewayd", "/"); got != string(want) {
			t.Errorf("rootfs/%s is not what `gatewayd service install` writes for /usr/bin/gatewayd and /:\n%s", name, got)
		}
		if got := initText(t, render, "/opt/gw/gatewayd", "/srv/box"); !strings.Contains(got, "/opt/gw/gatewayd") ||
			!strings.Contains(got, "/srv/box") || strings.Contains(got, "/usr/bin/gatewayd") {
			t.Errorf("%s for /opt/gw/gatewayd and /srv/box:\n%s", name, got)
		}
	}
}

func TestServiceInitFileLineMissing(t *testing.T) {
	_, err := initFile(sysvScriptFile, map[string]string{"nosuchline=": "x"})
	if err == nil || !strings.Contains(err.Error(), `rootfs/etc/init.d/gatewayd: 0 lines start with "nosuchline="`) {
		t.Errorf("err = %v", err)
	}
}
