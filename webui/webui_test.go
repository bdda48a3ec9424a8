package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/webui/api"

	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/supervisor"
)

// startApps runs a real supervisor with two real apps: "talker" prints 300
// numbered lines then sleeps, "sleeper" only sleeps.
func startApps(t *testing.T) *supervisor.Supervisor {
	t.Helper()
	dir := t.TempDir()
	sup, err := supervisor.New(supervisor.Options{LogDir: filepath.Join(dir, "log"), StateDir: filepath.Join(dir, "run"),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	err = sup.Start(context.Background(), []supervisor.Spec{
		{Name: "talker", Command: "sh", Args: []string{"-c", "i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done; exec sleep 600"}},
		{Name: "sleeper", Command: "sleep", Args: []string{"600"}, After: []string{"talker"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sup.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	file, _ := sup.LogFile("talker")
	testkit.WaitFor(t, 10*time.Second, "talker's 300 lines and the supervisor's notes", func() bool {
		b, _ := os.ReadFile(file)
		return strings.Contains(string(b), "line 300\n") && strings.Contains(string(b), "ready\n")
	})
	return sup
}

func call(t *testing.T, h http.Handler, method, path string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	// The control socket's requests: no login there.
	req := httptest.NewRequest(method, path, nil)
	req = req.WithContext(context.WithValue(req.Context(), originKey{}, OriginSocket))
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: content type %q, body %s", method, path, ct, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, rec.Body)
		}
	}
	return rec.Code
}

func TestAppsAPI(t *testing.T) {
	sup := startApps(t)
	h := New(Deps{Apps: sup, Version: "v-test"})

	var list []map[string]any
	if code := call(t, h, "GET", "/api/apps", &list); code != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", code, list)
	}
	for _, k := range []string{"name", "status", "pid", "uptime_s", "restarts", "unstable_restarts", "last_exit_code",
		"last_signal", "ready", "cpu_percent", "memory_bytes", "command", "args", "cwd", "log_file"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("app JSON lacks %q: %v", k, list[0])
		}
	}

	var one api.App
	if code := call(t, h, "GET", "/api/apps/sleeper", &one); code != 200 || one.Name != "sleeper" || one.PID == 0 {
		t.Fatalf("get: %d %+v", code, one)
	}
	firstPID := one.PID

	var e api.Error
	if code := call(t, h, "GET", "/api/apps/nope", &e); code != 404 || !strings.Contains(e.Error, `"nope"`) {
		t.Errorf("unknown app: %d %+v", code, e)
	}
	if code := call(t, h, "POST", "/api/apps/nope/restart", &e); code != 404 {
		t.Errorf("restart unknown app: %d", code)
	}
	if code := call(t, h, "GET", "/api/nothing-here", &e); code != 404 || e.Error == "" {
		t.Errorf("unknown route: %d %+v", code, e)
	}
	if code := call(t, h, "DELETE", "/api/apps/sleeper", &e); code != 405 || e.Error == "" {
		t.Errorf("wrong method: %d %+v", code, e)
	}

	var states []api.App
	if code := call(t, h, "POST", "/api/apps/sleeper/stop", &states); code != 200 || len(states) != 1 || states[0].Status != api.StatusStopped || states[0].PID != 0 {
		t.Fatalf("stop: %d %+v", code, states)
	}
	if testkit.Alive(firstPID) {
		t.Errorf("pid %d still runs after stop", firstPID)
	}
	if code := call(t, h, "POST", "/api/apps/sleeper/start", &states); code != 200 || states[0].PID == 0 || states[0].PID == firstPID {
		t.Fatalf("start: %d %+v", code, states)
	}
	second := states[0].PID
	if code := call(t, h, "POST", "/api/apps/sleeper/restart", &states); code != 200 || states[0].PID == second || states[0].PID == 0 {
		t.Fatalf("restart: %d %+v", code, states)
	}
	if code := call(t, h, "POST", "/api/apps/all/restart", &states); code != 200 || len(states) != 2 {
		t.Fatalf("restart all: %d %+v", code, states)
	}

	var h2 api.Health
	if code := call(t, h, "GET", "/api/health", &h2); code != 200 || !h2.OK || h2.Version != "v-test" || h2.Apps != 2 {
		t.Errorf("health: %d %+v", code, h2)
	}
}

func TestLogsAPI(t *testing.T) {
	sup := startApps(t)
	h := New(Deps{Apps: sup})

	var l api.Logs
	if code := call(t, h, "GET", "/api/apps/talker/logs", &l); code != 200 {
		t.Fatalf("logs: %d", code)
	}
	// The supervisor adds its own notes to the file, so the truth is the
	// file's own last lines.
	raw, err := os.ReadFile(l.File)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(all) < 300 {
		t.Fatalf("the log has %d lines", len(all))
	}
	if strings.Join(l.Lines, "\n") != strings.Join(all[len(all)-100:], "\n") {
		t.Fatalf("default logs: %d lines, first %q last %q", len(l.Lines), first(l.Lines), last(l.Lines))
	}
	if code := call(t, h, "GET", "/api/apps/talker/logs?n=3", &l); code != 200 || strings.Join(l.Lines, "\n") != strings.Join(all[len(all)-3:], "\n") {
		t.Fatalf("n=3: %d %q", code, l.Lines)
	}
	offset := l.Offset
	if st, _ := os.Stat(l.File); st == nil || st.Size() != offset {
		t.Errorf("offset %d is not the file's size", offset)
	}

	// Lines appended after the offset come back, and nothing before.
	f, err := os.OpenFile(l.File, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "extra one\nextra two\npartial")
	f.Close()
	if code := call(t, h, "GET", fmt.Sprintf("/api/apps/talker/logs?since=%d", offset), &l); code != 200 || len(l.Lines) != 2 || l.Lines[1] != "extra two" {
		t.Fatalf("since: %d %+v", code, l)
	}
	if l.Offset != offset+int64(len("extra one\nextra two\n")) {
		t.Errorf("offset after since = %d: must stop before the partial line", l.Offset)
	}
	// A file shorter than the offset was rotated: read it from the start.
	if code := call(t, h, "GET", "/api/apps/talker/logs?since=999999999", &l); code != 200 || !l.Rotated || len(l.Lines) == 0 {
		t.Fatalf("rotated: %d %+v", code, l.Rotated)
	}

	var e api.Error
	for _, q := range []string{"n=-1", "n=lots", "n=10001", "since=-4", "since=x"} {
		if code := call(t, h, "GET", "/api/apps/talker/logs?"+q, &e); code != 400 || e.Error == "" {
			t.Errorf("%s: %d %+v", q, code, e)
		}
	}
	if code := call(t, h, "GET", "/api/apps/ghost/logs", &e); code != 404 {
		t.Errorf("logs of unknown app: %d", code)
	}
	// An app that has printed nothing yet has an empty log, not an error.
	if code := call(t, h, "GET", "/api/apps/sleeper/logs?n=5", &l); code != 200 {
		t.Errorf("quiet app: %d", code)
	}
}

func TestNoSupervisorIsUnavailableNotBroken(t *testing.T) {
	h := New(Deps{})
	var e api.Error
	for _, p := range []string{"/api/apps", "/api/apps/x", "/api/apps/x/logs"} {
		if code := call(t, h, "GET", p, &e); code != 503 || !strings.Contains(e.Error, "not available") {
			t.Errorf("%s: %d %+v", p, code, e)
		}
	}
	var hl api.Health
	if code := call(t, h, "GET", "/api/health", &hl); code != 200 || hl.AppsOK {
		t.Errorf("health: %d %+v", code, hl)
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "x.log")
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "%06d %s\n", i, strings.Repeat("x", i%50))
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 7, 1000, 4999, 5000, 6000} {
		lines, size, err := tail(file, n)
		if err != nil {
			t.Fatal(err)
		}
		want := min(n, 5000)
		if len(lines) != want || size != int64(b.Len()) {
			t.Fatalf("n=%d: %d lines, size %d", n, len(lines), size)
		}
		if want > 0 && (!strings.HasPrefix(lines[want-1], "004999") || !strings.HasPrefix(lines[0], fmt.Sprintf("%06d", 5000-want))) {
			t.Errorf("n=%d: first %q last %q", n, lines[0], lines[want-1])
		}
	}
	if lines, size, err := tail(filepath.Join(dir, "none.log"), 10); err != nil || len(lines) != 0 || size != 0 {
		t.Errorf("missing file: %v %d %v", lines, size, err)
	}
}

// TestOriginMarksTheListener serves the app on two real listeners, as the
// box does, and checks that a handler can tell them apart.
func TestOriginMarksTheListener(t *testing.T) {
	var seen []Origin
	mw := func(next func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { seen = append(seen, OriginOf(r)); next(w, r) }
	}
	app := New(Deps{})
	h := mw(app.ServeHTTP)

	sock := filepath.Join(t.TempDir(), "s.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s1 := &http.Server{Handler: h, ConnContext: ConnContext(OriginSocket)}
	s2 := &http.Server{Handler: h}
	go s1.Serve(uln)
	go s2.Serve(tln)
	t.Cleanup(func() { s1.Close(); s2.Close() })

	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	get := func(c *http.Client, url string) {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(uc, "http://gatewayd/api/health")
	get(http.DefaultClient, "http://"+tln.Addr().String()+"/api/health")
	http.DefaultClient.CloseIdleConnections()
	uc.CloseIdleConnections()
	if len(seen) != 2 || seen[0] != OriginSocket || seen[1] != OriginLAN {
		t.Errorf("origins %v", seen)
	}
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

func last(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// The hand-written name checks say what their regexps said.
func TestNameChecksMatchTheirPatterns(t *testing.T) {
	checks := []struct {
		name    string
		check   func(string) bool
		pattern string
	}{
		{"bridge", validBridgeName, `^[A-Za-z0-9_.-]{1,64}$`},
		{"host", validHost, `^[A-Za-z0-9.:_%-]{1,253}$`},
		{"cert", validCertName, `^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`},
	}
	inputs := []string{"", "a", "A-b_c.d", ".hidden", "-x", "fe80::1%eth0", "10.0.0.1", "a b", "é", "a/b", "a\n", "x$",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("h", 253), strings.Repeat("h", 254)}
	for _, c := range checks {
		re := regexp.MustCompile(c.pattern)
		for _, in := range inputs {
			if got, want := c.check(in), re.MatchString(in); got != want {
				t.Errorf("%s check of %q = %v, the pattern says %v", c.name, in, got, want)
			}
		}
	}
}
