package browsertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/discovery/registry"
	gwauth "github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/webui"
	"github.com/homebox/gateway/webui/api"
	"github.com/homebox/gateway/webui/auth"
	"github.com/homebox/gateway/webui/confflow"
	"github.com/homebox/gateway/webui/pages"
)

// pagesEnv is the real console app (webui.New with the real login, config
// flow, history and pages) in a temporary root, over the fakes of
// fakes_test.go where a real part would need a box: the supervisor, the
// device registry and the broker's $SYS figures.
type pagesEnv struct {
	root, conf, passwd, certs, acl string
	seed                           string // mosquitto.conf as the box starts

	apps    *fakeApps
	stats   *fakeStats
	devices *fakeDevices
	topics  *fakeTopics
	spy     *spy

	url string // the whole console
	// bareURL is the same box with discovery and the broker's figures not
	// running: the same login, flow and apps, no Devices and no Stats.
	bareURL string

	clientOnce sync.Once
	client     *http.Client
}

const adminPassword = "correct horse"

func newPagesEnv(t testing.TB) *pagesEnv {
	t.Helper()
	root := t.TempDir()
	e := &pagesEnv{
		root:   root,
		conf:   filepath.Join(root, "etc/mosquitto/mosquitto.conf"),
		passwd: filepath.Join(root, "etc/mosquitto/passwd"),
		certs:  filepath.Join(root, "etc/mosquitto/certs"),
		spy:    &spy{},
	}
	acl := filepath.Join(root, "etc/mosquitto/acl")
	e.acl = acl
	brokerDir := filepath.Join(root, "data")
	if err := os.MkdirAll(brokerDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.seed = "# mosquitto.conf\nper_listener_settings false\n\nlistener 1883\nallow_anonymous true\n" +
		"password_file " + e.passwd + "\nacl_file " + acl + "\n\npersistence true\n\n" +
		"connection cloud\naddress mqtt.example.net:8883\ntopic sensors/# out 1 \"\" home/\n" +
		"remote_username box\nremote_password s3cret\nbridge_cafile " + filepath.Join(e.certs, "cloud-ca.pem") + "\n"
	testkit.WriteFile(t, e.conf, e.seed)
	testkit.WriteFile(t, acl, "user alice\ntopic readwrite home/#\n")
	ca, err := os.ReadFile(testkit.NewPKI(t).CAFile)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(e.certs, "cloud-ca.pem"), string(ca))
	users := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		if users[u], err = gwauth.HashPBKDF2(u + "'s password"); err != nil {
			t.Fatal(err)
		}
	}
	text, err := gwauth.PasswordFileText(users)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, e.passwd, string(text))

	// The apps the console showed before: a broker that has run an hour,
	// and Home Assistant in a crash loop.
	now := time.Now()
	e.apps = newFakeApps()
	t.Cleanup(e.apps.Close)
	logs := filepath.Join(root, "var/log/gateway")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	e.apps.add(supervisor.AppState{Name: "mqtt", Status: supervisor.StatusOnline, PID: 4242, Restarts: 1, Ready: true,
		MemoryBytes: 14680064, Command: "/usr/bin/gatewayd", Args: []string{"broker", "--config", e.conf}, Cwd: brokerDir,
		LogFile: filepath.Join(logs, "mqtt.log"), CreatedAt: now.Add(-2 * time.Hour)},
		now.Add(-3725*time.Second), unprivilegedBroker(e.conf), `level=INFO msg="broker started"`, `level=INFO msg="listener up" address=:1883`)
	code := 127
	e.apps.add(supervisor.AppState{Name: "home-assistant", Status: supervisor.StatusErrored, Restarts: 7,
		LastExitCode: &code, LastExitAt: now.Add(-time.Minute), LastError: `exec: "hass": executable file not found in $PATH`,
		Command: "hass", Cwd: brokerDir, LogFile: filepath.Join(logs, "home-assistant.log"), CreatedAt: now.Add(-2 * time.Hour), After: []string{"mqtt"}},
		now, nil)

	devices := &fakeDevices{list: []discovery.Device{
		{ID: "0x00158d0001a2b3c4", Name: "Kitchen sensor", Manufacturer: "Xiaomi", Model: "WSDCGQ11LM", Sources: []string{"zigbee2mqtt"},
			Availability: "online", FirstSeen: now.Add(-48 * time.Hour), LastSeen: now.Add(-30 * time.Second),
			Entities: []registry.Entity{{ID: "k_t", Component: "sensor", Name: "Temperature", Source: "zigbee2mqtt",
				StateTopic: "zigbee2mqtt/kitchen", DeviceClass: "temperature", Unit: "°C"}}},
		{ID: "tasmota_plug_1", Name: "Desk plug", Model: "Sonoff S26", Sources: []string{"tasmota"}, Availability: "offline",
			Address: "192.168.1.41", FirstSeen: now.Add(-72 * time.Hour), LastSeen: now.Add(-2 * time.Hour)},
	}}

	snap := sysstats.Snapshot{Up: true, Version: "gateway test", UptimeS: 3725, ClientsConnected: 4, Retained: 17, Subscriptions: 9,
		InPerS: 2.5, OutPerS: 3.1, Updated: now.UTC(),
		Bridges: map[string]sysstats.Bridge{"cloud": {Name: "cloud", State: "up", Address: "mqtt.example.net:8883",
			MessagesIn: 12, MessagesOut: 340, Since: now.Add(-time.Hour).UTC()}}}
	for i := 59; i >= 0; i-- {
		x := 60 - i
		snap.History = append(snap.History, sysstats.Point{T: now.Add(-time.Duration(i) * 10 * time.Second).UTC(),
			InPerS: float64(2 + x%7), OutPer: float64(3 + (3*x)%5)})
	}
	e.stats = newFakeStats(snap)

	login, err := auth.New(auth.Options{Path: filepath.Join(root, "data/gateway/console.json"), BcryptCost: bcrypt.MinCost,
		// A wrong password slows the next login by a millisecond only: the
		// test types the right one at once.
		SlowBase: time.Millisecond, SlowMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	events := webui.NewEvents()
	flow := confflow.New(confflow.Options{
		Apps: e.apps, ConfPath: e.conf,
		History:      confflow.NewHistory(filepath.Join(root, "data/gateway/config-history"), confflow.DefaultKeep),
		ReadyTimeout: 10 * time.Second, Settle: 100 * time.Millisecond,
		OnStep: func(s confflow.Step) { events.Publish("flow", api.FlowStep(s)) },
	})
	done := make(chan struct{})
	pg := pages.Handler(pages.Options{Version: "test"})
	console := func(devs webui.Devices, stats webui.Stats) *echo.Echo {
		var tp webui.Topics
		if devs != nil {
			tp = e.topics
		}
		return webui.New(webui.Deps{Apps: e.apps, Devices: devs, Topics: tp, Version: "test", Middleware: []echo.MiddlewareFunc{e.spy.middleware},
			Pages: pg, Console: &webui.Console{Auth: login, Flow: flow, Stats: stats, Events: events, CertsDir: e.certs, Done: done}})
	}
	e.devices = devices
	e.topics = newFakeTopics()
	e.url = serveLAN(t, console(devices, e.stats))
	e.bareURL = serveLAN(t, console(nil, nil))
	// Ends the event streams before the servers wait for their requests.
	t.Cleanup(func() { close(done) })
	return e
}

// serveLAN serves h on 127.0.0.1:0 as the console's LAN listener does.
func serveLAN(t testing.TB, h http.Handler) string {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnContext = webui.ConnContext(webui.OriginLAN)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func (e *pagesEnv) readConf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bridge is the named bridge as the conf on disk says it.
func (e *pagesEnv) bridge(t *testing.T, name string) (mosquittoconf.Bridge, bool) {
	t.Helper()
	cfg, ds := mosquittoconf.Check("mosquitto.conf", []byte(e.readConf(t)), filepath.Join(e.root, "data"))
	if !ds.OK() {
		t.Fatalf("the conf on disk does not check: %v", ds.Errors)
	}
	for _, b := range cfg.Bridges {
		if b.Name == name {
			return b, true
		}
	}
	return mosquittoconf.Bridge{}, false
}

// apiGet asks the console's API as a second logged-in client of its own.
func (e *pagesEnv) apiGet(t *testing.T, path string) []byte {
	t.Helper()
	e.clientOnce.Do(func() {
		jar, _ := cookiejar.New(nil)
		e.client = &http.Client{Jar: jar, Timeout: 10 * time.Second}
		res, err := e.client.Post(e.url+"/api/login", "application/json", strings.NewReader(`{"password":"`+adminPassword+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("login of the test's own client: %s", res.Status)
		}
	})
	res, err := e.client.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, res.Status, b)
	}
	return b
}

// spy notes every write request the console gets, before its guard, so a
// test can tell what a page sent (or did not send).
type spy struct {
	mu     sync.Mutex
	writes []spied
}

type spied struct {
	what string // "METHOD /path"
	body []byte
}

func (s *spy) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(bytes.NewReader(body))
			s.mu.Lock()
			s.writes = append(s.writes, spied{what: r.Method + " " + r.URL.Path, body: body})
			s.mu.Unlock()
		}
		return next(c)
	}
}

// count is how many writes came in so far.
func (s *spy) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writes)
}

// sent says whether a page sent what ("METHOD /path"), and the last body.
func (s *spy) sent(what string) (bool, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.writes) - 1; i >= 0; i-- {
		if s.writes[i].what == what {
			return true, s.writes[i].body
		}
	}
	return false, nil
}

// TestPages walks every page against the real console app: the first
// visit's setup, login, the overview's figures (and their live update), app
// actions (with the keyboard too), the log tail, the editor's marks beside
// lines, a save's steps as they happen, a roll back with the broker's own
// error, a save refused with line errors, history diff and restore, the
// bridge form (the remote password write-only), devices, broker users, a
// part that is not running, and every page at phone and desktop width.
func TestPages(t *testing.T) {
	e := newPagesEnv(t)
	b := newBrowser(t, e.url)

	// First visit: any page sends to setup.
	b.do("open /apps", chromedpNavigate(e.url+"/apps"))
	b.waitJS("the setup page", `location.pathname === "/setup" && document.body.dataset.ready === "true"`)
	b.fill("#setup-password", "short")
	b.fill("#setup-confirm", "short")
	b.click("#setup-form button[type=submit]")
	b.waitText("#setup-error", "at least 8 characters")
	if sent, _ := e.spy.sent("POST /api/setup"); sent {
		t.Fatal("a too short password was sent")
	}
	b.fill("#setup-password", adminPassword)
	b.fill("#setup-confirm", adminPassword)
	b.click("#setup-form button[type=submit]")
	b.waitJS("the overview after setup", `location.pathname === "/" && document.body.dataset.ready === "true"`)
	b.waitText("#status", "admin password is set")
	if _, err := os.Stat(filepath.Join(e.root, "data/gateway/console.json")); err != nil {
		t.Errorf("setup stored no password: %v", err)
	}

	// Log out, then a wrong and a right password.
	b.click("#logout")
	b.waitJS("the login page", `location.pathname === "/login" && document.body.dataset.ready === "true"`)
	b.fill("#login-password", "wrong one")
	b.do("submit", chromedpSubmit("#login-form"))
	b.waitText("#login-error", "wrong password")
	b.fill("#login-password", adminPassword)
	streams := e.stats.subscribed()
	b.do("submit", chromedpSubmit("#login-form"))
	b.waitJS("the overview after login", `location.pathname === "/" && document.body.dataset.ready === "true"`)

	// Overview: figures from stats, the graph drawn, apps listed.
	b.waitJS("the broker tile", `document.querySelector("#t-broker .badge").dataset.state === "up"`)
	b.waitText("#t-clients dd", "4")
	b.waitText("#t-retained dd", "17")
	b.waitText("#t-devices dd", "2")
	b.waitText("#t-bridges dd", "1 up")
	b.waitJS("the graph", `document.querySelectorAll("#rate-graph path.line").length === 2`)
	b.waitText("#rate-desc", "peak")
	b.waitText("#ov-apps", "home-assistant")
	// New figures reach the open page over the event stream.
	testkit.WaitFor(t, 10*time.Second, "the overview's event stream to follow the figures", func() bool { return e.stats.subscribed() > streams })
	e.stats.set(func(s *sysstats.Snapshot) { s.ClientsConnected = 5 })
	b.waitJS("the clients tile updated", `document.querySelector("#t-clients dd").textContent === "5"`)
	b.waitText("#t-clients-box", "all clients")
	// A broker that splits its figures: the owner's in the tiles, the
	// box's own and $SYS apart, each tile explained on hover.
	e.stats.set(func(s *sysstats.Snapshot) {
		s.Split, s.BoxClients, s.InPerS, s.OwnerInPerS, s.OwnerOutPerS, s.SysOutPerS, s.BoxOutPerS = true, 2, 9, 3, 6, 4, 1
	})
	b.waitJS("the owner's clients", `document.querySelector("#t-clients dd").textContent === "3"`)
	b.waitText("#t-clients-box", "+ 2 of the box")
	b.waitText("#t-rate dd", "3 in · 6 out")
	b.waitText("#t-rate-box", "$SYS 4 · box 1")
	if tip, _ := eval[string](b, `document.querySelector("#t-clients").title`); !strings.Contains(tip, "box's own clients") {
		t.Errorf("the clients tile explains %q", tip)
	}
	// Only the box's own client refused (logins on, say): no figures, and
	// why, never "down"; bridges unknown, not down.
	e.stats.set(func(s *sysstats.Snapshot) {
		s.Up, s.Error = false, "the broker refused the box's own login (not Authorized)"
	})
	b.waitJS("the broker tile says no figures", `document.querySelector("#t-broker .badge").textContent === "no figures"`)
	b.waitText("#t-broker-why", "refused the box's own login")
	b.waitText("#t-bridges dd", "unknown")
	b.waitText("#rate-desc", "No figures: the broker refused")
	e.stats.set(func(s *sysstats.Snapshot) { s.Up, s.Error = true, "" })
	b.waitJS("the broker tile up again", `document.querySelector("#t-broker .badge").dataset.state === "up"`)

	// Apps: restart the errored one; the answer says launching, the event
	// stream says when it is online.
	streams = e.apps.subscribed()
	b.open("/apps")
	b.waitJS("the apps table", `document.querySelector('tr[data-app="home-assistant"] .badge').dataset.state === "errored"`)
	testkit.WaitFor(t, 10*time.Second, "the apps page's event stream to follow the apps", func() bool { return e.apps.subscribed() > streams })
	release := e.apps.holdNext("home-assistant")
	b.click(`tr[data-app="home-assistant"] button[data-action="restart"]`)
	b.confirm("Restart home-assistant?")
	b.waitText("#status", "home-assistant restarted: now launching")
	b.waitJS("the row launching", `document.querySelector('tr[data-app="home-assistant"] .badge').dataset.state === "launching"`)
	release()
	b.waitJS("the row online", `document.querySelector('tr[data-app="home-assistant"] .badge').dataset.state === "online"`)
	if sent, _ := e.spy.sent("POST /api/apps/home-assistant/restart"); !sent {
		t.Error("no restart request reached the API")
	}
	if st, _ := e.apps.Get("home-assistant"); st.Restarts != 8 {
		t.Errorf("home-assistant restarted %d times, want 8", st.Restarts)
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
	// Stopping the broker asks first, naming what it drops; Cancel has
	// the focus, so Enter alone changes nothing.
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitJS("the dialog asks about the broker", `document.querySelector("#confirm").open && document.querySelector("#confirm-text").textContent.includes("every connected client")`)
	if focus, _ := eval[string](b, `document.activeElement.id`); focus != "confirm-cancel" {
		t.Errorf("focus in the dialog is on %q, want confirm-cancel", focus)
	}
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitText("#status", "Stopping mqtt cancelled.")
	if sent, _ := e.spy.sent("POST /api/apps/mqtt/stop"); sent {
		t.Fatal("a cancelled stop reached the API")
	}
	b.click(`tr[data-app="mqtt"] button[data-action="stop"]`)
	b.waitJS("the dialog open", `document.querySelector("#confirm").open`)
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitText("#status", "mqtt stopped: now stopped")
	if st, _ := e.apps.Get("mqtt"); st.Status != supervisor.StatusStopped {
		t.Errorf("mqtt is %s after Stop", st.Status)
	}
	// The app's page: its log's last lines, then what it prints since.
	b.open("/apps/mqtt")
	b.waitText("#log", "listener up")
	b.waitText("#log", "[gatewayd] stopped")
	e.apps.log("mqtt", "client kitchen-sensor connected")
	b.waitText("#log", "client kitchen-sensor connected")

	// Broker config: an error and a warning beside their lines.
	b.open("/broker/config")
	b.waitJS("the editor filled", `document.querySelector("#conf").value.includes("listener 1883")`)
	b.setValue("#conf", "# mosquitto.conf\nlistener\npersistence true yes\n")
	b.click("#check")
	b.waitText("#status", "1 error and 1 warning")
	// The editor jumps to the first error's line by itself.
	if caret, err := eval[int](b, `document.querySelector("#conf").selectionStart`); err != nil || caret != len("# mosquitto.conf\n") {
		t.Errorf("after Check the caret is at %d (%v), want the start of line 2, the first error", caret, err)
	}
	b.waitJS("line 2 marked as an error", `document.querySelector('#gutter [data-line="2"]').classList.contains("err")`)
	b.waitJS("line 3 marked as a warning", `document.querySelector('#gutter [data-line="3"]').classList.contains("warn")`)
	b.waitText(`#backdrop [data-line="2"] .msg`, "missing port")
	b.waitText(`#backdrop [data-line="3"] .msg`, `extra text "yes" ignored`)
	b.noSidewaysScroll("config with marks")
	// The listed error takes the caret to its line.
	b.click("#diag-list .err button")
	if caret, err := eval[int](b, `document.querySelector("#conf").selectionStart`); err != nil || caret != len("# mosquitto.conf\n") {
		t.Errorf("caret at %d (%v), want the start of line 2", caret, err)
	}

	// Save: each step shows while it happens; the broker is held launching
	// by the test, so the page sits at "wait".
	saved := strings.Replace(e.seed, "persistence true\n", "listener 1884\n", 1)
	release = e.apps.holdNext("mqtt")
	b.setValue("#conf", saved)
	b.click("#save")
	b.waitJS("wait step running", `document.querySelector('#steps [data-step="wait"]').dataset.state === "running"`)
	b.waitJS("earlier steps done", `["check","write","restart"].every(s => document.querySelector('#steps [data-step="' + s + '"]').dataset.state === "done")`)
	b.waitText("#status", "Wait until the broker is ready")
	if got := e.readConf(t); got != saved {
		t.Errorf("while the broker starts, the conf on disk is\n%s\nwant the new text", got)
	}
	release()
	b.waitText("#status", "Saved: the broker runs on the new file")
	b.waitJS("wait step done", `document.querySelector('#steps [data-step="wait"]').dataset.state === "done"`)
	if d := b.text(`#steps [data-step="wait"] .detail`); strings.Contains(d, "waiting") {
		t.Errorf("the done wait step still says %q", d)
	}
	if st, _ := e.apps.Get("mqtt"); !st.Ready {
		t.Errorf("mqtt after the save: %s, not ready", st.Status)
	}
	// History shows the earlier version with its diff.
	b.waitJS("a history entry", `document.querySelectorAll("#history button").length === 1`)
	b.click("#history button")
	b.waitText("#diff .del", "listener 1884")
	b.waitText("#diff .add", "persistence true")
	// A save the broker refuses is rolled back and says why, in the
	// broker's own words.
	b.setValue("#conf", saved+"listener 80\n")
	b.click("#save")
	b.waitText("#status", "previous file is back in force")
	b.waitText("#broker-error", "listen tcp :80: bind: permission denied")
	b.waitText("#broker-error", "exit status 1")
	b.waitJS("wait step failed", `document.querySelector('#steps [data-step="wait"]').dataset.state === "failed"`)
	b.waitJS("rollback step shown", `document.querySelector('#steps [data-step="rollback"]').dataset.state === "done"`)
	// The history says what each save changed and which was undone.
	b.waitJS("the rolled-back save in the history", `[...document.querySelectorAll("#history li")].some(li => li.textContent.includes("rolled back") && li.textContent.includes("Tried, then undone: + listener 80"))`)
	b.waitJS("the good save in the history", `[...document.querySelectorAll("#history li")].some(li => li.textContent.includes("Then changed: + listener 1884; − persistence true"))`)
	if got := e.readConf(t); got != saved {
		t.Errorf("after the roll back the conf on disk is\n%s\nwant the one saved before", got)
	}
	if st, _ := e.apps.Get("mqtt"); !st.Ready {
		t.Errorf("mqtt after the roll back: %s, not ready", st.Status)
	}
	// A save with an error writes nothing and marks the line.
	b.setValue("#conf", "listener\n")
	b.click("#save")
	b.waitText("#status", "nothing was written")
	b.waitJS("line 1 marked", `document.querySelector('#gutter [data-line="1"]').classList.contains("err")`)
	b.waitJS("the steps after check skipped", `document.querySelector('#steps [data-step="write"]').dataset.state === "skipped"`)
	if got := e.readConf(t); got != saved {
		t.Errorf("a refused save changed the conf on disk:\n%s", got)
	}
	// Restore the first version (the oldest in the list): its diff, then
	// the flow, and the editor shows the file as it is now.
	b.open("/broker/config")
	b.waitJS("the history listed", `document.querySelectorAll("#history button").length >= 2`)
	b.click("#history li:last-child button")
	b.waitText("#diff .add", "persistence true")
	b.click("#restore")
	b.waitText("#status", "Restored: the broker runs on the earlier version")
	b.waitJS("the editor shows the restored file", `document.querySelector("#conf").value.includes("persistence true") && !document.querySelector("#conf").value.includes("listener 1884")`)
	if got := e.readConf(t); got != e.seed {
		t.Errorf("after the restore the conf on disk is\n%s\nwant the first one", got)
	}

	// Bridges: live state listed; a new one through the form.
	b.open("/bridges")
	b.waitJS("cloud listed up", `document.querySelector('tr[data-bridge="cloud"] .badge').dataset.state === "up"`)
	b.waitText(`tr[data-bridge="cloud"]`, "12 / 340")
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
	if br, ok := e.bridge(t, "office"); !ok {
		t.Errorf("no bridge office in the conf:\n%s", e.readConf(t))
	} else {
		want := []mosquittoconf.BridgeAddress{{Host: "127.0.0.1", Port: 18830}, {Host: "::1", Port: 18831}}
		if !slices.Equal(br.Addresses, want) {
			t.Errorf("office's addresses %v, want %v", br.Addresses, want)
		}
		if len(br.Topics) != 2 {
			t.Errorf("office's topics %+v, want 2", br.Topics)
		} else {
			t0, t1 := br.Topics[0], br.Topics[1]
			if t0.Pattern != "office/#" || t0.Direction != "both" || t0.QoS != 1 || t0.LocalPrefix != "" || t0.RemotePrefix != "remote/" {
				t.Errorf("office's first topic %+v", t0)
			}
			if t1.Pattern != "alerts/+" || t1.Direction != "out" || t1.QoS != 0 {
				t.Errorf("office's second topic %+v", t1)
			}
		}
		if br.RemoteUsername != "gw" || br.RemotePassword != "secret" || br.ProtocolVersion != "mqttv311" || !br.Notifications || br.CleanSession {
			t.Errorf("office: user %q password %q protocol %q notifications %v clean_session %v",
				br.RemoteUsername, br.RemotePassword, br.ProtocolVersion, br.Notifications, br.CleanSession)
		}
	}
	// The remote password is written, never read back.
	var listed []api.Bridge
	raw := e.apiGet(t, "/api/bridges")
	if err := json.Unmarshal(raw, &listed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret")) || bytes.Contains(raw, []byte("s3cret")) {
		t.Errorf("GET /api/bridges shows a remote password: %s", raw)
	}
	for _, br := range listed {
		if !br.HasPassword {
			t.Errorf("bridge %s: has_password false", br.Name)
		}
	}
	// A field the API refuses is marked beside its field.
	b.open("/bridges/new")
	b.fill("#b-name", "bad-prefix")
	b.fill("#b-addresses", "example.net:1883")
	b.fill(".topic-row [name=pattern]", "x/#")
	b.fill(".topic-row [name=remote_prefix]", "remote/#")
	b.click("#bridge-save")
	b.waitText("#b-topics-err", "Topic row 1: ")
	b.waitText("#b-topics-err", "no blanks and no wildcards")
	b.waitJS("remote prefix marked invalid", `document.querySelector(".topic-row [name=remote_prefix]").getAttribute("aria-invalid") === "true"`)
	if _, ok := e.bridge(t, "bad-prefix"); ok {
		t.Error("a refused bridge was written")
	}
	// A bad address is caught before anything is sent.
	before := e.spy.count()
	b.fill("#b-addresses", "example.net:99999")
	b.click("#bridge-save")
	b.waitText("#b-addr-err", "is not 1-65535")
	if after := e.spy.count(); after != before {
		t.Errorf("a bad port was sent: %d requests", after-before)
	}

	// Edit: the form shows the bridge; an empty password keeps it (the
	// field is left out of the PUT).
	b.open("/bridges/cloud")
	b.waitJS("the form filled", `document.querySelector("#b-addresses").value === "mqtt.example.net:8883" && document.querySelector(".topic-row [name=remote_prefix]").value === "home/"`)
	if v, _ := eval[string](b, `document.querySelector(".topic-row [name=qos]").value`); v != "1" {
		t.Errorf("qos shown %q, want 1", v)
	}
	if v, _ := eval[string](b, `document.querySelector("#b-pass").value + "|" + document.querySelector("#b-pass").placeholder`); v != "|(unchanged)" {
		t.Errorf("the password field shows %q, want it empty with the placeholder (unchanged)", v)
	}
	b.waitText("#b-ca-now", "cloud-ca.pem")
	b.waitJS("the remove-CA choice shown", `document.querySelector("#b-ca-remove").offsetParent !== null`)
	b.fill("#b-addresses", "mqtt.example.net:8883 backup.example.net:8883")
	b.click("#bridge-save")
	b.waitText("#status", "Bridge cloud saved")
	_, put := e.spy.sent("PUT /api/bridges/cloud")
	var body map[string]any
	if err := json.Unmarshal(put, &body); err != nil {
		t.Fatalf("PUT body %q: %v", put, err)
	}
	if _, sent := body["remote_password"]; sent {
		t.Errorf("an empty password field was sent: %v", body["remote_password"])
	}
	if br, ok := e.bridge(t, "cloud"); !ok {
		t.Error("cloud is gone from the conf")
	} else {
		want := []mosquittoconf.BridgeAddress{{Host: "mqtt.example.net", Port: 8883}, {Host: "backup.example.net", Port: 8883}}
		if !slices.Equal(br.Addresses, want) {
			t.Errorf("cloud's addresses %v, want %v", br.Addresses, want)
		}
		if br.RemotePassword != "s3cret" {
			t.Errorf("cloud's remote password became %q", br.RemotePassword)
		}
		if filepath.Base(br.CAFile) != "cloud-ca.pem" {
			t.Errorf("cloud's CA file became %q", br.CAFile)
		}
	}
	// Delete takes two presses.
	b.open("/bridges/office")
	b.waitJS("the form filled", `document.querySelector("#b-name").value === "office"`)
	b.click("#bridge-delete")
	b.waitText("#status", "Press the delete button again")
	if sent, _ := e.spy.sent("DELETE /api/bridges/office"); sent {
		t.Fatal("one press deleted the bridge")
	}
	b.click("#bridge-delete")
	b.waitJS("back on the list without office", `location.pathname === "/bridges" && document.querySelector('tr[data-bridge="cloud"]') !== null && document.querySelector('tr[data-bridge="office"]') === null`)
	if _, ok := e.bridge(t, "office"); ok {
		t.Error("office is still in the conf")
	}

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
	// Its value, live, as the device reports.
	e.devices.mu.Lock()
	e.devices.list[0].Entities[0].State, e.devices.list[0].Entities[0].StateAt = "21.4", time.Now()
	e.devices.mu.Unlock()
	b.waitText(`#entities-table tr[data-entity="k_t"] .state`, "21.4 °C")

	// Forgetting a device asks first, then it is gone from the list.
	b.open("/devices/tasmota_plug_1")
	b.waitText("h1", "Desk plug")
	b.click("#forget")
	b.waitJS("the dialog asks", `document.querySelector("#confirm").open && document.querySelector("#confirm-title").textContent === "Forget Desk plug?"`)
	if _, ok := e.devices.Device("tasmota_plug_1"); !ok {
		t.Fatal("the device went before the confirmation")
	}
	b.click("#confirm-ok")
	b.waitJS("back on the list", `location.pathname === "/devices"`)
	b.waitText("#status", "Desk plug forgotten")
	b.waitText("#dev-count", "Showing 1 of 1")
	if sent, _ := e.spy.sent("DELETE /api/devices/tasmota_plug_1"); !sent {
		t.Error("no DELETE reached the API")
	}

	// Users: add one, remove one (after the dialog); the password file says so.
	b.open("/broker/users")
	b.waitJS("the ACL in its editor", `document.querySelector("#acl-text").value.includes("topic readwrite home/#")`)
	b.waitJS("alice and bob listed", `document.querySelectorAll('#users [data-user]').length === 2`)
	b.waitText("#logins-state", "open on the LAN")
	b.fill("#u-name", "carol")
	b.fill("#u-pass", "pw")
	b.click("#user-form button[type=submit]")
	b.waitText("#status", "User carol saved")
	b.waitJS("carol listed", `document.querySelector('#users [data-user="carol"]') !== null`)
	b.click(`#users [data-user="bob"] button`)
	b.waitJS("the dialog asks", `document.querySelector("#confirm").open && document.querySelector("#confirm-title").textContent === "Remove bob?"`)
	if sent, _ := e.spy.sent("DELETE /api/broker/users/bob"); sent {
		t.Fatal("one press removed bob")
	}
	b.click("#confirm-ok")
	b.waitText("#status", "User bob removed")
	b.waitJS("bob gone", `document.querySelector('#users [data-user="bob"]') === null`)
	if p, err := gwauth.LoadPasswordFile(e.passwd); err != nil {
		t.Error(err)
	} else if got := p.Users(); !slices.Equal(got, []string{"alice", "carol"}) || !p.Verify("carol", "pw") {
		t.Errorf("password file users %v (carol's password checks: %v)", got, p.Verify("carol", "pw"))
	}
	// The box's own account names are refused with the reason.
	b.fill("#u-name", "gateway-box")
	b.fill("#u-pass", "pw")
	b.click("#user-form button[type=submit]")
	b.waitText("#user-error", "reserved")

	// Logins on, in one switch.
	b.click("#logins-required")
	b.click("#logins-save")
	b.waitText("#status", "Logins are required now")
	b.waitText("#logins-state", "Logins are required")
	if conf := e.readConf(t); !strings.Contains(conf, "allow_anonymous false") {
		t.Errorf("conf after the switch:\n%s", conf)
	}

	// A device login: the settings to type in, once.
	b.fill("#d-name", "kitchen-plug")
	b.click("#device-form button[type=submit]")
	b.waitText("#status", "Login made for kitchen-plug")
	b.waitText("#device-login", "kitchen-plug/#")
	b.waitText("#device-login", ".local")
	b.waitJS("the ACL shows the device's block", `document.querySelector("#acl-text").value.includes("user kitchen-plug")`)

	// The ACL editor: a bad line is shown at its line, nothing saved.
	acl0, _ := os.ReadFile(e.acl)
	b.setValue("#acl-text", string(acl0)+"toppic read x\n")
	b.click("#acl-save")
	b.waitText("#acl-errors", "unknown keyword \"toppic\"")
	if acl1, _ := os.ReadFile(e.acl); string(acl1) != string(acl0) {
		t.Error("a refused ACL changed the file")
	}
	b.setValue("#acl-text", string(acl0)+"pattern read sensors/%u/#\n")
	b.click("#acl-check")
	b.waitText("#status", "The ACL checks")
	b.click("#acl-save")
	b.waitText("#status", "ACL saved")
	if acl1, _ := os.ReadFile(e.acl); !strings.HasSuffix(string(acl1), "pattern read sensors/%u/#\n") {
		t.Errorf("acl after the save:\n%s", acl1)
	}

	// A part that is not running shows as unavailable, not broken: the
	// same box served without discovery and without the broker's figures
	// (the session cookie is the host's, whatever the port).
	b.base = e.bareURL
	b.open("/devices")
	b.waitText("#devices-table tbody", "discovery is not running")
	b.waitJS("an unavailable badge", `document.querySelector('#devices-table [data-state="unavailable"]') !== null`)
	b.open("/")
	b.waitJS("the overview's tiles unavailable", `document.querySelectorAll('.tile [data-state="unavailable"]').length === 6`)
	b.waitText("#rate-desc", "unavailable")
	b.waitText("#ov-apps", "mqtt") // the rest of the page still works
	b.base = e.url

	// Every page fits a phone, and is photographed for a look by eye:
	// GATEWAY_SCREENSHOTS=folder keeps them in its pages/ subfolder (the
	// folder itself holds the end-to-end test's set, of a real box).
	if dir := os.Getenv("GATEWAY_SCREENSHOTS"); dir != "" {
		b.shots = filepath.Join(dir, "pages")
	}
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
