package image

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/rootfs/bundle"
)

// TestUpdateThroughTheConsole is an owner's update, end to end, on the
// arm64 disk image under qemu: version A takes the bundle of version B
// through POST /api/system/update and reboots into it, with the retained
// message and the console's config edit still there; a bundle signed with
// another key is refused before anything is written; then a bundle whose
// broker does not start is installed, fails its trial, and the box falls
// back to B by itself.
func TestUpdateThroughTheConsole(t *testing.T) {
	distA := armDisk(t)
	const versionB = "v0.0.1-imagetest"
	distB := filepath.Join(t.TempDir(), "dist-b")
	if err := mkimageVersion(t, distB, versionB, testEpoch.Add(time.Hour), "arm64", "arm64"); err != nil {
		t.Fatal(err)
	}
	bundleB := filepath.Join(distB, BaseName(versionB, "arm64")+".update")
	parts := bundleParts(t, bundleB)
	forged := writeBundle(t, "forged.update", bundle.Manifest{Version: "v9.9.9-forged", Serial: testEpoch.Add(3 * time.Hour).Unix(), Arch: "arm64"}, parts, newKey(t))
	parts[bundle.RootFS] = brokenRoot(t, parts[bundle.RootFS])
	broken := writeBundle(t, "broken.update", bundle.Manifest{Version: "v0.0.2-broken", Serial: testEpoch.Add(2 * time.Hour).Unix(), Arch: "arm64"}, parts, devKey(t))

	disk := filepath.Join(t.TempDir(), "box.img")
	copyDisk(t, filepath.Join(distA, BaseName(testVersion, "arm64")+".img"), disk)
	if err := os.Truncate(disk, 1<<30); err != nil { // room to spool a bundle on /data
		t.Fatal(err)
	}
	logs := t.TempDir()
	mqtt, httpPort, sshPort := freePorts(t)
	const password = "update-test-pass"
	topic, payload := "house/hall/lamp", "kept across updates"
	boots := 0
	bootBox := func() (*vm, *console) {
		boots++
		v := boot(t, disk, filepath.Join(logs, fmt.Sprintf("serial-%d.log", boots)), mqtt, httpPort, sshPort)
		c := newConsole(t, httpPort)
		v.waitFor(3*time.Minute, "the console", func() error {
			_, err := c.call("GET", "/api/health", nil, nil)
			return err
		})
		return v, c
	}
	system := func(v *vm, c *console, want func(s systemInfo) bool, what string) systemInfo {
		var s systemInfo
		v.waitFor(2*time.Minute, what, func() error {
			s = systemInfo{}
			if _, err := c.call("GET", "/api/system", nil, &s); err != nil {
				return err
			}
			if !want(s) {
				return fmt.Errorf("system: %+v booted %+v last %+v", s, s.Booted, s.LastUpdate)
			}
			return nil
		})
		return s
	}

	// Version A, as flashed: a retained message and a config edit.
	v, c := bootBox()
	v.waitFor(time.Minute, "a retained publish", func() error { return v.pub(topic, payload) })
	c.login(true, password)
	conf := c.brokerConfig()
	edited := strings.Replace(conf, "sys_interval 10\n", "sys_interval 7\n", 1)
	if edited == conf {
		t.Fatalf("no sys_interval 10 in the shipped conf:\n%s", conf)
	}
	if _, err := c.call("PUT", "/api/broker/config", map[string]string{"text": edited}, nil); err != nil {
		t.Fatal(err)
	}
	system(v, c, func(s systemInfo) bool { return s.Booted.Slot == "a" && s.Booted.Version == testVersion }, "slot A running version A")

	// A bundle signed with another key: refused, nothing written.
	if code, body := c.upload(forged); code != http.StatusUnprocessableEntity || !strings.Contains(body, "signature") {
		t.Errorf("forged bundle: %d %s", code, body)
	}
	system(v, c, func(s systemInfo) bool { return s.Other.State == "empty" }, "slot B still empty after the forged bundle")

	// The real bundle of B: installed, then the box reboots into it.
	start := time.Now()
	if code, body := c.upload(bundleB); code != http.StatusOK || !strings.Contains(body, `"rebooting":true`) {
		t.Fatalf("update to B: %d %s", code, body)
	}
	waitExit(t, v, 2*time.Minute, "the reboot into B")
	v, c = bootBox()
	c.login(false, password)
	system(v, c, func(s systemInfo) bool {
		return s.Booted.Slot == "b" && s.Booted.Version == versionB && s.Booted.State == "good"
	}, "B booted and marked good")
	t.Logf("update to B: upload to B marked good in %v", time.Since(start).Round(100*time.Millisecond))
	if out, err := v.mosquitto(30*time.Second, "mosquitto_sub", "-q", "1", "-t", topic, "-C", "1", "-W", "20"); err != nil || out != payload {
		t.Errorf("retained message after the update: %q %v", out, err)
	}
	if conf := c.brokerConfig(); !strings.Contains(conf, "sys_interval 7\n") {
		t.Errorf("config edit lost in the update:\n%s", conf)
	}

	// A bundle whose broker does not start: it boots, fails its trial and
	// the box goes back to B by itself.
	if code, body := c.upload(broken); code != http.StatusOK {
		t.Fatalf("install the broken bundle: %d %s", code, body)
	}
	waitExit(t, v, 2*time.Minute, "the reboot into the broken version")
	v = boot(t, disk, filepath.Join(logs, "serial-broken.log"), mqtt, httpPort, sshPort)
	boots++
	waitExit(t, v, 4*time.Minute, "the broken version's fall back (its guard reboots)")
	if log, _ := os.ReadFile(v.serial); !strings.Contains(string(log), "started /usr/libexec/gateway/broken-gatewayd") || !strings.Contains(string(log), "falling back to the other slot") {
		t.Errorf("the broken version's broker did not run as the test meant:\n%s", tailText(log))
	}
	v, c = bootBox()
	c.login(false, password)
	s := system(v, c, func(s systemInfo) bool { return s.Booted.Slot == "b" && s.Booted.Version == versionB }, "B again after the fall back")
	if s.LastUpdate == nil || s.LastUpdate.Version != "v0.0.2-broken" || s.LastUpdate.State != "rolled-back" {
		t.Errorf("last update after the fall back: %+v", s.LastUpdate)
	}
	if out, err := v.mosquitto(30*time.Second, "mosquitto_sub", "-q", "1", "-t", topic, "-C", "1", "-W", "20"); err != nil || out != payload {
		t.Errorf("retained message after the fall back: %q %v", out, err)
	}
}

// systemInfo is GET /api/system's answer, as far as this test reads it.
type systemInfo struct {
	Version    string   `json:"version"`
	Slots      bool     `json:"slots"`
	Booted     slotInfo `json:"booted"`
	Other      slotInfo `json:"other"`
	LastUpdate *struct {
		Version string `json:"version"`
		Slot    string `json:"slot"`
		State   string `json:"state"`
		Message string `json:"message"`
	} `json:"last_update"`
}

type slotInfo struct {
	Slot    string `json:"slot"`
	Version string `json:"version"`
	State   string `json:"state"`
}

// upload posts a bundle file as the console's System page does.
func (c *console) upload(path string) (int, string) {
	c.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	req, err := http.NewRequest("POST", c.base+"/api/system/update", f)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-CSRF-Token", c.csrf)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("upload %s: %v", filepath.Base(path), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitExit waits for qemu to end: started with -no-reboot, a reboot of
// the box ends it.
func waitExit(t *testing.T, v *vm, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-v.done:
	case <-time.After(timeout):
		log, _ := os.ReadFile(v.serial)
		t.Fatalf("no %s within %v:\n%s", what, timeout, tailText(log))
	}
}

func tailText(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePorts(t *testing.T) (int, int, int) {
	return testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
}

func devKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := SigningKey("")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// bundleParts takes a bundle apart into files, checked with the
// development key.
func bundleParts(t *testing.T, path string) map[string]string {
	t.Helper()
	bd, f, err := bundle.OpenFile(path, []ed25519.PublicKey{devKey(t).Public().(ed25519.PublicKey)}, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	out := map[string]string{}
	for _, name := range bundle.PartNames {
		p := filepath.Join(dir, name)
		w, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, bd.Part(name)); err != nil {
			t.Fatal(err)
		}
		w.Close()
		out[name] = p
	}
	return out
}

func writeBundle(t *testing.T, name string, m bundle.Manifest, files map[string]string, key ed25519.PrivateKey) string {
	t.Helper()
	var parts []bundle.Part
	for _, n := range bundle.PartNames {
		p, f, err := bundle.FilePart(n, files[n])
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		parts = append(parts, p)
	}
	out := filepath.Join(t.TempDir(), name)
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Write(w, m, parts, key); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// brokenRoot is a root slot whose broker exits at once: gatewayd runs
// apps named "gatewayd" through a wrapper (--self) that fails `broker`,
// and gives the slot 30 s to prove itself.
func brokenRoot(t *testing.T, squashfs string) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if out, err := exec.Command("unsquashfs", "-q", "-n", "-d", tree, squashfs).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	run := filepath.Join(tree, "usr/libexec/gateway/gatewayd-run")
	b, err := os.ReadFile(run)
	if err != nil {
		t.Fatal(err)
	}
	const line = "/usr/bin/gatewayd run --root /"
	if !strings.Contains(string(b), line) {
		t.Fatalf("gatewayd-run has no %q:\n%s", line, b)
	}
	b = []byte(strings.Replace(string(b), line, line+" --self /usr/libexec/gateway/broken-gatewayd --trial-timeout 30s", 1))
	if err := os.WriteFile(run, b, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nif [ \"$1\" = broker ]; then echo \"broker broken on purpose\" >&2; exit 1; fi\nexec /usr/bin/gatewayd \"$@\"\n"
	if err := os.WriteFile(filepath.Join(tree, "usr/libexec/gateway/broken-gatewayd"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "root.squashfs")
	if b, err := exec.Command("mksquashfs", tree, out, "-noappend", "-all-root", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, b)
	}
	return out
}
