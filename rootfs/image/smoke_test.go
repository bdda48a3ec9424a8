package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// TestSmokeUnderQemu is a flashed box's first boot, for each ARM image:
// the tarball unpacked into a temp root, its own gatewayd started under
// qemu-user with the ports moved to free loopback ones and mDNS off, then
// checked from outside with real MQTT clients and the image's own gwctl.
func TestSmokeUnderQemu(t *testing.T) {
	needTools(t, "qemu-aarch64", "qemu-arm", "mosquitto_pub", "mosquitto_sub", "tar")
	dist := armDist(t)
	for _, c := range []struct{ arch, qemu string }{{"arm64", "qemu-aarch64"}, {"armv7", "qemu-arm"}} {
		t.Run(c.arch, func(t *testing.T) {
			t.Parallel()
			qemu, err := exec.LookPath(c.qemu)
			if err != nil {
				t.Fatal(err)
			}
			smoke(t, imageOf(t, dist, c.arch), qemu)
		})
	}
}

func smoke(t *testing.T, img Image, qemu string) {
	root := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", img.Tarball, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", img.Tarball, err, out)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "data")); err != nil || len(ents) != 0 {
		t.Fatalf("the image's /data is not an empty folder: %v %v", ents, err)
	}
	gatewayd := filepath.Join(root, "usr/bin/gatewayd")
	gwctl := filepath.Join(root, "usr/bin/gwctl")

	// The binaries say what they are.
	for bin, want := range map[string]string{gatewayd: "gatewayd", gwctl: "gwctl"} {
		out, err := exec.Command(qemu, bin, "--version").CombinedOutput()
		if want += " " + testVersion + " (" + testCommit + ")\n"; err != nil || string(out) != want {
			t.Errorf("%s --version: %q, %v; want %q", filepath.Base(bin), out, err, want)
		}
	}

	mqttPort, wsPort, consolePort := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	editFile(t, filepath.Join(root, "etc/mosquitto/mosquitto.conf"),
		"listener 1883\n", fmt.Sprintf("listener %d 127.0.0.1\n", mqttPort),
		"listener 9001\n", fmt.Sprintf("listener %d 127.0.0.1\n", wsPort))
	editFile(t, filepath.Join(root, "etc/gateway/gateway.yaml"),
		`listen: ":80"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, consolePort),
		"enabled: true", "enabled: false", // mDNS: nothing goes out on a real interface
		// Without binfmt_misc the kernel cannot exec an ARM child, so the
		// broker process is started through qemu too; on the box it is
		// gatewayd itself.
		"command: gatewayd ", "command: "+qemu+" ",
		"args: [broker,", `args: ["{root}/usr/bin/gatewayd", broker,`,
		// The test's folders are root's own: the apps run as gatewayd
		// does here; the boot test (rootfs/slots) runs the shipped accounts.
		"    user: mosquitto ", "    # user: mosquitto ",
		"    user: homeassistant ", "    # user: homeassistant ")

	box := startBox(t, qemu, gatewayd, root)

	// gwctl status mqtt: the broker is online (ready: its listener accepts).
	status := func(app string) (string, error) {
		cmd := exec.Command(qemu, gwctl, "--root", root, "status", app, "--json")
		cmd.Env = withoutRootEnv()
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("gwctl status %s: %w", app, err)
		}
		var st struct {
			Status string `json:"status"`
			Ready  bool   `json:"ready"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return "", fmt.Errorf("gwctl status %s: %w: %s", app, err, out)
		}
		return st.Status, nil
	}
	var last string
	waitFor(t, 3*time.Minute, box, func() bool {
		s, err := status("mqtt")
		last = fmt.Sprint(s, err)
		return s == "online"
	}, func() string { return "mqtt online per gwctl; last: " + last })
	cmd := exec.Command(qemu, gwctl, "--root", root, "status", "mqtt")
	cmd.Env = withoutRootEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^status\s+online$`).Match(out) || !regexp.MustCompile(`(?m)^ready\s+yes$`).Match(out) {
		t.Errorf("gwctl status mqtt: %v\n%s", err, out)
	}
	t.Logf("gwctl status mqtt (under %s):\n%s", filepath.Base(qemu), out)

	// A message round trip through the broker, with Debian's clients.
	topic, payload := "smoke/"+img.Arch.Name, "hello from "+img.Arch.Name
	port := fmt.Sprint(mqttPort)
	if out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-r", "-t", topic, "-m", payload).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	out, err = exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", topic, "-C", "1", "-W", "60").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != payload {
		t.Errorf("mosquitto_sub: %q, %v; want %q", out, err, payload)
	}

	// The API answers on the control socket.
	sock := filepath.Join(root, "run/gateway/gatewayd.sock")
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := hc.Get("http://gatewayd/api/health")
	if err != nil {
		t.Fatalf("GET /api/health over %s: %v", sock, err)
	}
	var health struct {
		OK      bool   `json:"ok"`
		Version string `json:"version"`
		Apps    int    `json:"apps"`
	}
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !health.OK || health.Version != testVersion || health.Apps != 2 {
		t.Errorf("GET /api/health: %d %+v %v", resp.StatusCode, health, err)
	}

	// hass is not in the image: home-assistant shows errored (FLASHING.md says so).
	if _, err := exec.LookPath("hass"); err != nil {
		waitFor(t, time.Minute, box, func() bool {
			s, err := status("home-assistant")
			last = fmt.Sprint(s, err)
			return s == "errored"
		}, func() string { return "home-assistant errored; last: " + last })
	}

	// First boot: the empty /data got the gateway's id and the broker's
	// working folder; the logs went to var/log/gateway.
	id, err := os.ReadFile(filepath.Join(root, "data/gateway/id"))
	if err != nil || len(bytes.TrimSpace(id)) == 0 {
		t.Errorf("data/gateway/id: %q, %v", id, err)
	}
	for _, p := range []string{"var/log/gateway/gatewayd.log", "var/log/gateway/mqtt.log"} {
		if st, err := os.Stat(filepath.Join(root, p)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (empty or missing)", p, err)
		}
	}

	// SIGTERM stops the box and its broker.
	box.stop(t)
	waitFor(t, 30*time.Second, nil, func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, func() string { return "the broker's port to close after SIGTERM" })
	if code := box.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("gatewayd run exited %d after SIGTERM\n%s", code, box.out.String())
	}

	// The same binary seeds an empty root, as on an Android-class userland.
	empty := t.TempDir()
	out, err = exec.Command(qemu, gatewayd, "init", "--root", empty).CombinedOutput()
	if err != nil {
		t.Fatalf("gatewayd init: %v\n%s", err, out)
	}
	for _, p := range []string{"etc/gateway/gateway.yaml", "etc/mosquitto/mosquitto.conf"} {
		got, err := os.ReadFile(filepath.Join(empty, p))
		want, _ := os.ReadFile(filepath.Join("..", p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("gatewayd init: %s not the shipped file: %v", p, err)
		}
	}
}

type runningBox struct {
	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{}
	once sync.Once
}

func startBox(t *testing.T, qemu, gatewayd, root string) *runningBox {
	t.Helper()
	b := &runningBox{out: &testkit.Buffer{}, done: make(chan struct{})}
	b.cmd = exec.Command(qemu, gatewayd, "run", "--root", root)
	b.cmd.Env = withoutRootEnv()
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.stop(t) })
	return b
}

// stop sends SIGTERM and waits; SIGKILL if gatewayd does not end in time.
func (b *runningBox) stop(t *testing.T) {
	b.once.Do(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(90 * time.Second):
			t.Errorf("gatewayd did not stop within 90s of SIGTERM\n%s", b.out.String())
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
}

func (b *runningBox) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond until it holds; it fails at the deadline, or at once
// when the box under test died.
func waitFor(t *testing.T, timeout time.Duration, b *runningBox, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if b != nil && b.exited() {
			t.Fatalf("gatewayd exited while waiting for %s\n%s", what(), b.out.String())
		}
		if time.Now().After(deadline) {
			out := ""
			if b != nil {
				out = b.out.String()
			}
			t.Fatalf("no %s within %v\n%s", what(), timeout, out)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}

// editFile replaces each old with its new, each exactly once: a shipped
// file that changed shape fails here rather than running on default ports.
func editFile(t *testing.T, p string, pairs ...string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want once", p, pairs[i], n)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// withoutRootEnv keeps a GATEWAY_ROOT of the caller from pointing the box
// elsewhere than --root.
func withoutRootEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEWAY_ROOT=") {
			env = append(env, kv)
		}
	}
	return env
}
