package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/internal/testkit"
)

// ownerOf is the uid that owns path.
func ownerOf(t *testing.T, path string) int {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Sys().(*syscall.Stat_t).Uid)
}

// The box as the image runs it: gatewayd as root, the broker and another
// app as unprivileged accounts (nobody here; mosquitto and homeassistant on
// the image). The broker runs as its account, owns its store and the
// password file, takes a user the console adds (the console writes as
// root), and keeps retained messages across a restart.
func TestAppsRunUnprivileged(t *testing.T) {
	testkit.RequireRoot(t, "running apps as other accounts")
	testkit.RequireTool(t, "mosquitto_pub")
	// The root is a folder every account may enter, as / is on the box,
	// with gatewayd in it (a test's build folder is root's own).
	root := testkit.SharedDir(t)
	bin := filepath.Join(root, "bin/gatewayd")
	testkit.CopyFile(t, testkit.Build(t, "./cmd/gatewayd"), bin, 0o755)

	port := testkit.FreePort(t)
	write(t, filepath.Join(root, "etc/gateway/gateway.yaml"), brokerBoxYAML(port, `    user: nobody
  - name: helper
    command: sleep
    args: ["600"]
    cwd: "{root}/data/helper"
    user: nobody
`), 0o644)
	write(t, filepath.Join(root, "etc/mosquitto/mosquitto.conf"), fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location mosquitto/\npassword_file passwd\n", port), 0o644)
	hash, err := auth.HashPBKDF2("alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "data/passwd"), "alice:"+hash+"\n", 0o600)
	if err := os.MkdirAll(filepath.Join(root, "data/mosquitto"), 0o700); err != nil { // as a root-run broker left it
		t.Fatal(err)
	}

	box := testkit.Start(t, bin, "run", "--root", root, "--self", bin)
	t.Cleanup(func() {
		box.Signal(syscall.SIGTERM)
		box.Wait(t, 30*time.Second)
	})
	box.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="gatewayd running"`))
	sock := socketAPI(t, root)
	var mqttPID, helperPID int
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(last, box.Output())
		}
	})
	testkit.WaitFor(t, 20*time.Second, "both apps online", func() bool {
		defer func() { last = fmt.Sprint(sock.do("GET", "/api/apps", nil).m, readLog(t, root, "mqtt")) }()
		m, h := sock.do("GET", "/api/apps/mqtt", nil), sock.do("GET", "/api/apps/helper", nil)
		if m.m["status"] != "online" || h.m["status"] != "online" {
			return false
		}
		mqttPID, helperPID = int(m.m["pid"].(float64)), int(h.m["pid"].(float64))
		return m.m["user"] == "nobody"
	})
	for name, pid := range map[string]int{"mqtt": mqttPID, "helper": helperPID} {
		if uid := testkit.ProcStatus(t, pid, "Uid:"); uid != "65534" {
			t.Errorf("%s runs as uid %s, want nobody", name, uid)
		}
	}
	for _, p := range []string{"data/mosquitto", "data/helper"} {
		if uid := ownerOf(t, filepath.Join(root, p)); uid != 65534 {
			t.Errorf("%s is owned by uid %d, want the app's account (nobody)", p, uid)
		}
	}
	// The password file is the broker's to read, not to rewrite.
	if st, err := os.Stat(filepath.Join(root, "data/passwd")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 ||
		st.Sys().(*syscall.Stat_t).Gid != 65534 || st.Mode().Perm() != 0o640 {
		t.Errorf("data/passwd: %v %v, want root's, group nogroup, 0640", st.Mode(), err)
	}
	for _, p := range []string{"data", "data/gateway"} {
		if uid := ownerOf(t, filepath.Join(root, p)); uid != 0 {
			t.Errorf("%s went to uid %d, want root's (shared, and gatewayd's own)", p, uid)
		}
	}

	// A user the console adds: the file is written as root, handed over
	// before the broker restarts on it.
	if r := sock.do("POST", "/api/broker/users", map[string]string{"username": "bob", "password": "bob-pw-123"}); r.code != 200 {
		t.Fatalf("add bob: %d %s", r.code, r.raw)
	}
	if out, code := pubTo(t, port, "kept/a", "one", "-u", "bob", "-P", "bob-pw-123", "-r"); code != 0 {
		t.Fatalf("bob cannot publish after the save: %s\n%s", out, readLog(t, root, "mqtt"))
	}
	// The store, written as nobody, survives a restart.
	if r := sock.do("POST", "/api/apps/mqtt/restart", nil); r.code != 200 {
		t.Fatalf("restart: %d %s", r.code, r.raw)
	}
	testkit.WaitFor(t, 20*time.Second, "the broker back", func() bool {
		r := sock.do("GET", "/api/apps/mqtt", nil)
		return r.m["status"] == "online"
	})
	out, code := testkit.Run(t, 15*time.Second, "mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "kept/#", "-C", "1", "-W", "5", "-v")
	if code != 0 || strings.TrimSpace(out) != "kept/a one" {
		t.Errorf("retained after the restart: exit %d %q\n%s", code, out, readLog(t, root, "mqtt"))
	}
}

func readLog(t *testing.T, root, app string) string {
	b, _ := os.ReadFile(filepath.Join(root, "var/log/gateway", app+".log"))
	return string(b)
}

// An account that does not exist is a mistake of gateway.yaml at its line
// (as root, where accounts apply): at start nothing runs, at a reload
// nothing changes.
func TestUnknownAccountIsAConfigError(t *testing.T) {
	testkit.RequireRoot(t, "running apps as other accounts")
	root := t.TempDir()
	bad := twoApps + "    user: no-such-account\n"
	writeConfig(t, root, bad)
	out, code := testkit.Run(t, 15*time.Second, gatewaydBin, "run", "--root", root)
	want := filepath.Join(root, "etc/gateway/gateway.yaml") + `:15: apps[worker].user: no user "no-such-account" on this system`
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 1 with %q:\n%s", code, want, out)
	}

	writeConfig(t, root, twoApps)
	box := runBox(t, root)
	before := waitOnline(t, root, "ticker", "worker")
	writeConfig(t, root, bad)
	if err := box.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	box.WaitLine(t, 10*time.Second, regexp.MustCompile(`reload refused: gateway.yaml has mistakes.*no-such-account`))
	if after := states(t, root); after["worker"].PID != before["worker"].PID {
		t.Errorf("a refused reload restarted worker: pid %d -> %d", before["worker"].PID, after["worker"].PID)
	}
}
