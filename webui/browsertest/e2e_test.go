package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/homebox/gateway/internal/testkit"
)

// socketGet asks gatewayd's control socket, as gwctl does.
func socketGet(t *testing.T, root, path string, out any) {
	t.Helper()
	sock := filepath.Join(root, "run/gateway/gatewayd.sock")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer c.CloseIdleConnections()
	res, err := c.Get("http://gatewayd" + path)
	if err != nil {
		t.Fatalf("GET %s on the socket: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s on the socket: %d %s", path, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s on the socket: %v\n%s", path, err, b)
	}
}

// mqttPub publishes one message with the real mosquitto_pub and says
// whether the broker took it.
func mqttPub(t *testing.T, port int, args ...string) (string, bool) {
	t.Helper()
	pub := testkit.RequireTool(t, "mosquitto_pub")
	out, code := testkit.Run(t, 20*time.Second, pub, append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-q", "1"}, args...)...)
	return out, code == 0
}

// TestConsoleEndToEnd drives the console of a real `gatewayd run` in a
// temporary root with Chromium: set the password, log in, add a listener
// and connect to it, see a bad line marked, add a bridge to a real
// mosquitto and see it come up, restart an app, see an announced device,
// add a broker user; and photograph every page at phone and desktop width
// (GATEWAY_SCREENSHOTS=folder keeps the set, e.g. docs/screenshots).
func TestConsoleEndToEnd(t *testing.T) {
	mosquitto := testkit.RequireTool(t, "mosquitto")
	testkit.RequireTool(t, "mosquitto_pub")
	testkit.RequireTool(t, "mosquitto_sub")
	gatewayd := testkit.Build(t, "./cmd/gatewayd")

	root := t.TempDir()
	brokerPort, consolePort, newPort, remotePort := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	testkit.WriteFile(t, filepath.Join(root, "etc/gateway/gateway.yaml"), fmt.Sprintf(`console: {listen: "127.0.0.1:%d"}
lan: {allow: [loopback]}
discovery: {mdns: {enabled: false}}
apps:
  - name: mqtt
    command: %s
    args: [broker, --config, "{root}/etc/mosquitto/mosquitto.conf"]
    ready: {tcp: "127.0.0.1:%d"}
    kill_timeout: 5s
    cwd: "{root}/data"
  - name: worker
    command: sh
    args: [-c, 'echo worker started; exec sleep 600']
    after: [mqtt]
    kill_timeout: 2s
`, consolePort, gatewayd, brokerPort))
	passwd := filepath.Join(root, "etc/mosquitto/passwd")
	testkit.WriteFile(t, passwd, "")
	confPath := filepath.Join(root, "etc/mosquitto/mosquitto.conf")
	testkit.WriteFile(t, confPath, fmt.Sprintf(`# The test box's broker.
listener %d 127.0.0.1
allow_anonymous true
password_file %s
sys_interval 1
persistence false
log_dest stdout
`, brokerPort, passwd))
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		t.Fatal(err)
	}

	box := testkit.Start(t, gatewayd, "run", "--root", root)
	base := fmt.Sprintf("http://127.0.0.1:%d", consolePort)
	testkit.WaitFor(t, 20*time.Second, "the console on "+base, func() bool {
		if box.Exited() {
			t.Fatalf("gatewayd exited:\n%s", box.Output())
		}
		res, err := http.Get(base + "/api/health")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatewayd output:\n%s", box.Output())
		}
	})

	b := newBrowser(t, base)
	b.shots = os.Getenv("GATEWAY_SCREENSHOTS")

	// First visit: the setup page, photographed before it is used.
	for _, w := range []int{phoneWidth, desktopWidth} {
		b.size(w, 800)
		b.do("open /", chromedpNavigate(base+"/"))
		b.waitJS("the setup page", `location.pathname === "/setup" && document.body.dataset.ready === "true"`)
		b.noSidewaysScroll("setup")
		b.shot("setup-" + map[int]string{phoneWidth: "phone", desktopWidth: "desktop"}[w])
	}
	b.fill("#setup-password", "open sesame 42")
	b.fill("#setup-confirm", "open sesame 42")
	b.click("#setup-form button[type=submit]")
	b.waitJS("the overview after setup", `location.pathname === "/" && document.body.dataset.ready === "true"`)

	// Log out and in again, by keyboard.
	b.click("#logout")
	b.waitJS("the login page", `location.pathname === "/login" && document.body.dataset.ready === "true"`)
	for _, w := range []int{phoneWidth, desktopWidth} {
		b.size(w, 800)
		b.open("/login")
		b.noSidewaysScroll("login")
		b.shot("login-" + map[int]string{phoneWidth: "phone", desktopWidth: "desktop"}[w])
	}
	b.fill("#login-password", "open sesame 42")
	b.do("press Enter", chromedpSubmit("#login-form"))
	b.waitJS("the overview after login", `location.pathname === "/" && document.body.dataset.ready === "true"`)

	// The overview: the broker is up, figures come in live.
	b.waitJSFor(30*time.Second, "the broker up", `document.querySelector("#t-broker .badge") && document.querySelector("#t-broker .badge").dataset.state === "up"`)
	b.waitJS("the live stream", `document.querySelector("#live").dataset.state === "up"`)
	b.waitText("#ov-apps", "worker")

	// Broker config: add a listener, save, and a real client connects to it.
	b.open("/broker/config")
	b.waitJS("the editor filled", `document.querySelector("#conf").value.includes("sys_interval 1")`)
	orig, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	withListener := string(orig) + fmt.Sprintf("\n# added from the console\nlistener %d 127.0.0.1\n", newPort)
	b.setValue("#conf", withListener)
	b.click("#check")
	b.waitText("#status", "Check passed")
	b.click("#save")
	b.waitTextFor(40*time.Second, "#status", "Saved: the broker runs on the new file")
	b.waitJS("every step done", `["check","write","restart","wait"].every(s => document.querySelector('#steps [data-step="' + s + '"]').dataset.state === "done")`)
	if out, ok := mqttPub(t, newPort, "-t", "e2e/new-listener", "-m", "hello"); !ok {
		t.Fatalf("mosquitto_pub to the new listener %d failed: %s", newPort, out)
	}
	if got, _ := os.ReadFile(confPath); string(got) != withListener {
		t.Errorf("mosquitto.conf on disk:\n%s\nwant:\n%s", got, withListener)
	}

	// A bad line: marked beside it on Check, and Save writes nothing.
	bad := withListener + "listener 99999\n"
	badLine := strings.Count(bad, "\n")
	b.setValue("#conf", bad)
	b.click("#check")
	b.waitText("#status", "error")
	b.waitJS(fmt.Sprintf("line %d marked", badLine), fmt.Sprintf(`document.querySelector('#gutter [data-line="%d"]').classList.contains("err")`, badLine))
	b.waitJS("the message beside the line", fmt.Sprintf(`document.querySelector('#backdrop [data-line="%d"] .msg').textContent.length > 10`, badLine))
	msg := b.text(fmt.Sprintf(`#backdrop [data-line="%d"] .msg`, badLine))
	if !strings.Contains(msg, "error") {
		t.Errorf("beside line %d: %q", badLine, msg)
	}
	for _, w := range []int{phoneWidth, desktopWidth} {
		b.size(w, 800)
		b.noSidewaysScroll("config with an error")
		b.shot("config-" + map[int]string{phoneWidth: "phone", desktopWidth: "desktop"}[w])
	}
	b.click("#save")
	b.waitTextFor(20*time.Second, "#status", "Not saved")
	if got, _ := os.ReadFile(confPath); string(got) != withListener {
		t.Errorf("a conf with an error changed the file:\n%s", got)
	}

	// A file that checks but on which the broker cannot start (its port is
	// held here) is rolled back, and the page shows the broker's own words.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	b.setValue("#conf", withListener+fmt.Sprintf("listener %d 127.0.0.1\n", held.Addr().(*net.TCPAddr).Port))
	b.click("#save")
	b.waitTextFor(60*time.Second, "#status", "previous file is back in force")
	b.waitJS("the broker's error shown", `!document.querySelector("#broker-error").hidden`)
	if be := b.text("#broker-error"); !strings.Contains(be, "address already in use") {
		t.Errorf("broker error shown: %q", be)
	}
	b.waitJS("the rollback step", `document.querySelector('#steps [data-step="rollback"]').dataset.state === "done"`)
	b.shot("config-rolled-back-desktop")
	if got, _ := os.ReadFile(confPath); string(got) != withListener {
		t.Errorf("after the roll back mosquitto.conf is:\n%s", got)
	}
	testkit.WaitFor(t, 20*time.Second, "the broker up again on the old file", func() bool {
		_, ok := mqttPub(t, newPort, "-t", "e2e/after-rollback", "-m", "x")
		return ok
	})
	b.click("#revert")

	// A bridge through the form, to a real mosquitto started here.
	remoteConf := filepath.Join(t.TempDir(), "remote.conf")
	testkit.WriteFile(t, remoteConf, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", remotePort))
	remote := testkit.Start(t, mosquitto, "-c", remoteConf)
	testkit.WaitFor(t, 10*time.Second, "the remote mosquitto", func() bool {
		if remote.Exited() {
			t.Fatalf("mosquitto exited:\n%s", remote.Output())
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", remotePort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	b.size(desktopWidth, 900)
	b.open("/bridges/new")
	b.fill("#b-name", "upstairs")
	b.fill("#b-addresses", fmt.Sprintf("127.0.0.1:%d", remotePort))
	b.fill(".topic-row [name=pattern]", "e2e/bridged/#")
	b.do("choose qos", chromedpSetSelect(".topic-row [name=qos]", "1"))
	b.click("#bridge-save")
	b.waitJSFor(40*time.Second, "the bridges list", `location.pathname === "/bridges" && document.body.dataset.ready === "true"`)
	b.waitJSFor(30*time.Second, "bridge upstairs up", `(() => { const n = document.querySelector('tr[data-bridge="upstairs"] .badge'); return n && n.dataset.state === "up"; })()`)
	// And it carries messages.
	sub := testkit.Start(t, testkit.RequireTool(t, "mosquitto_sub"), "-h", "127.0.0.1", "-p", fmt.Sprint(remotePort), "-t", "e2e/bridged/#", "-C", "1", "-v")
	testkit.WaitFor(t, 10*time.Second, "the remote subscriber", func() bool {
		var list []map[string]any
		socketGet(t, root, "/api/bridges", &list)
		return len(list) == 1
	})
	// A message published before the remote subscription is in place is
	// lost, so publish again, once a second, until the subscriber has one.
	var published time.Time
	testkit.WaitFor(t, 15*time.Second, "mosquitto_sub on the remote to get a bridged message", func() bool {
		if sub.Exited() {
			return true
		}
		if time.Since(published) >= time.Second {
			mqttPub(t, brokerPort, "-t", "e2e/bridged/x", "-m", "across")
			published = time.Now()
		}
		return false
	})
	if !strings.Contains(sub.Output(), "e2e/bridged/x across") {
		t.Errorf("the remote did not get the bridged message; mosquitto_sub printed %q", sub.Output())
	}

	// A second bridge over TLS, its CA file uploaded through the form.
	pki := testkit.NewPKI(t)
	tlsPort := testkit.FreePort(t)
	tlsConf := filepath.Join(t.TempDir(), "tls.conf")
	// user root: when the test runs as root, mosquitto would otherwise
	// switch to its own user, who cannot read the test's temporary files.
	testkit.WriteFile(t, tlsConf, fmt.Sprintf("user root\nlistener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nallow_anonymous true\n", tlsPort, pki.CAFile, pki.ServerCert, pki.ServerKey))
	tlsRemote := testkit.Start(t, mosquitto, "-c", tlsConf)
	testkit.WaitFor(t, 10*time.Second, "the TLS mosquitto", func() bool {
		if tlsRemote.Exited() {
			t.Fatalf("mosquitto (TLS) exited:\n%s", tlsRemote.Output())
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	b.open("/bridges/new")
	b.fill("#b-name", "secure")
	b.fill("#b-addresses", fmt.Sprintf("127.0.0.1:%d", tlsPort))
	b.fill(".topic-row [name=pattern]", "e2e/secure/#")
	b.do("choose MQTT 5", chromedpSetSelect("#b-protocol", "mqttv50"))
	b.do("choose the CA file", chromedp.SetUploadFiles(chromedp.CSS("#b-ca"), []string{pki.CAFile}))
	b.click("#bridge-save")
	b.waitJSFor(40*time.Second, "the bridges list", `location.pathname === "/bridges" && document.querySelector('tr[data-bridge="secure"]') !== null`)
	b.waitJSFor(30*time.Second, "bridge secure up", `(() => { const n = document.querySelector('tr[data-bridge="secure"] .badge'); return n && n.dataset.state === "up"; })()`)
	certs, _ := os.ReadDir(filepath.Join(root, "etc/mosquitto/certs"))
	if len(certs) != 1 {
		t.Errorf("%d files under etc/mosquitto/certs, want the one uploaded", len(certs))
	}

	// Restart an app from its row and see a new process.
	var before map[string]any
	socketGet(t, root, "/api/apps/worker", &before)
	b.open("/apps")
	b.waitJS("the worker row", `document.querySelector('tr[data-app="worker"] .badge') !== null`)
	b.click(`tr[data-app="worker"] button[data-action="restart"]`)
	b.confirm("Restart worker?")
	b.waitTextFor(20*time.Second, "#status", "worker restarted")
	var after map[string]any
	socketGet(t, root, "/api/apps/worker", &after)
	if after["pid"] == before["pid"] || after["restarts"].(float64) != before["restarts"].(float64)+1 {
		t.Errorf("worker before %v/%v, after %v/%v: no restart", before["pid"], before["restarts"], after["pid"], after["restarts"])
	}
	b.waitJS("the row shows the restart", fmt.Sprintf(`document.querySelector('tr[data-app="worker"]').textContent.includes("%v")`, after["restarts"]))

	// A device announced over MQTT (Home Assistant discovery) appears.
	cfg := `{"name":"Temperature","state_topic":"e2e/thermo/temp","unique_id":"e2e_thermo_temp","device_class":"temperature","unit_of_measurement":"°C",` +
		`"device":{"identifiers":["e2e-thermo-1"],"name":"Hall thermometer","model":"T-1000","manufacturer":"Acme"}}`
	if out, ok := mqttPub(t, brokerPort, "-r", "-t", "homeassistant/sensor/e2e_thermo/temp/config", "-m", cfg); !ok {
		t.Fatalf("announce: %s", out)
	}
	b.open("/devices")
	b.waitTextFor(30*time.Second, "#devices-table", "Hall thermometer")
	b.fill("#dev-q", "hall")
	b.waitText("#dev-count", "Showing 1 of")
	b.click(`#devices-table a`)
	b.waitJS("the device page", `location.pathname.startsWith("/devices/") && document.body.dataset.ready === "true"`)
	b.waitText("#entities-table", "e2e/thermo/temp")
	deviceID := strings.TrimPrefix(strings.TrimPrefix(b.location(), base), "/devices/")
	// Its value, live, as the thermometer reports it.
	if out, ok := mqttPub(t, brokerPort, "-t", "e2e/thermo/temp", "-m", "21.4"); !ok {
		t.Fatalf("state: %s", out)
	}
	b.waitTextFor(20*time.Second, "#entities-table .state", "21.4 °C")

	// A broker user, then a real client logs in with it.
	b.open("/broker/users")
	b.fill("#u-name", "sensor1")
	b.fill("#u-pass", "s3cret-pw")
	b.click("#user-form button[type=submit]")
	b.waitTextFor(40*time.Second, "#status", "User sensor1 saved")
	b.waitJS("sensor1 listed", `document.querySelector('#users [data-user="sensor1"]') !== null`)
	if out, ok := mqttPub(t, brokerPort, "-u", "sensor1", "-P", "s3cret-pw", "-t", "e2e/user", "-m", "x"); !ok {
		t.Errorf("mosquitto_pub as the new user failed: %s", out)
	}
	if out, ok := mqttPub(t, brokerPort, "-u", "sensor1", "-P", "wrong", "-t", "e2e/user", "-m", "x"); ok {
		t.Errorf("mosquitto_pub with a wrong password worked: %s", out)
	}

	// Every page, at phone and desktop width.
	for _, p := range []struct{ name, path, ready string }{
		{"overview", "/", `document.querySelector("#t-broker .badge").dataset.state === "up" && document.querySelectorAll("#rate-graph path.line").length === 2`},
		{"apps", "/apps", `document.querySelector('tr[data-app="worker"]') !== null`},
		{"app", "/apps/mqtt", `document.querySelector("#log").textContent.length > 20 && document.querySelector("#app-facts .badge") !== null`},
		{"bridges", "/bridges", `document.querySelector('tr[data-bridge="upstairs"] .badge').dataset.state === "up"`},
		{"bridge", "/bridges/upstairs", `document.querySelector("#b-name").value === "upstairs"`},
		{"devices", "/devices", `document.querySelector("tr[data-device]") !== null`},
		{"device", "/devices/" + deviceID, `document.querySelector("#entities-table .state").textContent.includes("21.4")`},
		{"users", "/broker/users", `document.querySelector('#users [data-user="sensor1"]') !== null`},
	} {
		b.pageBoth(p.name, p.path, p.ready)
	}
	// The history of the config, with a diff shown.
	b.open("/broker/config")
	b.waitJS("a history entry", `document.querySelector("#history button") !== null`)
	b.click("#history button")
	b.waitJS("a diff", `document.querySelector("#diff span") !== null`)
	b.shot("config-history-desktop")
	// Restore it: the file on disk becomes that version.
	var hist []map[string]any
	socketGet(t, root, "/api/broker/config/history", &hist)
	var version map[string]any
	socketGet(t, root, "/api/broker/config/history/"+hist[0]["id"].(string), &version)
	b.click("#restore")
	b.waitTextFor(40*time.Second, "#status", "Restored")
	if got, _ := os.ReadFile(confPath); string(got) != version["text"] {
		t.Errorf("after Restore mosquitto.conf is:\n%s\nwant:\n%s", got, version["text"])
	}
	b.waitJS("the editor shows the restored file", fmt.Sprintf(`document.querySelector("#conf").value === %s`, js(version["text"].(string))))
}
