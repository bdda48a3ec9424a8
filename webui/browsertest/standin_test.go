package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/homebox/gateway/webui/pages"
)

// standIn is a small in-memory API that keeps docs/API.md's shapes, so the
// pages' own behaviour (what they send, what they show) is tested fast and
// exactly; the end-to-end test does the same against the real gatewayd.
type standIn struct {
	mu       sync.Mutex
	password string
	sessions map[string]string // cookie → CSRF token
	writes   []string          // "METHOD path" of every write that passed the CSRF check
	conf     string
	history  []map[string]any
	bridges  []map[string]any
	users    []string
	apps     []map[string]any
	devices  []map[string]any
	// down names API paths (prefixes) that answer 503, as a part that is
	// not running does.
	down []string
	// hold, when set, keeps a config save at its wait step until closed.
	hold chan struct{}
	subs map[chan string]struct{}
	flow int
	// lastPut is the body of the last PUT /api/bridges/:name.
	lastPut map[string]any
}

func newStandIn() *standIn {
	now := time.Now().UTC()
	return &standIn{
		sessions: map[string]string{},
		conf:     "# mosquitto.conf\nper_listener_settings false\n\nlistener 1883\nallow_anonymous true\n\npersistence true\n",
		users:    []string{"alice", "bob"},
		apps: []map[string]any{
			{"name": "mqtt", "status": "online", "pid": 4242, "uptime_s": 3725.0, "restarts": 1, "memory_bytes": 14680064, "ready": true, "command": "/usr/bin/gatewayd", "args": []string{"broker", "--config", "/etc/mosquitto/mosquitto.conf"}},
			{"name": "home-assistant", "status": "errored", "pid": 0, "uptime_s": 0.0, "restarts": 7, "memory_bytes": 0, "ready": false, "last_error": "exec: \"hass\": executable file not found in $PATH", "command": "hass"},
		},
		bridges: []map[string]any{{
			"name": "cloud", "line": 9, "addresses": []map[string]any{{"host": "mqtt.example.net", "port": 8883}},
			"topics":          []map[string]any{{"pattern": "sensors/#", "direction": "out", "qos": 1, "local_prefix": "", "remote_prefix": "home/"}},
			"remote_username": "box", "has_password": true, "protocol_version": "mqttv311", "clean_session": false, "notifications": true,
			"ca_cert": "cloud-ca.pem",
			"live":    map[string]any{"name": "cloud", "state": "up", "address": "mqtt.example.net:8883", "last_error": "", "messages_in": 12, "messages_out": 340, "queued": 0, "since": now.Add(-time.Hour).Format(time.RFC3339)},
		}},
		devices: []map[string]any{
			{"id": "0x00158d0001a2b3c4", "name": "Kitchen sensor", "manufacturer": "Xiaomi", "model": "WSDCGQ11LM", "sources": []string{"zigbee2mqtt"}, "availability": "online", "address": "", "last_seen": now.Add(-30 * time.Second).Format(time.RFC3339),
				"entities": []map[string]any{{"id": "k_t", "component": "sensor", "name": "Temperature", "source": "zigbee2mqtt", "state_topic": "zigbee2mqtt/kitchen", "device_class": "temperature", "unit": "°C"}}},
			{"id": "tasmota_plug_1", "name": "Desk plug", "model": "Sonoff S26", "sources": []string{"tasmota"}, "availability": "offline", "address": "192.168.1.41", "last_seen": now.Add(-2 * time.Hour).Format(time.RFC3339)},
		},
		subs: map[chan string]struct{}{},
	}
}

func (s *standIn) json(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *standIn) publish(event string, v any) {
	b, _ := json.Marshal(v)
	msg := "event: " + event + "\ndata: " + string(b) + "\n\n"
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.subs {
		select {
		case c <- msg:
		default:
		}
	}
}

// flowStep publishes one step of a config change, as the real API does.
func (s *standIn) flowStep(id, kind, step, status string) {
	s.publish("flow", map[string]any{"flow": id, "kind": kind, "step": step, "status": status, "message": step + " " + status})
}

func (s *standIn) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", pages.Handler(pages.Options{Version: "test"}))
	session := func(r *http.Request) (string, bool) {
		c, err := r.Cookie("gw_session")
		if err != nil {
			return "", false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		tok, ok := s.sessions[c.Value]
		return tok, ok
	}
	login := func(w http.ResponseWriter) {
		id := fmt.Sprintf("s%d", time.Now().UnixNano())
		tok := "csrf-" + id
		s.mu.Lock()
		s.sessions[id] = tok
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "gw_session", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		s.json(w, 200, map[string]any{"ok": true, "csrf_token": tok})
	}
	readJSON := func(r *http.Request) map[string]any {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		return m
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /api/session", func(w http.ResponseWriter, r *http.Request) {
		tok, ok := session(r)
		s.mu.Lock()
		setup := s.password == ""
		s.mu.Unlock()
		s.json(w, 200, map[string]any{"setup_needed": setup, "logged_in": ok, "origin": "lan", "csrf_token": tok})
	})
	api.HandleFunc("POST /api/setup", func(w http.ResponseWriter, r *http.Request) {
		m := readJSON(r)
		s.mu.Lock()
		if s.password != "" {
			s.mu.Unlock()
			s.json(w, 409, map[string]any{"error": "a password is set already"})
			return
		}
		s.password, _ = m["password"].(string)
		s.mu.Unlock()
		login(w)
	})
	api.HandleFunc("POST /api/login", func(w http.ResponseWriter, r *http.Request) {
		m := readJSON(r)
		s.mu.Lock()
		good := m["password"] == s.password
		s.mu.Unlock()
		if !good {
			s.json(w, 401, map[string]any{"error": "wrong password"})
			return
		}
		login(w)
	})
	api.HandleFunc("POST /api/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "gw_session", Value: "", Path: "/", MaxAge: -1})
		s.json(w, 200, map[string]any{"ok": true})
	})
	api.HandleFunc("GET /api/apps", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.json(w, 200, s.apps)
	})
	api.HandleFunc("GET /api/apps/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range s.apps {
			if a["name"] == r.PathValue("name") {
				s.json(w, 200, a)
				return
			}
		}
		s.json(w, 404, map[string]any{"error": "no app named " + r.PathValue("name")})
	})
	api.HandleFunc("POST /api/apps/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		var out []map[string]any
		for _, a := range s.apps {
			if a["name"] == r.PathValue("name") {
				switch r.PathValue("action") {
				case "stop":
					a["status"], a["pid"], a["uptime_s"] = "stopped", 0, 0.0
				default:
					a["status"], a["pid"], a["uptime_s"] = "online", 5151, 0.0
					a["restarts"] = a["restarts"].(int) + 1
				}
				out = append(out, a)
			}
		}
		s.mu.Unlock()
		for _, a := range out {
			s.publish("app", a)
		}
		s.json(w, 200, out)
	})
	api.HandleFunc("GET /api/apps/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("since") != "" {
			s.json(w, 200, map[string]any{"name": r.PathValue("name"), "file": "/var/log/gateway/mqtt.log", "lines": []string{}, "offset": 120})
			return
		}
		s.json(w, 200, map[string]any{"name": r.PathValue("name"), "file": "/var/log/gateway/mqtt.log", "lines": []string{
			"2026-11-23T09:19:10.215Z level=INFO msg=\"broker started\"", "2026-11-23T09:19:10.300Z level=INFO msg=\"listener up\" address=:1883"}, "offset": 120})
	})
	api.HandleFunc("GET /api/broker/stats", func(w http.ResponseWriter, r *http.Request) {
		s.json(w, 200, s.stats())
	})
	api.HandleFunc("GET /api/devices", func(w http.ResponseWriter, r *http.Request) {
		s.json(w, 200, s.devices)
	})
	api.HandleFunc("GET /api/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, d := range s.devices {
			if d["id"] == r.PathValue("id") {
				s.json(w, 200, d)
				return
			}
		}
		s.json(w, 404, map[string]any{"error": "no device " + r.PathValue("id")})
	})
	api.HandleFunc("GET /api/broker/config", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.json(w, 200, map[string]any{"text": s.conf, "file": "/etc/mosquitto/mosquitto.conf"})
	})
	api.HandleFunc("POST /api/broker/config/check", func(w http.ResponseWriter, r *http.Request) {
		errs, warns := checkConf(readJSON(r)["text"].(string))
		s.json(w, 200, map[string]any{"ok": len(errs) == 0, "errors": errs, "warnings": warns})
	})
	api.HandleFunc("PUT /api/broker/config", func(w http.ResponseWriter, r *http.Request) {
		text := readJSON(r)["text"].(string)
		s.mu.Lock()
		s.flow++
		id := fmt.Sprintf("f-%d", s.flow)
		hold := s.hold
		s.mu.Unlock()
		s.flowStep(id, "config", "check", "running")
		if errs, _ := checkConf(text); len(errs) > 0 {
			s.flowStep(id, "config", "check", "failed")
			s.json(w, 422, map[string]any{"error": fmt.Sprintf("mosquitto.conf has %d errors; nothing was written", len(errs)), "errors": errs})
			return
		}
		s.flowStep(id, "config", "check", "ok")
		s.flowStep(id, "config", "write", "running")
		s.flowStep(id, "config", "write", "ok")
		s.flowStep(id, "config", "restart", "running")
		s.flowStep(id, "config", "restart", "ok")
		s.flowStep(id, "config", "wait", "running")
		if hold != nil {
			<-hold
		}
		if strings.Contains(text, "listener 1") && strings.Contains(text, "taken") {
			s.flowStep(id, "config", "wait", "failed")
			s.flowStep(id, "config", "rollback", "running")
			s.flowStep(id, "config", "rollback", "ok")
			s.json(w, 409, map[string]any{"error": "the broker did not start with the new config; the previous one is back in force",
				"rolled_back": true, "broker_error": "error: listen tcp :1: bind: permission denied", "log": []string{"last log line"}, "flow": id})
			return
		}
		s.mu.Lock()
		s.history = append([]map[string]any{{"id": fmt.Sprintf("v%d", len(s.history)+1), "time": time.Now().UTC().Format(time.RFC3339), "size": len(s.conf), "reason": "before PUT /api/broker/config", "text": s.conf}}, s.history...)
		s.conf = text
		s.mu.Unlock()
		s.flowStep(id, "config", "wait", "ok")
		s.flowStep(id, "config", "done", "ok")
		s.json(w, 200, map[string]any{"ok": true, "flow": id, "version": "v", "unchanged": false})
	})
	api.HandleFunc("GET /api/broker/config/history", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		list := []map[string]any{}
		for _, h := range s.history {
			list = append(list, map[string]any{"id": h["id"], "time": h["time"], "size": h["size"], "reason": h["reason"]})
		}
		s.json(w, 200, list)
	})
	api.HandleFunc("GET /api/broker/config/history/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, h := range s.history {
			if h["id"] == r.PathValue("id") {
				s.json(w, 200, h)
				return
			}
		}
		s.json(w, 404, map[string]any{"error": "no version " + r.PathValue("id")})
	})
	api.HandleFunc("POST /api/broker/config/history/{id}/restore", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, h := range s.history {
			if h["id"] == r.PathValue("id") {
				s.conf = h["text"].(string)
				s.json(w, 200, map[string]any{"ok": true, "flow": "f-r"})
				return
			}
		}
		s.json(w, 404, map[string]any{"error": "no version"})
	})
	api.HandleFunc("GET /api/bridges", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.json(w, 200, s.bridges)
	})
	api.HandleFunc("POST /api/bridges", func(w http.ResponseWriter, r *http.Request) {
		m := readJSON(r)
		if m["name"] == "bad-port" {
			s.json(w, 400, map[string]any{"error": "bad field", "errors": []map[string]any{{"field": "topics[0].qos", "message": "qos must be 0, 1 or 2"}}})
			return
		}
		m["live"] = map[string]any{"name": m["name"], "state": "down", "address": "", "last_error": "connection refused", "messages_in": 0, "messages_out": 0, "queued": 0}
		s.mu.Lock()
		s.bridges = append(s.bridges, m)
		s.mu.Unlock()
		s.json(w, 201, map[string]any{"ok": true, "flow": "f-b"})
	})
	api.HandleFunc("PUT /api/bridges/{name}", func(w http.ResponseWriter, r *http.Request) {
		m := readJSON(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, br := range s.bridges {
			if br["name"] == r.PathValue("name") {
				s.lastPut = m
				for k, v := range m { // a field left out keeps its value
					br[k] = v
				}
				s.json(w, 200, map[string]any{"ok": true, "flow": "f-p"})
				return
			}
		}
		s.json(w, 404, map[string]any{"error": "no bridge " + r.PathValue("name")})
	})
	api.HandleFunc("DELETE /api/bridges/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, br := range s.bridges {
			if br["name"] == r.PathValue("name") {
				s.bridges = append(s.bridges[:i], s.bridges[i+1:]...)
				s.json(w, 200, map[string]any{"ok": true, "flow": "f-d"})
				return
			}
		}
		s.json(w, 404, map[string]any{"error": "no bridge " + r.PathValue("name")})
	})
	api.HandleFunc("DELETE /api/broker/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, u := range s.users {
			if u == r.PathValue("name") {
				s.users = append(s.users[:i], s.users[i+1:]...)
				s.json(w, 200, map[string]any{"ok": true, "flow": "f-u"})
				return
			}
		}
		s.json(w, 404, map[string]any{"error": "no user " + r.PathValue("name")})
	})
	api.HandleFunc("GET /api/broker/users", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.json(w, 200, map[string]any{"password_file": "/etc/mosquitto/passwd", "users": s.users, "acl_file": "/etc/mosquitto/acl", "acl_text": "user alice\ntopic readwrite home/#\n"})
	})
	api.HandleFunc("POST /api/broker/users", func(w http.ResponseWriter, r *http.Request) {
		m := readJSON(r)
		s.mu.Lock()
		s.users = append(s.users, m["username"].(string))
		s.mu.Unlock()
		s.json(w, 200, map[string]any{"ok": true, "flow": "f-u"})
	})
	api.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		c := make(chan string, 64)
		s.mu.Lock()
		s.subs[c] = struct{}{}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.subs, c)
			s.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fl := w.(http.Flusher)
		fl.Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case m := <-c:
				_, _ = fmt.Fprint(w, m)
				fl.Flush()
			}
		}
	})
	// Every API route needs a session except the few docs/API.md names,
	// and every write needs the session's CSRF token.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			mux.ServeHTTP(w, r)
			return
		}
		open := map[string]bool{"/api/session": true, "/api/setup": true, "/api/login": true, "/api/logout": true}
		tok, ok := session(r)
		if !open[r.URL.Path] {
			if !ok {
				s.json(w, 401, map[string]any{"error": "log in first", "login": true})
				return
			}
			if r.Method != http.MethodGet && r.Header.Get("X-CSRF-Token") != tok {
				t.Errorf("%s %s: CSRF header %q, want the session's %q", r.Method, r.URL.Path, r.Header.Get("X-CSRF-Token"), tok)
				s.json(w, 403, map[string]any{"error": "missing or wrong CSRF token"})
				return
			}
		}
		s.mu.Lock()
		if r.Method != http.MethodGet {
			s.writes = append(s.writes, r.Method+" "+r.URL.Path)
		}
		for _, d := range s.down {
			if strings.HasPrefix(r.URL.Path, d) {
				s.mu.Unlock()
				s.json(w, 503, map[string]any{"error": "discovery is not running"})
				return
			}
		}
		s.mu.Unlock()
		api.ServeHTTP(w, r)
	})
}

func (s *standIn) stats() map[string]any {
	now := time.Now().UTC()
	var hist []map[string]any
	for i := 59; i >= 0; i-- {
		x := float64(60 - i)
		hist = append(hist, map[string]any{"t": now.Add(-time.Duration(i) * 10 * time.Second).Format(time.RFC3339), "in_per_s": 2 + float64(int(x)%7), "out_per_s": 3 + float64(int(x*3)%5)})
	}
	return map[string]any{
		"broker":  map[string]any{"up": true, "clients_connected": 4, "retained": 17, "messages_in_per_s": 2.5, "messages_out_per_s": 3.1},
		"history": hist,
		"bridges": map[string]any{"total": 1, "up": 1, "down": 0},
		"apps":    map[string]any{"total": 2, "online": 1, "errored": 1},
		"devices": len(s.devices),
	}
}

// checkConf finds the stand-in's one kind of mistake: a "listener" line
// without a port, and warns about "autosave_interval 0".
func checkConf(text string) (errs, warns []map[string]any) {
	errs, warns = []map[string]any{}, []map[string]any{}
	for i, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 1 && f[0] == "listener" {
			errs = append(errs, map[string]any{"line": i + 1, "file": "mosquitto.conf", "option": "listener", "message": "listener needs a port"})
		}
		if len(f) == 2 && f[0] == "autosave_interval" && f[1] == "0" {
			warns = append(warns, map[string]any{"line": i + 1, "file": "mosquitto.conf", "option": "autosave_interval", "message": "0 saves only at shutdown"})
		}
	}
	return errs, warns
}

func (s *standIn) wrote(what string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.writes {
		if w == what {
			return true
		}
	}
	return false
}

// TestPagesWithStandInAPI walks every page against the stand-in API: the
// first visit's setup, login, the overview's figures, an app action, the
// editor's marks beside lines, the save steps as they happen, a roll back,
// the bridge form's request, device search, a user added, and the phone
// width of each page.
func TestPagesWithStandInAPI(t *testing.T) {
	s := newStandIn()
	srv := httptest.NewServer(s.handler(t))
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv.URL)

	// First visit: any page sends to setup.
	b.do("open /", chromedpNavigate(srv.URL+"/apps"))
	b.waitJS("the setup page", `location.pathname === "/setup" && document.body.dataset.ready === "true"`)
	b.fill("#setup-password", "short")
	b.fill("#setup-confirm", "short")
	b.click("#setup-form button[type=submit]")
	b.waitText("#setup-error", "at least 8 characters")
	if s.wrote("POST /api/setup") {
		t.Fatal("a too short password was sent")
	}
	b.fill("#setup-password", "correct horse")
	b.fill("#setup-confirm", "correct horse")
	b.click("#setup-form button[type=submit]")
	b.waitJS("the overview after setup", `location.pathname === "/" && document.body.dataset.ready === "true"`)
	b.waitText("#status", "admin password is set")

	// Log out, then a wrong and a right password.
	b.click("#logout")
	b.waitJS("the login page", `location.pathname === "/login" && document.body.dataset.ready === "true"`)
	b.fill("#login-password", "wrong one")
	b.do("submit", chromedpSubmit("#login-form"))
	b.waitText("#login-error", "wrong password")
	b.fill("#login-password", "correct horse")
	b.do("submit", chromedpSubmit("#login-form"))
	b.waitJS("the overview after login", `location.pathname === "/" && document.body.dataset.ready === "true"`)

	// Overview: figures from stats, the graph drawn, apps listed.
	b.waitJS("the broker tile", `document.querySelector("#t-broker .badge").dataset.state === "up"`)
	b.waitText("#t-clients dd", "4")
	b.waitText("#t-retained dd", "17")
	b.waitText("#t-devices dd", "2")
	b.waitJS("the graph", `document.querySelectorAll("#rate-graph path.line").length === 2`)
	b.waitText("#rate-desc", "peak")
	b.waitText("#ov-apps", "home-assistant")

	// Apps: restart one, and see the answer.
	b.open("/apps")
	b.waitJS("the apps table", `document.querySelector('tr[data-app="home-assistant"]') !== null`)
	b.click(`tr[data-app="home-assistant"] button[data-action="restart"]`)
	b.waitText("#status", "home-assistant restarted: now online")
	b.waitJS("the row online", `document.querySelector('tr[data-app="home-assistant"] .badge').dataset.state === "online"`)
	if !s.wrote("POST /api/apps/home-assistant/restart") {
		t.Error("no restart request reached the API")
	}
	// The keyboard alone reaches an action and presses it.
	b.open("/apps")
	b.waitJS("the apps table", `document.querySelector('tr[data-app="mqtt"] button[data-action="stop"]') !== null`)
	reached := false
	for i := 0; i < 40 && !reached; i++ {
		b.do("press Tab", chromedp.KeyEvent(kb.Tab))
		reached, _ = eval[bool](b, `document.activeElement === document.querySelector('tr[data-app="mqtt"] button[data-action="stop"]')`)
		if i == 0 {
			if ok, _ := eval[bool](b, `document.activeElement.classList.contains("skip") && document.activeElement.getBoundingClientRect().left >= 0`); !ok {
				t.Error("the first Tab does not show the skip link")
			}
		}
	}
	if !reached {
		t.Fatal("40 presses of Tab did not reach mqtt's Stop button")
	}
	if outline, _ := eval[string](b, `getComputedStyle(document.activeElement).outlineStyle`); outline == "none" {
		t.Error("the focused button shows no outline")
	}
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitText("#status", "mqtt stopped: now stopped")
	b.open("/apps/mqtt")
	b.waitText("#log", "listener up")

	// Broker config: an error and a warning beside their lines.
	b.open("/broker/config")
	b.waitJS("the editor filled", `document.querySelector("#conf").value.includes("listener 1883")`)
	b.setValue("#conf", "# mosquitto.conf\nlistener\nautosave_interval 0\n")
	b.click("#check")
	b.waitText("#status", "1 error and 1 warning")
	b.waitJS("line 2 marked as an error", `document.querySelector('#gutter [data-line="2"]').classList.contains("err")`)
	b.waitText(`#backdrop [data-line="2"] .msg`, "listener needs a port")
	b.waitText(`#backdrop [data-line="3"] .msg`, "0 saves only at shutdown")
	b.noSidewaysScroll("config with marks")
	// The listed error takes the caret to its line.
	b.click("#diag-list .err button")
	if caret, err := eval[int](b, `document.querySelector("#conf").selectionStart`); err != nil || caret != len("# mosquitto.conf\n") {
		t.Errorf("caret at %d (%v), want the start of line 2", caret, err)
	}

	// Save: each step shows while it happens; held at "wait" by the test.
	s.mu.Lock()
	s.hold = make(chan struct{})
	hold := s.hold
	s.mu.Unlock()
	b.setValue("#conf", "# mosquitto.conf\nlistener 1883\nlistener 1884\n")
	b.click("#save")
	b.waitJS("wait step running", `document.querySelector('#steps [data-step="wait"]').dataset.state === "running"`)
	b.waitJS("earlier steps done", `["check","write","restart"].every(s => document.querySelector('#steps [data-step="' + s + '"]').dataset.state === "done")`)
	b.waitText("#status", "Wait until the broker is ready")
	close(hold)
	b.waitText("#status", "Saved: the broker runs on the new file")
	b.waitJS("wait step done", `document.querySelector('#steps [data-step="wait"]').dataset.state === "done"`)
	s.mu.Lock()
	s.hold = nil
	conf := s.conf
	s.mu.Unlock()
	if conf != "# mosquitto.conf\nlistener 1883\nlistener 1884\n" {
		t.Errorf("saved text %q", conf)
	}
	// History shows the earlier version with its diff.
	b.waitJS("a history entry", `document.querySelector("#history button") !== null`)
	b.click("#history button")
	b.waitText("#diff .del", "listener 1884")
	b.waitText("#diff .add", "persistence true")
	// A save the broker refuses is rolled back and says why.
	b.setValue("#conf", "listener 1 taken\n")
	b.click("#save")
	b.waitText("#status", "previous file is back in force")
	b.waitText("#broker-error", "bind: permission denied")
	b.waitJS("rollback step shown", `document.querySelector('#steps [data-step="rollback"]').dataset.state === "done"`)
	// A save with an error writes nothing and marks the line.
	b.setValue("#conf", "listener\n")
	b.click("#save")
	b.waitText("#status", "nothing was written")
	b.waitJS("line 1 marked", `document.querySelector('#gutter [data-line="1"]').classList.contains("err")`)

	// Bridges: live state listed; a new one through the form.
	b.open("/bridges")
	b.waitJS("cloud listed up", `document.querySelector('tr[data-bridge="cloud"] .badge').dataset.state === "up"`)
	b.open("/bridges/new")
	if shown, _ := eval[bool](b, `document.querySelector("#b-ca-remove").offsetParent !== null`); shown {
		t.Error("a new bridge offers to remove a CA file it does not have")
	}
	b.fill("#b-name", "office")
	b.fill("#b-addresses", "127.0.0.1:18830 [::1]:18831")
	b.fill(".topic-row [name=pattern]", "office/#")
	b.do("choose direction", chromedpSetSelect(".topic-row [name=direction]", "both"))
	b.do("choose qos", chromedpSetSelect(".topic-row [name=qos]", "1"))
	b.fill(".topic-row [name=remote_prefix]", "remote/")
	b.click("#add-topic")
	b.fill(".topic-row:nth-of-type(2) [name=pattern]", "alerts/+")
	b.fill("#b-user", "gw")
	b.fill("#b-pass", "secret")
	b.click("#bridge-save")
	b.waitJS("back on the list", `location.pathname === "/bridges" && document.querySelector('tr[data-bridge="office"]') !== null`)
	b.waitText("#status", "Bridge office saved")
	s.mu.Lock()
	got, _ := json.Marshal(s.bridges[1])
	s.mu.Unlock()
	for _, want := range []string{`"name":"office"`, `"addresses":[{"host":"127.0.0.1","port":18830},{"host":"::1","port":18831}]`,
		`{"direction":"both","local_prefix":"","pattern":"office/#","qos":1,"remote_prefix":"remote/"}`, `"pattern":"alerts/+"`,
		`"remote_username":"gw"`, `"remote_password":"secret"`, `"protocol_version":"mqttv311"`, `"notifications":true`, `"clean_session":false`} {
		if !contains(string(got), want) {
			t.Errorf("bridge sent %s, lacks %s", got, want)
		}
	}
	// A field the API refuses is marked beside its field.
	b.open("/bridges/new")
	b.fill("#b-name", "bad-port")
	b.fill("#b-addresses", "example.net:1883")
	b.fill(".topic-row [name=pattern]", "x/#")
	b.click("#bridge-save")
	b.waitText("#b-topics-err", "Topic row 1: qos must be 0, 1 or 2")
	b.waitJS("qos marked invalid", `document.querySelector(".topic-row [name=qos]").getAttribute("aria-invalid") === "true"`)
	// A bad address is caught before anything is sent.
	b.fill("#b-addresses", "example.net:99999")
	b.click("#bridge-save")
	b.waitText("#b-addr-err", "is not 1-65535")

	// Edit: the form shows the bridge; an empty password keeps it (the
	// field is left out of the PUT).
	b.open("/bridges/cloud")
	b.waitJS("the form filled", `document.querySelector("#b-addresses").value === "mqtt.example.net:8883" && document.querySelector(".topic-row [name=remote_prefix]").value === "home/"`)
	if v, _ := eval[string](b, `document.querySelector(".topic-row [name=qos]").value`); v != "1" {
		t.Errorf("qos shown %q, want 1", v)
	}
	b.waitText("#b-ca-now", "cloud-ca.pem")
	b.waitJS("the remove-CA choice shown", `document.querySelector("#b-ca-remove").offsetParent !== null`)
	b.fill("#b-addresses", "mqtt.example.net:8883 backup.example.net:8883")
	b.click("#bridge-save")
	b.waitText("#status", "Bridge cloud saved")
	s.mu.Lock()
	put := s.lastPut
	s.mu.Unlock()
	if _, sent := put["remote_password"]; sent {
		t.Errorf("an empty password field was sent: %v", put["remote_password"])
	}
	if a, _ := json.Marshal(put["addresses"]); string(a) != `[{"host":"mqtt.example.net","port":8883},{"host":"backup.example.net","port":8883}]` {
		t.Errorf("addresses sent %s", a)
	}
	// Delete takes two presses.
	b.open("/bridges/office")
	b.waitJS("the form filled", `document.querySelector("#b-name").value === "office"`)
	b.click("#bridge-delete")
	b.waitText("#status", "Press the delete button again")
	if s.wrote("DELETE /api/bridges/office") {
		t.Fatal("one press deleted the bridge")
	}
	b.click("#bridge-delete")
	b.waitJS("back on the list without office", `location.pathname === "/bridges" && document.querySelector('tr[data-bridge="cloud"]') !== null && document.querySelector('tr[data-bridge="office"]') === null`)

	// Devices: search filters, a device's page lists its topics.
	b.open("/devices")
	b.waitText("#dev-count", "Showing 2 of 2")
	b.fill("#dev-q", "kitchen")
	b.waitText("#dev-count", "Showing 1 of 2")
	b.do("filter offline", chromedpSetSelect("#dev-avail", "offline"))
	b.waitText("#devices-table tbody", "No device matches")
	b.open("/devices/0x00158d0001a2b3c4")
	b.waitText("#entities-table", "zigbee2mqtt/kitchen")
	b.waitText("h1", "Kitchen sensor")

	// Users: add one.
	b.open("/broker/users")
	b.waitText("#acl", "topic readwrite home/#")
	b.fill("#u-name", "carol")
	b.fill("#u-pass", "pw")
	b.click("#user-form button[type=submit]")
	b.waitText("#status", "User carol saved")
	b.waitJS("carol listed", `document.querySelector('#users [data-user="carol"]') !== null`)
	b.click(`#users [data-user="bob"] button`)
	b.waitText("#status", "Press again to remove bob")
	b.click(`#users [data-user="bob"] button`)
	b.waitText("#status", "User bob removed")
	b.waitJS("bob gone", `document.querySelector('#users [data-user="bob"]') === null`)

	// A part that is not running shows as unavailable, not broken.
	s.mu.Lock()
	s.down = []string{"/api/devices", "/api/broker/stats"}
	s.mu.Unlock()
	b.open("/devices")
	b.waitText("#devices-table tbody", "discovery is not running")
	b.waitJS("an unavailable badge", `document.querySelector('#devices-table [data-state="unavailable"]') !== null`)
	b.open("/")
	b.waitJS("the overview's tiles unavailable", `document.querySelectorAll('.tile [data-state="unavailable"]').length === 6`)
	b.waitText("#rate-desc", "unavailable")
	b.waitText("#ov-apps", "mqtt") // the rest of the page still works
	s.mu.Lock()
	s.down = nil
	s.mu.Unlock()

	// Every page fits a phone (and is photographed, for a look by eye:
	// STANDIN_SCREENSHOTS=folder keeps them).
	b.shots = os.Getenv("STANDIN_SCREENSHOTS")
	for _, p := range []struct{ name, path, ready string }{
		{"overview", "/", `document.querySelectorAll("#rate-graph path.line").length === 2`},
		{"apps", "/apps", `document.querySelector("tr[data-app]") !== null`},
		{"app", "/apps/mqtt", `document.querySelector("#log").textContent.includes("listener up")`},
		{"config", "/broker/config", `document.querySelector("#history button") !== null`},
		{"bridges", "/bridges", `document.querySelector("tr[data-bridge] .badge") !== null`},
		{"bridge-edit", "/bridges/cloud", `document.querySelector("#b-name").value === "cloud"`},
		{"devices", "/devices", `document.querySelector("tr[data-device]") !== null`},
		{"device", "/devices/0x00158d0001a2b3c4", `document.querySelector("#entities-table tbody tr") !== null`},
		{"users", "/broker/users", `document.querySelector("#users [data-user]") !== null`},
	} {
		b.pageBoth(p.name, p.path, p.ready)
	}
}
