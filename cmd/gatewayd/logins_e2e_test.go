package main

import (
	"encoding/json"
	"fmt"
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
)

// Issue 15's path, on a real box: open on the LAN → an owner user and a
// device login from the API → logins required in one switch → the box's
// own clients still work (live figures, discovery of a new announce the
// device publishes with its login), anonymous clients are refused, the
// device cannot publish outside its ACL → and back.
func TestLoginsOnAndEverythingStillWorks(t *testing.T) {
	root := t.TempDir()
	testkit.RequireTool(t, "mosquitto_pub")
	testkit.RequireTool(t, "mosquitto_sub")
	gatewayd := testkit.Build(t, "./cmd/gatewayd")
	gwctl := testkit.Build(t, "./cmd/gwctl")
	gwctlIn := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(gwctl, append([]string{"--root", root}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gwctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	port := testkit.FreePort(t)
	write(t, filepath.Join(root, "etc/gateway/gateway.yaml"), fmt.Sprintf(`console: {listen: "127.0.0.1:0"}
lan: {allow: [loopback]}
discovery: {mdns: {enabled: false}}
apps:
  - name: mqtt
    command: gatewayd
    args: [broker, --config, "{root}/etc/mosquitto/mosquitto.conf"]
    ready: {tcp: "127.0.0.1:%d"}
    restart: {delay: 0s, backoff_max: 2s, min_uptime: 1s}
    cwd: "{root}/data"
`, port), 0o644)
	write(t, filepath.Join(root, "etc/mosquitto/mosquitto.conf"), fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nsys_interval 1\n", port), 0o644)
	box := testkit.Start(t, gatewayd, "run", "--root", root)
	t.Cleanup(func() {
		box.Signal(syscall.SIGTERM)
		box.Wait(t, 30*time.Second)
	})
	box.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="gatewayd running"`))
	sock := socketAPI(t, root)
	pubAs := func(topic, msg string, args ...string) (string, int) {
		return testkit.Run(t, 15*time.Second, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", topic, "-m", msg, "-q", "1"}, args...)...)
	}
	// liveFigures waits for figures from a broker that started after since.
	liveFigures := func(what string) map[string]any {
		var b map[string]any
		testkit.WaitFor(t, 30*time.Second, what, func() bool {
			r := sock.do("GET", "/api/broker/stats", nil)
			b, _ = r.m["broker"].(map[string]any)
			return b != nil && b["up"] == true && b["split"] == true && b["box_clients"].(float64) >= 2
		})
		return b
	}
	liveFigures("live figures while open")

	// Over SSH as over the console: gwctl users.
	if out := gwctlIn("owner-pw\n", "users", "add", "owner"); !strings.Contains(out, "user owner saved") {
		t.Fatalf("gwctl users add: %s", out)
	}
	r := sock.do("POST", "/api/broker/devices", map[string]string{"name": "plug1"})
	if r.code != 201 {
		t.Fatalf("device login: %d %s", r.code, r.raw)
	}
	devPW := r.m["password"].(string)
	if r.m["port"] != float64(port) {
		t.Errorf("device settings name port %v, want %d", r.m["port"], port)
	}
	gwctlIn("", "users", "require")
	var listed struct {
		Users          []string `json:"users"`
		LoginsRequired bool     `json:"logins_required"`
	}
	if err := json.Unmarshal([]byte(gwctlIn("", "users", "--json")), &listed); err != nil || !listed.LoginsRequired ||
		strings.Join(listed.Users, ",") != "owner,plug1" {
		t.Errorf("gwctl users --json: %+v %v", listed, err)
	}

	// The box's own clients: figures again (the broker restarted), from a
	// client the broker let in with the service account.
	b := liveFigures("live figures with logins required")
	if b["error"] != nil && b["error"] != "" {
		t.Errorf("stats error %v", b["error"])
	}
	if out, code := pubAs("x/y", "z"); code == 0 {
		t.Errorf("an anonymous client published with logins required: %s", out)
	}
	// Discovery registers an announce the device publishes with its login.
	cfg := `{"name":"Power","state_topic":"plug1/power","unique_id":"plug1_power","device":{"identifiers":["plug1-id"],"name":"Plug One"}}`
	if out, code := pubAs("homeassistant/sensor/plug1/power/config", cfg, "-r", "-u", "plug1", "-P", devPW); code != 0 {
		t.Fatalf("the device's announce: %s", out)
	}
	testkit.WaitFor(t, 20*time.Second, "discovery to register the device", func() bool {
		r := sock.do("GET", "/api/devices", nil)
		return strings.Contains(string(r.raw), "Plug One")
	})
	// Outside its ACL the device's message goes nowhere: the owner's
	// subscriber sees the owner's marker first.
	sub := testkit.Start(t, "stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-u", "owner", "-P", "owner-pw",
		"-t", "other/#", "-v", "-d")
	sub.WaitLine(t, 15*time.Second, regexp.MustCompile(`^Subscribed`))
	if out, code := pubAs("other/stolen", "from the plug", "-u", "plug1", "-P", devPW); code != 0 {
		t.Fatalf("device publish (acknowledged, then dropped): %s", out)
	}
	if out, code := pubAs("other/marker", "from the owner", "-u", "owner", "-P", "owner-pw"); code != 0 {
		t.Fatalf("owner publish: %s", out)
	}
	sub.WaitLine(t, 15*time.Second, regexp.MustCompile(`^other/marker from the owner$`))
	if strings.Contains(sub.Output(), "from the plug") {
		t.Error("the device published outside its ACL")
	}
	// Home Assistant's account, made by the box, gets in too.
	var secrets map[string]string
	data, err := os.ReadFile(filepath.Join(root, "data/gateway/box-accounts.json"))
	if err != nil || json.Unmarshal(data, &secrets) != nil {
		t.Fatalf("box accounts: %v", err)
	}
	if info, err := os.Stat(filepath.Join(root, "data/gateway/box-accounts.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("box accounts file mode %v", info.Mode())
	}
	if out, code := pubAs("home/ha", "hi", "-u", "homeassistant", "-P", secrets["homeassistant"]); code != 0 {
		t.Errorf("Home Assistant's account refused: %s", out)
	}
	if out, code := pubAs("home/ha", "hi", "-u", "gateway-box", "-P", "guess"); code == 0 {
		t.Errorf("the service account with a wrong secret got in: %s", out)
	}

	// And back: anonymous clients again.
	if r := sock.do("PUT", "/api/broker/logins", map[string]any{"required": false}); r.code != 200 {
		t.Fatalf("logins off: %d %s", r.code, r.raw)
	}
	testkit.WaitFor(t, 20*time.Second, "an anonymous publish", func() bool {
		_, code := pubAs("x/y", "z")
		return code == 0
	})
}
