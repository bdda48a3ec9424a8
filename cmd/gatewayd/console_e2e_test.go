package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// The end-to-end test runs a real `gatewayd run` in a temporary root, with
// the real broker as its mqtt app, and drives the console's API over the
// control socket and over the LAN listener, checking each change with real
// MQTT clients.

// brokerBoxYAML is a test box's gateway.yaml: the console on a free
// loopback port, mDNS off, and the broker app ready on port; more lines of
// the broker's entry (and more apps after it) in extra.
func brokerBoxYAML(port int, extra string) string {
	return fmt.Sprintf(`console: {listen: "127.0.0.1:0"}
lan: {allow: [loopback]}
discovery: {mdns: {enabled: false}}
apps:
  - name: mqtt
    command: gatewayd
    args: [broker, --config, "{root}/etc/mosquitto/mosquitto.conf"]
    ready: {tcp: "127.0.0.1:%d"}
    restart: {delay: 0s, backoff_max: 2s, min_uptime: 1s}
    cwd: "{root}/data"
`, port) + extra
}

func write(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

type apiClient struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

type reply struct {
	code int
	raw  []byte
	m    map[string]any
}

func (a *apiClient) do(method, path string, body any) reply {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.csrf != "" {
		req.Header.Set("X-CSRF-Token", a.csrf)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, raw: raw}
	json.Unmarshal(raw, &r.m)
	return r
}

func socketAPI(t *testing.T, root string) *apiClient {
	sock := filepath.Join(root, "run/gateway/gatewayd.sock")
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{t: t, c: &http.Client{Transport: tr, Timeout: 60 * time.Second}, base: "http://gatewayd"}
}

// pub publishes one message with mosquitto_pub and returns its output
// and exit code.
func pub(t *testing.T, port int, args ...string) (string, int) {
	t.Helper()
	return pubTo(t, port, "test/x", "hi", args...)
}

func pubTo(t *testing.T, port int, topic, msg string, args ...string) (string, int) {
	t.Helper()
	return testkit.Run(t, 15*time.Second, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", topic, "-m", msg, "-q", "1"}, args...)...)
}

func TestConsoleEndToEnd(t *testing.T) {
	testkit.RequireTool(t, "mosquitto_pub")
	testkit.RequireTool(t, "mosquitto_sub")
	mosquitto := testkit.RequireTool(t, "mosquitto")
	gatewayd := testkit.Build(t, "./cmd/gatewayd")
	gwctl := testkit.Build(t, "./cmd/gwctl")

	root := t.TempDir()
	p1, p2, p4 := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	held, err := net.Listen("tcp", "127.0.0.1:0") // a port the broker cannot have
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	p3 := held.Addr().(*net.TCPAddr).Port

	write(t, filepath.Join(root, "etc/gateway/gateway.yaml"), brokerBoxYAML(p1, "    kill_timeout: 5s\n"), 0o644)
	conf := filepath.Join(root, "etc/mosquitto/mosquitto.conf")
	conf0 := fmt.Sprintf("# the test box\nlistener %d 127.0.0.1\nallow_anonymous true\nsys_interval 1\n# users, relative to the broker's folder\npassword_file passwd\n", p1)
	write(t, conf, conf0, 0o644)
	write(t, filepath.Join(root, "data/passwd"), "", 0o600)

	box := testkit.Start(t, gatewayd, "run", "--root", root)
	m := box.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="console listening" part=console addr=(\S+)`))
	lanURL := "http://" + m[1]
	sock := socketAPI(t, root)
	testkit.WaitFor(t, 20*time.Second, "the broker to be online", func() bool {
		r := sock.do("GET", "/api/apps/mqtt", nil)
		return r.code == 200 && r.m["status"] == "online"
	})
	t.Cleanup(func() {
		box.Signal(15)
		if code := box.Wait(t, 30*time.Second); code != 0 {
			t.Errorf("gatewayd exit %d:\n%s", code, box.Output())
		}
	})

	t.Run("broker log: one timestamp a line, each listener once", func(t *testing.T) {
		var lines []string
		testkit.WaitFor(t, 10*time.Second, "the broker's start in its log", func() bool {
			data, _ := os.ReadFile(filepath.Join(root, "var/log/gateway/mqtt.log"))
			lines = strings.Split(strings.TrimSpace(string(data)), "\n")
			return strings.Contains(string(data), "broker running")
		})
		opened := 0
		for _, l := range lines {
			stamp, rest, _ := strings.Cut(l, " ")
			if _, err := time.Parse(time.RFC3339, stamp); err != nil {
				t.Errorf("line without the supervisor's timestamp: %q", l)
			}
			if strings.Contains(rest, "time=") {
				t.Errorf("line with a second timestamp: %q", l)
			}
			if strings.Contains(rest, "attached listener") || strings.Contains(rest, "added hook") {
				t.Errorf("mochi's start-up chatter at info level: %q", l)
			}
			if strings.Contains(rest, `msg="listener open"`) {
				opened++
			}
		}
		if opened != 1 {
			t.Errorf("%d \"listener open\" lines for one listener:\n%s", opened, strings.Join(lines, "\n"))
		}
	})

	t.Run("LAN login and gwctl console-password", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		lan := &apiClient{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}, base: lanURL}
		if r := lan.do("GET", "/api/apps", nil); r.code != 401 {
			t.Fatalf("apps without login: %d %s", r.code, r.raw)
		}
		r := lan.do("POST", "/api/setup", map[string]string{"password": "first password"})
		if r.code != 200 {
			t.Fatalf("setup: %d %s", r.code, r.raw)
		}
		lan.csrf = r.m["csrf_token"].(string)
		if r := lan.do("GET", "/api/apps", nil); r.code != 200 {
			t.Fatalf("apps with session: %d %s", r.code, r.raw)
		}
		cmd := exec.Command(gwctl, "--root", root, "console-password")
		cmd.Stdin = strings.NewReader("second password\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gwctl console-password: %v\n%s", err, out)
		}
		if r := lan.do("GET", "/api/apps", nil); r.code != 401 {
			t.Errorf("session survived the password change: %d", r.code)
		}
		if r := lan.do("POST", "/api/login", map[string]string{"password": "second password"}); r.code != 200 {
			t.Errorf("login with the new password: %d %s", r.code, r.raw)
		}
		out, code := testkit.Run(t, 10*time.Second, gwctl, "--root", root, "devices", "--json")
		var devs []map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &devs) != nil {
			t.Errorf("gwctl devices --json: %d %s", code, out)
		}
	})

	t.Run("events stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://gatewayd/api/events", nil)
		resp, err := sock.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(data, `"broker":{"up":true`) {
				return
			}
		}
		t.Fatalf("no stats event with the broker up: %v", sc.Err())
	})

	var beforeP2 string
	t.Run("good edit adds a listener", func(t *testing.T) {
		if _, code := pub(t, p2); code == 0 {
			t.Fatal("port 2 accepts before the edit")
		}
		text := conf0 + fmt.Sprintf("\nlistener %d 127.0.0.1\n", p2)
		start := time.Now()
		r := sock.do("PUT", "/api/broker/config", map[string]string{"text": text})
		t.Logf("saved and broker up again in %v", time.Since(start).Round(time.Millisecond))
		if r.code != 200 || r.m["ok"] != true {
			t.Fatalf("PUT: %d %s", r.code, r.raw)
		}
		beforeP2 = r.m["version"].(string)
		if out, code := pub(t, p2); code != 0 {
			t.Fatalf("mosquitto_pub on the new listener: %d %s", code, out)
		}
	})

	t.Run("a conf with an error writes nothing", func(t *testing.T) {
		before, _ := os.ReadFile(conf)
		r := sock.do("PUT", "/api/broker/config", map[string]string{"text": string(before) + "listener 70000\n"})
		if r.code != 422 || !strings.Contains(string(r.raw), `"line":9`) {
			t.Fatalf("PUT: %d %s", r.code, r.raw)
		}
		if after, _ := os.ReadFile(conf); !bytes.Equal(before, after) {
			t.Fatalf("file changed:\n%s", after)
		}
	})

	t.Run("a conf the broker cannot start with is rolled back", func(t *testing.T) {
		before, _ := os.ReadFile(conf)
		st0 := sock.do("GET", "/api/apps/mqtt", nil)
		text := string(before) + fmt.Sprintf("listener %d 127.0.0.1\n", p3)
		start := time.Now()
		r := sock.do("PUT", "/api/broker/config", map[string]string{"text": text})
		if r.code != 409 || r.m["rolled_back"] != true {
			t.Fatalf("PUT: %d %s", r.code, r.raw)
		}
		be, _ := r.m["broker_error"].(string)
		if !strings.Contains(be, fmt.Sprint(p3)) || !strings.Contains(be, "error") {
			t.Errorf("broker_error %q", be)
		}
		t.Logf("rolled back in %v; broker said %q", time.Since(start).Round(time.Millisecond), be)
		if after, _ := os.ReadFile(conf); !bytes.Equal(before, after) {
			t.Fatalf("file not restored:\n%s", after)
		}
		st := sock.do("GET", "/api/apps/mqtt", nil)
		if st.m["status"] != "online" || st.m["pid"] == st0.m["pid"] {
			t.Errorf("broker after rollback: %s", st.raw)
		}
		if out, code := pub(t, p2); code != 0 {
			t.Errorf("broker not up on the old file: %s", out)
		}
	})

	t.Run("history restore", func(t *testing.T) {
		r := sock.do("GET", "/api/broker/config/history", nil)
		var list []map[string]any
		json.Unmarshal(r.raw, &list)
		found := false
		for _, e := range list {
			found = found || e["id"] == beforeP2
		}
		if !found {
			t.Fatalf("version %s not in %s", beforeP2, r.raw)
		}
		if r := sock.do("POST", "/api/broker/config/history/"+beforeP2+"/restore", nil); r.code != 200 {
			t.Fatalf("restore: %d %s", r.code, r.raw)
		}
		if got, _ := os.ReadFile(conf); string(got) != conf0 {
			t.Fatalf("restored file:\n%s", got)
		}
		if _, code := pub(t, p2); code == 0 {
			t.Error("the restored config still listens on port 2")
		}
		if out, code := pub(t, p1); code != 0 {
			t.Errorf("port 1: %s", out)
		}
	})

	t.Run("users", func(t *testing.T) {
		if r := sock.do("POST", "/api/broker/users", map[string]string{"username": "alice", "password": "in wonderland"}); r.code != 200 {
			t.Fatalf("add: %d %s", r.code, r.raw)
		}
		if out, code := pub(t, p1, "-u", "alice", "-P", "in wonderland"); code != 0 {
			t.Errorf("alice: %d %s", code, out)
		}
		if _, code := pub(t, p1, "-u", "alice", "-P", "wrong"); code == 0 {
			t.Error("a wrong password was accepted")
		}
		r := sock.do("GET", "/api/broker/users", nil)
		if r.code != 200 || !strings.Contains(string(r.raw), `"users":["alice"]`) {
			t.Errorf("users: %s", r.raw)
		}
	})

	t.Run("bridge to a real mosquitto", func(t *testing.T) {
		rconf := filepath.Join(t.TempDir(), "remote.conf")
		write(t, rconf, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", p4), 0o644)
		remote := testkit.Start(t, mosquitto, "-c", rconf)
		testkit.WaitFor(t, 10*time.Second, "the remote mosquitto", func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p4))
			if err == nil {
				c.Close()
			}
			return err == nil || remote.Exited()
		})
		b := map[string]any{"name": "remote", "addresses": []map[string]any{{"host": "127.0.0.1", "port": p4}},
			"topics": []map[string]any{{"pattern": "bridged/#", "direction": "out", "qos": 1}}}
		if r := sock.do("POST", "/api/bridges", b); r.code != 201 {
			t.Fatalf("add: %d %s", r.code, r.raw)
		}
		var list []map[string]any
		testkit.WaitFor(t, 20*time.Second, "the bridge's live state to say up", func() bool {
			r := sock.do("GET", "/api/bridges", nil)
			json.Unmarshal(r.raw, &list)
			live, _ := list[0]["live"].(map[string]any)
			return len(list) == 1 && live != nil && live["state"] == "up"
		})
		sub := testkit.Start(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(p4), "-t", "bridged/#", "-C", "1", "-v")
		// Publish until the remote's subscriber has one: it may subscribe
		// a moment after the first message passed.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(sub.Output(), "bridged/hello over the bridge") {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(root, "var/log/gateway/mqtt.log"))
				t.Fatalf("no message over the bridge; sub: %q\nmqtt log:\n%s\nremote:\n%s", sub.Output(), log, remote.Output())
			}
			if out, code := pubTo(t, p1, "bridged/hello", "over the bridge"); code != 0 {
				t.Fatalf("pub: %s", out)
			}
		}
		r := sock.do("GET", "/api/broker/stats", nil)
		br, _ := r.m["bridges"].(map[string]any)
		brk, _ := r.m["broker"].(map[string]any)
		if r.code != 200 || br["up"] != float64(1) || brk["up"] != true {
			t.Errorf("stats: %d %s", r.code, r.raw)
		}
	})
}
