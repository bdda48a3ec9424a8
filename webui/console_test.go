package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/webui/api"

	"golang.org/x/crypto/bcrypt"

	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/webui/auth"
	"github.com/homebox/gateway/webui/confflow"
)

// consoleEnv is the app served as the LAN console (httptest connections
// carry no origin mark, so they count as LAN), with a real supervisor
// whose "mqtt" app is a plain sleep: the flow's restart and wait are real,
// only the broker is not.
type consoleEnv struct {
	srv    *httptest.Server
	root   string
	conf   string
	data   string
	sup    *supervisor.Supervisor
	flow   *confflow.Flow
	events *Events
}

const baseConf = "# the owner's comment\nlistener 18830 127.0.0.1\n\nallow_anonymous true # keep\n"

func newConsole(t *testing.T, conf string) *consoleEnv {
	t.Helper()
	root := t.TempDir()
	env := &consoleEnv{root: root, conf: filepath.Join(root, "etc/mosquitto/mosquitto.conf"), data: filepath.Join(root, "data")}
	for _, d := range []string{filepath.Dir(env.conf), env.data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(env.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Options{LogDir: filepath.Join(root, "log"), StateDir: filepath.Join(root, "run"),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(context.Background(), []supervisor.Spec{{Name: "mqtt", Command: "sleep", Args: []string{"600"}, Cwd: env.data}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sup.Shutdown(ctx)
	})
	env.sup = sup
	auth, err := auth.New(auth.Options{Path: paths.Root(root).Join(paths.ConsoleLogin), BcryptCost: bcrypt.MinCost,
		SlowBase: 300 * time.Millisecond, SlowMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	env.events = NewEvents()
	env.flow = confflow.New(confflow.Options{Apps: sup, ConfPath: env.conf, History: confflow.NewHistory(filepath.Join(root, "data/gateway/config-history"), 0),
		ReadyTimeout: 5 * time.Second, Settle: 50 * time.Millisecond, OnStep: func(s confflow.Step) { env.events.Publish("flow", s) }})
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	h := New(Deps{Apps: sup, Console: &Console{Auth: auth, Flow: env.flow, CertsDir: filepath.Join(root, "etc/mosquitto/certs"),
		Events: env.events, Done: done}})
	env.srv = httptest.NewServer(h)
	t.Cleanup(env.srv.Close)
	testkit.WaitFor(t, 5*time.Second, "the mqtt stand-in to run", func() bool {
		st, _ := sup.Get("mqtt")
		return st.Ready
	})
	return env
}

// browser is one LAN client with its cookies and CSRF token.
type browser struct {
	t    *testing.T
	env  *consoleEnv
	c    *http.Client
	csrf string
}

func (env *consoleEnv) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, env: env, c: &http.Client{Jar: jar}}
}

type answer struct {
	code int
	hdr  http.Header
	raw  []byte
	m    map[string]any
}

func (b *browser) req(method, path string, body any, hdr ...string) answer {
	b.t.Helper()
	var rd io.Reader
	ct := ""
	switch v := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(v), "application/x-www-form-urlencoded"
	default:
		j, _ := json.Marshal(v)
		rd, ct = bytes.NewReader(j), "application/json"
	}
	r, err := http.NewRequest(method, b.env.srv.URL+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if b.csrf != "" {
		r.Header.Set(CSRFHeader, b.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := b.c.Do(r)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, hdr: resp.Header, raw: raw}
	json.Unmarshal(raw, &a.m)
	return a
}

func (b *browser) setup(pw string) {
	b.t.Helper()
	a := b.req("POST", "/api/setup", map[string]string{"password": pw})
	if a.code != 200 || a.m["csrf_token"] == "" {
		b.t.Fatalf("setup: %d %s", a.code, a.raw)
	}
	b.csrf = a.m["csrf_token"].(string)
}

func TestLANNeedsALoginAndCSRF(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)

	if a := b.req("GET", "/api/health", nil); a.code != 200 {
		t.Errorf("health is public: %d", a.code)
	}
	if a := b.req("GET", "/api/session", nil); a.code != 200 || a.m["setup_needed"] != true || a.m["logged_in"] != false {
		t.Errorf("session before setup: %d %s", a.code, a.raw)
	}
	for _, p := range []string{"/api/apps", "/api/broker/config", "/api/bridges", "/api/broker/users", "/api/events", "/api/devices"} {
		if a := b.req("GET", p, nil); a.code != 401 || a.m["login"] != true {
			t.Errorf("GET %s without login: %d %s", p, a.code, a.raw)
		}
	}
	if a := b.req("PUT", "/api/broker/config", map[string]string{"text": "bad line\n"}); a.code != 401 {
		t.Errorf("PUT without login: %d", a.code)
	}
	if a := b.req("POST", "/api/setup", map[string]string{"password": "short"}); a.code != 400 || !strings.Contains(string(a.raw), `"field":"password"`) {
		t.Errorf("short password: %d %s", a.code, a.raw)
	}
	// Another site's page cannot even set the password.
	if a := b.req("POST", "/api/setup", map[string]string{"password": "correct horse"}, "Origin", "http://evil.example"); a.code != 403 {
		t.Errorf("cross-site setup: %d %s", a.code, a.raw)
	}
	a := b.req("POST", "/api/setup", map[string]string{"password": "correct horse"})
	if a.code != 200 {
		t.Fatalf("setup: %d %s", a.code, a.raw)
	}
	ck := a.hdr.Get("Set-Cookie")
	if !strings.HasPrefix(ck, SessionCookie+"=") || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") || !strings.Contains(ck, "Path=/") {
		t.Errorf("cookie %q", ck)
	}
	b.csrf = a.m["csrf_token"].(string)
	if a := b.req("POST", "/api/setup", map[string]string{"password": "other password"}); a.code != 409 {
		t.Errorf("second setup: %d %s", a.code, a.raw)
	}
	if a := b.req("GET", "/api/apps", nil); a.code != 200 {
		t.Errorf("apps with session: %d %s", a.code, a.raw)
	}
	if a := b.req("GET", "/api/session", nil); a.m["logged_in"] != true || a.m["csrf_token"] != b.csrf {
		t.Errorf("session: %s", a.raw)
	}

	// Writes need the session's CSRF token.
	st0, _ := env.sup.Get("mqtt")
	for _, tok := range []string{"", "wrong", b.csrf + "x"} {
		if a := b.req("POST", "/api/apps/mqtt/restart", nil, CSRFHeader, tok); a.code != 403 || !strings.Contains(a.m["error"].(string), "CSRF") {
			t.Errorf("token %q: %d %s", tok, a.code, a.raw)
		}
	}
	if st, _ := env.sup.Get("mqtt"); st.PID != st0.PID {
		t.Fatal("a refused restart restarted the app")
	}
	if a := b.req("POST", "/api/apps/mqtt/restart", nil); a.code != 200 {
		t.Errorf("restart with token: %d %s", a.code, a.raw)
	}
	// A plain form carries the token as a hidden field.
	if a := b.req("POST", "/api/broker/users", "username=al&password=pw", CSRFHeader, ""); a.code != 403 {
		t.Errorf("form without token: %d %s", a.code, a.raw)
	}
	// With no password_file yet, the first user makes the file and the
	// conf line in one save (it used to be a dead end needing SSH).
	if a := b.req("POST", "/api/broker/users", "username=al&password=pw&csrf_token="+b.csrf, CSRFHeader, ""); a.code != 200 {
		t.Errorf("form with token: %d %s", a.code, a.raw)
	}
	if a := b.req("GET", "/api/broker/users", nil); a.code != 200 || !strings.Contains(string(a.raw), `"users":["al"]`) {
		t.Errorf("users after the first: %d %s", a.code, a.raw)
	}
	// A write from another site's page is refused even with the cookie.
	if a := b.req("POST", "/api/apps/mqtt/restart", nil, "Origin", "http://evil.example"); a.code != 403 {
		t.Errorf("cross-site write: %d", a.code)
	}
	// Another browser (no cookie) gets nothing, a stolen CSRF token alone does not help.
	other := env.browser(t)
	other.csrf = b.csrf
	if a := other.req("POST", "/api/apps/mqtt/restart", nil); a.code != 401 {
		t.Errorf("token without cookie: %d", a.code)
	}
	if a := b.req("POST", "/api/logout", nil); a.code != 200 {
		t.Errorf("logout: %d", a.code)
	}
	if a := b.req("GET", "/api/apps", nil); a.code != 401 {
		t.Errorf("after logout: %d", a.code)
	}
}

func TestFailedLoginsAreSlowed(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")
	b.req("POST", "/api/logout", nil)

	start := time.Now()
	if a := b.req("POST", "/api/login", map[string]string{"password": "guess"}); a.code != 401 || a.m["error"] != "wrong password" {
		t.Fatalf("wrong password: %d %s", a.code, a.raw)
	}
	a := b.req("POST", "/api/login", map[string]string{"password": "correct horse"})
	if a.code != 429 || a.hdr.Get("Retry-After") == "" {
		t.Fatalf("right after a failure: %d %s", a.code, a.raw)
	}
	var ok answer
	testkit.WaitFor(t, 5*time.Second, "login to be allowed again", func() bool {
		ok = b.req("POST", "/api/login", map[string]string{"password": "correct horse"})
		return ok.code != 429
	})
	if waited := time.Since(start); ok.code != 200 || waited < 300*time.Millisecond {
		t.Errorf("login after %v: %d %s", waited, ok.code, ok.raw)
	}
	// The second failure in a row waits longer (600ms, then capped at 1s).
	b.req("POST", "/api/login", map[string]string{"password": "guess"})
	testkit.WaitFor(t, 5*time.Second, "login to be allowed again", func() bool {
		return b.req("POST", "/api/login", map[string]string{"password": "guess"}).code != 429
	})
	start = time.Now()
	testkit.WaitFor(t, 5*time.Second, "login to be allowed again", func() bool {
		return b.req("POST", "/api/login", map[string]string{"password": "correct horse"}).code == 200
	})
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("second failure slowed only %v", waited)
	}
}

func TestConfigFlowRefusesBadTextAndKeepsHistory(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")

	a := b.req("GET", "/api/broker/config", nil)
	if a.code != 200 || a.m["text"] != baseConf {
		t.Fatalf("get: %d %s", a.code, a.raw)
	}
	bad := baseConf + "listener 99999\nmax_queued_messages lots\n"
	a = b.req("POST", "/api/broker/config/check", map[string]string{"text": bad})
	errs, _ := a.m["errors"].([]any)
	if a.code != 200 || a.m["ok"] != false || len(errs) != 2 || errs[0].(map[string]any)["line"] != float64(5) {
		t.Fatalf("check: %d %s", a.code, a.raw)
	}
	a = b.req("PUT", "/api/broker/config", map[string]string{"text": bad})
	if a.code != 422 || len(a.m["errors"].([]any)) != 2 || errs[1].(map[string]any)["line"] != float64(6) {
		t.Fatalf("PUT bad: %d %s", a.code, a.raw)
	}
	if got, _ := os.ReadFile(env.conf); string(got) != baseConf {
		t.Fatalf("file changed by a refused PUT:\n%s", got)
	}
	if a := b.req("GET", "/api/broker/config/history", nil); a.code != 200 || string(a.raw) != "[]\n" {
		t.Errorf("history after a refusal: %s", a.raw)
	}

	ev, unsub := env.events.Subscribe()
	defer unsub()
	st0, _ := env.sup.Get("mqtt")
	good := strings.Replace(baseConf, "# the owner's comment", "# edited", 1)
	a = b.req("PUT", "/api/broker/config", map[string]string{"text": good})
	if a.code != 200 || a.m["ok"] != true || a.m["version"] == "" {
		t.Fatalf("PUT good: %d %s", a.code, a.raw)
	}
	if got, _ := os.ReadFile(env.conf); string(got) != good {
		t.Fatalf("file not written:\n%s", got)
	}
	if st, _ := env.sup.Get("mqtt"); st.PID == st0.PID || !st.Ready {
		t.Errorf("mqtt not restarted: %+v", st)
	}
	var steps []string
	for len(ev) > 0 {
		e := <-ev
		var s confflow.Step
		json.Unmarshal(e.Data, &s)
		steps = append(steps, s.Step+":"+s.Status)
	}
	if want := "check:running check:ok write:running write:ok restart:running restart:ok wait:running wait:ok done:ok"; strings.Join(steps, " ") != want {
		t.Errorf("steps %v\nwant %s", steps, want)
	}
	// The same text again changes nothing and restarts nothing.
	st1, _ := env.sup.Get("mqtt")
	if a := b.req("PUT", "/api/broker/config", map[string]string{"text": good}); a.code != 200 || a.m["unchanged"] != true {
		t.Errorf("same text: %d %s", a.code, a.raw)
	}
	if st, _ := env.sup.Get("mqtt"); st.PID != st1.PID {
		t.Error("an unchanged config restarted the broker")
	}

	a = b.req("GET", "/api/broker/config/history", nil)
	var list []confflow.Entry
	json.Unmarshal(a.raw, &list)
	if len(list) != 1 {
		t.Fatalf("history: %s", a.raw)
	}
	if a := b.req("GET", "/api/broker/config/history/"+list[0].ID, nil); a.m["text"] != baseConf {
		t.Errorf("version text: %s", a.raw)
	}
	for _, id := range []string{"..%2F..%2Fconsole.json", "nope", "20991231T000000.000000000Z"} {
		if a := b.req("GET", "/api/broker/config/history/"+id, nil); a.code != 404 {
			t.Errorf("id %s: %d %s", id, a.code, a.raw)
		}
	}
	if a := b.req("POST", "/api/broker/config/history/"+list[0].ID+"/restore", nil); a.code != 200 {
		t.Fatalf("restore: %d %s", a.code, a.raw)
	}
	if got, _ := os.ReadFile(env.conf); string(got) != baseConf {
		t.Errorf("restore wrote:\n%s", got)
	}
}

func TestBridgeFormPatchesTheFile(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")

	bad := map[string]any{"name": "cloud", "addresses": []map[string]any{{"host": "remote.example", "port": 0}},
		"topics": []map[string]any{{"pattern": "sensors/#", "direction": "sideways", "qos": 3}}, "keepalive_interval": 2}
	a := b.req("POST", "/api/bridges", bad)
	if a.code != 400 {
		t.Fatalf("bad bridge: %d %s", a.code, a.raw)
	}
	for _, f := range []string{"addresses[0].port", "topics[0].direction", "topics[0].qos", "keepalive_interval"} {
		if !strings.Contains(string(a.raw), `"field":"`+f+`"`) {
			t.Errorf("no error for %s: %s", f, a.raw)
		}
	}
	if a := b.req("POST", "/api/bridges", map[string]any{"name": "x y"}); a.code != 400 || !strings.Contains(string(a.raw), `"field":"name"`) {
		t.Errorf("bad name: %d %s", a.code, a.raw)
	}
	if a := b.req("POST", "/api/bridges", map[string]any{"name": "cloud", "ca_cert": "../../../etc/passwd",
		"addresses": []map[string]any{{"host": "remote.example", "port": 1883}}, "topics": []map[string]any{{"pattern": "a/#"}}}); a.code != 400 ||
		!strings.Contains(string(a.raw), `"field":"ca_cert"`) {
		t.Errorf("path as ca_cert: %d %s", a.code, a.raw)
	}
	if got, _ := os.ReadFile(env.conf); string(got) != baseConf {
		t.Fatalf("refused bridges changed the file:\n%s", got)
	}

	// Upload a CA under a hostile name: it lands in the certs folder, cleaned.
	pki := testkit.NewPKI(t)
	ca, _ := os.ReadFile(pki.CAFile)
	name := b.upload("../../etc/evil ca.pem", ca)
	if name != "evil_ca.pem" {
		t.Fatalf("upload name %q", name)
	}
	if _, err := os.Stat(filepath.Join(env.root, "etc/mosquitto/certs/evil_ca.pem")); err != nil {
		t.Fatal(err)
	}
	good := map[string]any{"name": "cloud", "addresses": []map[string]any{{"host": "127.0.0.1", "port": 18831}},
		"topics":          []map[string]any{{"pattern": "sensors/#", "direction": "out", "qos": 1, "remote_prefix": "home/"}},
		"remote_username": "box", "remote_password": "s3cret", "ca_cert": name}
	if a := b.req("POST", "/api/bridges", good); a.code != 201 {
		t.Fatalf("add: %d %s", a.code, a.raw)
	}
	got, _ := os.ReadFile(env.conf)
	if !strings.HasPrefix(string(got), baseConf) || !strings.Contains(string(got), "connection cloud\n") ||
		!strings.Contains(string(got), "topic sensors/# out 1 \"\" home/\n") {
		t.Fatalf("file after add:\n%s", got)
	}
	if a := b.req("POST", "/api/bridges", good); a.code != 409 {
		t.Errorf("add twice: %d %s", a.code, a.raw)
	}
	a = b.req("GET", "/api/bridges", nil)
	var list []api.Bridge
	json.Unmarshal(a.raw, &list)
	if len(list) != 1 || list[0].Name != "cloud" || !list[0].HasPassword || list[0].CACert != name || list[0].Live != nil ||
		strings.Contains(string(a.raw), "s3cret") {
		t.Fatalf("bridges: %s", a.raw)
	}
	// PUT changes only what it names; the password stays.
	if a := b.req("PUT", "/api/bridges/cloud", map[string]any{"topics": []map[string]any{{"pattern": "cmd/#", "direction": "in"}}}); a.code != 200 {
		t.Fatalf("put: %d %s", a.code, a.raw)
	}
	got, _ = os.ReadFile(env.conf)
	if !strings.Contains(string(got), "topic cmd/# in 0\n") || strings.Contains(string(got), "sensors/#") || !strings.Contains(string(got), "remote_password s3cret") {
		t.Fatalf("file after put:\n%s", got)
	}
	if a := b.req("PUT", "/api/bridges/ghost", map[string]any{}); a.code != 404 {
		t.Errorf("put unknown: %d", a.code)
	}
	if a := b.req("DELETE", "/api/bridges/cloud", nil); a.code != 200 {
		t.Fatalf("delete: %d %s", a.code, a.raw)
	}
	got, _ = os.ReadFile(env.conf)
	if !strings.HasPrefix(string(got), baseConf) || strings.Contains(string(got), "connection") {
		t.Errorf("file after delete:\n%s", got)
	}
}

func (b *browser) upload(name string, data []byte) string {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	r, _ := http.NewRequest("POST", b.env.srv.URL+"/api/broker/certs", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.Header.Set(CSRFHeader, b.csrf)
	resp, err := b.c.Do(r)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.CertFile
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || json.Unmarshal(raw, &out) != nil {
		b.t.Fatalf("upload: %d %s", resp.StatusCode, raw)
	}
	return out.Name
}

func TestCertUploadRefusesNonCertificates(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "x.pem")
	fw.Write([]byte("just text"))
	mw.Close()
	r, _ := http.NewRequest("POST", env.srv.URL+"/api/broker/certs", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.Header.Set(CSRFHeader, b.csrf)
	resp, err := b.c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("non-PEM: %d", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(env.root, "etc/mosquitto/certs/x.pem")); err == nil {
		t.Error("a refused upload was written")
	}
	for _, n := range []string{"..", ".hidden", "", "///"} {
		if got, err := CertName(n); err == nil && (got == "" || strings.HasPrefix(got, ".")) {
			t.Errorf("CertName(%q) = %q", n, got)
		}
	}
}

func TestUsersThroughTheFlow(t *testing.T) {
	env := newConsole(t, baseConf+"password_file passwd\n")
	pw := filepath.Join(env.data, "passwd") // relative to the broker's working folder
	if err := os.WriteFile(pw, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b := env.browser(t)
	b.setup("correct horse")
	for _, bad := range []map[string]string{{"username": "a:b", "password": "x"}, {"username": " al", "password": "x"}, {"username": "al", "password": ""}} {
		if a := b.req("POST", "/api/broker/users", bad); a.code != 400 || !strings.Contains(string(a.raw), `"field"`) {
			t.Errorf("%v: %d %s", bad, a.code, a.raw)
		}
	}
	if a := b.req("POST", "/api/broker/users", map[string]string{"username": "alice", "password": "wonder land"}); a.code != 200 {
		t.Fatalf("add: %d %s", a.code, a.raw)
	}
	raw, _ := os.ReadFile(pw)
	if !strings.HasPrefix(string(raw), "alice:$7$") {
		t.Fatalf("password file: %q", raw)
	}
	a := b.req("GET", "/api/broker/users", nil)
	if a.code != 200 || a.m["password_file"] != pw || strings.Contains(string(a.raw), "$7$") || len(a.m["users"].([]any)) != 1 {
		t.Errorf("users: %d %s", a.code, a.raw)
	}
	if a := b.req("DELETE", "/api/broker/users/bob", nil); a.code != 404 {
		t.Errorf("delete unknown: %d", a.code)
	}
	if a := b.req("DELETE", "/api/broker/users/alice", nil); a.code != 200 {
		t.Errorf("delete: %d %s", a.code, a.raw)
	}
	if raw, _ := os.ReadFile(pw); len(raw) != 0 {
		t.Errorf("after delete: %q", raw)
	}
	if list, _ := env.flow.History().List(confflow.KindPasswords); len(list) != 2 {
		t.Errorf("password file history: %v", list)
	}
}

func TestMissingPartsAreUnavailable(t *testing.T) {
	h := New(Deps{})
	var e api.Error
	for _, p := range []string{"/api/broker/config", "/api/bridges", "/api/broker/users", "/api/broker/stats", "/api/broker/config/history"} {
		if code := call(t, h, "GET", p, &e); code != 503 || !strings.Contains(e.Error, "not running") {
			t.Errorf("%s: %d %+v", p, code, e)
		}
	}
	// On the LAN, no login part means a closed door, not an open one.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/api/apps", nil))
	if rec.Code != 503 {
		t.Errorf("LAN without login: %d %s", rec.Code, rec.Body)
	}
}

func TestEventStreamCarriesAppsAndFlowSteps(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", env.srv.URL+"/api/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		buf := make([]byte, 64<<10)
		var rest string
		for {
			n, err := resp.Body.Read(buf)
			rest += string(buf[:n])
			for {
				i := strings.IndexByte(rest, '\n')
				if i < 0 {
					break
				}
				lines <- rest[:i]
				rest = rest[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	// The stream is open once its first comment arrives.
	if l := <-lines; !strings.HasPrefix(l, ":") {
		t.Fatalf("first line %q", l)
	}
	put := make(chan answer, 1)
	go func() {
		put <- b.req("PUT", "/api/broker/config", map[string]string{"text": baseConf + "# one more line\n"})
	}()
	seen := map[string]bool{}
	for l := range lines {
		if ev, ok := strings.CutPrefix(l, "event: "); ok {
			seen[ev] = true
		}
		if strings.Contains(l, `"step":"done","status":"ok"`) {
			break
		}
	}
	if !seen["app"] || !seen["flow"] {
		t.Errorf("events seen: %v", seen)
	}
	if a := <-put; a.code != 200 {
		t.Errorf("PUT: %d %s", a.code, a.raw)
	}
}

// The session cookie lasts what the docs say: 12 hours unused, a week when
// kept logged in; it does not end when the browser closes.
func TestSessionCookieLastsWhatTheDocsSay(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")
	for keep, want := range map[bool]int{false: 12 * 3600, true: 7 * 24 * 3600} {
		a := b.req("POST", "/api/login", map[string]any{"password": "correct horse", "keep": keep})
		if a.code != 200 {
			t.Fatalf("login: %d %s", a.code, a.raw)
		}
		var ck *http.Cookie
		for _, c := range (&http.Response{Header: a.hdr}).Cookies() {
			if c.Name == SessionCookie {
				ck = c
			}
		}
		if ck == nil || ck.MaxAge != want || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
			t.Errorf("keep=%v: cookie %+v, want Max-Age %d", keep, ck, want)
		}
	}
}
