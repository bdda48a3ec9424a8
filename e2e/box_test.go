package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/supervisor"
)

// box is a `gatewayd run` in a temp root, seeded from the shipped
// defaults, with its ports moved to free loopback ones and mDNS off.
type box struct {
	root, gwctl string
	port        int
	proc        *testkit.Proc
}

func startBox(t testing.TB, yamlEdits ...string) *box {
	t.Helper()
	return startBoxWith(t, testkit.Build(t, "./cmd/gatewayd"), func(ys string) string {
		for i := 0; i+1 < len(yamlEdits); i += 2 { // old, new pairs
			ys = strings.Replace(ys, yamlEdits[i], yamlEdits[i+1], 1)
		}
		return ys
	}, "sys_interval 1\n") // $SYS every second, so tests need not wait 10 s
}

// startBoxWith runs the gatewayd binary given, with editYAML applied to
// the shipped gateway.yaml after the test ports are in, and confLines added
// to the shipped mosquitto.conf.
func startBoxWith(t testing.TB, gatewayd string, editYAML func(string) string, confLines string) *box {
	t.Helper()
	testkit.RequireTool(t, "mosquitto_pub")
	b := &box{root: t.TempDir(), gwctl: testkit.Build(t, "./cmd/gwctl"), port: testkit.FreePort(t)}
	if out, code := testkit.Run(t, 30*time.Second, gatewayd, "init", "--root", b.root); code != 0 {
		t.Fatalf("gatewayd init: %s", out)
	}
	// The shipped files, with test ports and no mDNS.
	conf := filepath.Join(b.root, "etc/mosquitto/mosquitto.conf")
	shipped, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(shipped), "listener 1883", fmt.Sprintf("listener %d 127.0.0.1", b.port), 1)
	text = strings.Replace(text, "listener 9001", fmt.Sprintf("listener %d 127.0.0.1", testkit.FreePort(t)), 1)
	text += confLines
	write(t, conf, text)
	yaml := filepath.Join(b.root, "etc/gateway/gateway.yaml")
	y, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}
	ys := strings.Replace(string(y), `listen: ":80"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, testkit.FreePort(t)), 1)
	ys = strings.Replace(ys, "enabled: true", "enabled: false", 1)
	ys = strings.Replace(ys, `"127.0.0.1:1883"`, fmt.Sprintf(`"127.0.0.1:%d"`, b.port), 1)
	// The test's folders and binaries are root's own: the apps run as
	// gatewayd does here (cmd/gatewayd TestAppsRunUnprivileged runs them
	// as other accounts, the image boot test as the shipped ones).
	ys = withoutUsers(ys)
	write(t, yaml, editYAML(ys))

	b.proc = testkit.Start(t, gatewayd, "run", "--root", b.root)
	b.waitOnline(t, "mqtt", 0)
	return b
}

// withoutUsers drops the user: lines of a gateway.yaml.
func withoutUsers(yaml string) string {
	return regexp.MustCompile(`(?m)^\s+user: .*\n`).ReplaceAllString(yaml, "")
}

func write(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// state reads one app's state with `gwctl status NAME --json`.
func (b *box) state(t testing.TB, name string) (supervisor.AppState, bool) {
	t.Helper()
	out, code := testkit.Run(t, 20*time.Second, b.gwctl, "--root", b.root, "status", name, "--json")
	if code != 0 {
		return supervisor.AppState{}, false
	}
	var s supervisor.AppState
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("gwctl status %s --json: %v\n%s", name, err, out)
	}
	return s, true
}

// waitOnline waits until the app is online with a pid other than notPid.
func (b *box) waitOnline(t testing.TB, name string, notPid int) supervisor.AppState {
	t.Helper()
	var s supervisor.AppState
	testkit.WaitFor(t, 30*time.Second, name+" online", func() bool {
		if b.proc.Exited() {
			t.Fatalf("gatewayd exited:\n%s", b.proc.Output())
		}
		var ok bool
		s, ok = b.state(t, name)
		return ok && s.Status == supervisor.StatusOnline && s.PID != notPid
	})
	return s
}

// api GETs a route of the control API over the socket.
func (b *box) api(t testing.TB, path string, into any) int {
	t.Helper()
	sock := filepath.Join(b.root, "run/gateway/gatewayd.sock")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://gatewayd" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if into != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func pub(t *testing.T, port int, args ...string) {
	t.Helper()
	out, code := testkit.Run(t, 20*time.Second, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port)}, args...)...)
	if code != 0 {
		t.Fatalf("mosquitto_pub %v: %s", args, out)
	}
}

// sub runs mosquitto_sub -C n to completion and returns its lines.
func sub(t *testing.T, port int, n int, args ...string) []string {
	t.Helper()
	out, code := testkit.Run(t, 20*time.Second, "mosquitto_sub", append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-v", "-C", fmt.Sprint(n), "-W", "15"}, args...)...)
	if code != 0 {
		t.Fatalf("mosquitto_sub %v: exit %d: %s", args, code, out)
	}
	return strings.Split(strings.TrimSpace(out), "\n")
}

func TestTheShippedBoxRunsAndRecovers(t *testing.T) {
	b := startBox(t)

	// gwctl shows the broker the way pm2 show would.
	out, code := testkit.Run(t, 20*time.Second, b.gwctl, "--root", b.root, "status", "mqtt")
	if code != 0 || !regexp.MustCompile(`(?m)status\s+online`).MatchString(out) {
		t.Fatalf("gwctl status mqtt (exit %d):\n%s", code, out)
	}
	// home-assistant is not installed here: errored with the reason, not a busy loop.
	testkit.WaitFor(t, 20*time.Second, "home-assistant errored", func() bool {
		s, ok := b.state(t, "home-assistant")
		return ok && s.Status == supervisor.StatusErrored && s.LastError != ""
	})

	// A retained message, then the broker is killed: the supervisor brings
	// it back and the store kept the message.
	pub(t, b.port, "-r", "-q", "1", "-t", "homeassistant/status", "-m", "online")
	before, _ := b.state(t, "mqtt")
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	after := b.waitOnline(t, "mqtt", before.PID)
	if after.Restarts < 1 {
		t.Fatalf("restarts %d after a crash", after.Restarts)
	}
	got := sub(t, b.port, 1, "-t", "homeassistant/status")
	if got[0] != "homeassistant/status online" {
		t.Fatalf("retained after the crash: %q", got)
	}

	// Discovery found the box's own announce.
	testkit.WaitFor(t, 20*time.Second, "the box's own device in /api/devices", func() bool {
		var devs []map[string]any
		return b.api(t, "/api/devices", &devs) == 200 && len(devs) >= 1
	})

	// SIGTERM stops everything, broker included, and exits 0.
	if err := b.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.proc.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("gatewayd exit %d after SIGTERM:\n%s", code, b.proc.Output())
	}
	if err := syscall.Kill(after.PID, 0); err == nil {
		t.Fatalf("the broker (pid %d) outlived gatewayd", after.PID)
	}
}
