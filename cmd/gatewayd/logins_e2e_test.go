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
	write(t, filepath.Join(root, "etc/gateway/gateway.yaml"), brokerBoxYAML(port, ""), 0o644)
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
	var plugID string
	testkit.WaitFor(t, 20*time.Second, "discovery to register the device", func() bool {
		var list []map[string]any
		json.Unmarshal([]byte(gwctlIn("", "devices", "--json")), &list)
		for _, d := range list {
			if d["name"] == "Plug One" {
				plugID = d["id"].(string)
			}
		}
		return plugID != ""
	})
	// gwctl devices rm forgets it, its retained announce cleared (by the
	// box's own client, with logins required): it is not listed again.
	if out := gwctlIn("", "devices", "rm", plugID, "--clear-retained"); !strings.Contains(out, "cleared retained homeassistant/sensor/plug1/power/config") {
		t.Errorf("gwctl devices rm: %s", out)
	}
	if out := gwctlIn("", "devices", "--json"); strings.Contains(out, plugID) {
		t.Errorf("gwctl devices --json still lists %s:\n%s", plugID, out)
	}
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
	// The topic explorer (the box's own client) sees every topic, publishes
	// and clears retained messages, with logins required.
	if out, code := pubAs("explore/room/temp", "21.4", "-r", "-u", "owner", "-P", "owner-pw"); code != 0 {
		t.Fatalf("owner publish: %s", out)
	}
	testkit.WaitFor(t, 15*time.Second, "the explorer to list the topic", func() bool {
		r := sock.do("GET", "/api/topics?prefix=explore&depth=3", nil)
		return strings.Contains(string(r.raw), `"topic":"explore/room/temp"`) && strings.Contains(string(r.raw), `"payload":"21.4"`)
	})
	if r := sock.do("GET", "/api/topics?depth=1", nil); !strings.Contains(string(r.raw), `"topic":"$SYS"`) {
		t.Errorf("the explorer does not list $SYS: %s", r.raw)
	}
	// -d: its SUBACK line says the subscription is in place.
	got := testkit.Start(t, "stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-u", "owner", "-P", "owner-pw",
		"-t", "explore/cmd", "-C", "1", "-d")
	got.WaitLine(t, 15*time.Second, regexp.MustCompile(`^Subscribed`))
	if r := sock.do("POST", "/api/topics/publish", map[string]any{"topic": "explore/cmd", "payload": "ON", "qos": 1}); r.code != 200 {
		t.Fatalf("explorer publish: %d %s", r.code, r.raw)
	}
	got.WaitLine(t, 10*time.Second, regexp.MustCompile(`^ON$`))
	if code := got.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("the subscriber exited %d:\n%s", code, got.Output())
	}
	if r := sock.do("POST", "/api/topics/publish", map[string]any{"topic": "explore/#", "payload": "x"}); r.code != 400 {
		t.Errorf("a wildcard topic: %d %s", r.code, r.raw)
	}
	if r := sock.do("DELETE", "/api/topics/retained?prefix=explore", nil); r.code != 200 || !strings.Contains(string(r.raw), "explore/room/temp") {
		t.Fatalf("clear retained: %d %s", r.code, r.raw)
	}
	if out, code := testkit.Run(t, 10*time.Second, "mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-u", "owner", "-P", "owner-pw",
		"-t", "explore/#", "-C", "1", "-W", "2"); code == 0 {
		t.Errorf("a retained message is left after clearing: %q", out)
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

// The box's own clients follow a listener change without a restart of
// gatewayd: after the port moves, the figures come back and discovery hears
// an announce on the new port.
func TestOwnClientsFollowTheListener(t *testing.T) {
	testkit.RequireTool(t, "mosquitto_pub")
	gatewayd := testkit.Build(t, "./cmd/gatewayd")
	root := t.TempDir()
	p1, p2 := testkit.FreePort(t), testkit.FreePort(t)
	// Ready by the broker's own line, so the check does not name a port.
	write(t, filepath.Join(root, "etc/gateway/gateway.yaml"), strings.Replace(brokerBoxYAML(p1, ""),
		fmt.Sprintf(`ready: {tcp: "127.0.0.1:%d"}`, p1), `ready: {log: "broker running"}`, 1), 0o644)
	conf := "listener %d 127.0.0.1\nallow_anonymous true\nsys_interval 1\n"
	write(t, filepath.Join(root, "etc/mosquitto/mosquitto.conf"), fmt.Sprintf(conf, p1), 0o644)
	box := testkit.Start(t, gatewayd, "run", "--root", root)
	t.Cleanup(func() {
		box.Signal(syscall.SIGTERM)
		box.Wait(t, 30*time.Second)
	})
	box.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="gatewayd running"`))
	sock := socketAPI(t, root)
	// figures waits for $SYS figures received after since: the broker
	// that sent them is the one running then.
	figures := func(what string, since time.Time) {
		testkit.WaitFor(t, 30*time.Second, what, func() bool {
			b, _ := sock.do("GET", "/api/broker/stats", nil).m["broker"].(map[string]any)
			if b == nil || b["up"] != true || b["box_clients"].(float64) < 2 {
				return false
			}
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(b["updated"]))
			return err == nil && at.After(since)
		})
	}
	figures("figures on the first port", time.Time{})
	if r := sock.do("PUT", "/api/broker/config", map[string]string{"text": fmt.Sprintf(conf, p2)}); r.code != 200 {
		t.Fatalf("moving the listener: %d %s", r.code, r.raw)
	}
	// The broker on the first port is gone: figures from now on come from
	// a client that found the new one.
	figures("figures on the new port", time.Now())
	cfg := `{"name":"Moved","state_topic":"moved/state","unique_id":"moved_1","device":{"identifiers":["moved-1"],"name":"Moved Sensor"}}`
	if out, code := testkit.Run(t, 15*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(p2), "-r", "-q", "1",
		"-t", "homeassistant/sensor/moved/config", "-m", cfg); code != 0 {
		t.Fatalf("announce on the new port: %s", out)
	}
	testkit.WaitFor(t, 20*time.Second, "discovery on the new port", func() bool {
		return strings.Contains(string(sock.do("GET", "/api/devices", nil).raw), "Moved Sensor")
	})
}
