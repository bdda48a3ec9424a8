package gateway_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/internal/testkit"
)

func passwordFile(t *testing.T, path string, users map[string]string) {
	t.Helper()
	hashes := map[string]string{}
	for u, pw := range users {
		h, err := auth.HashPBKDF2(pw)
		if err != nil {
			t.Fatal(err)
		}
		hashes[u] = h
	}
	text, err := auth.PasswordFileText(hashes)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Mosquitto's `user`: started as root, the broker drops to the account
// once its listeners are open, and still does all it did as root: serve,
// persist retained messages across a restart, re-read its password file
// on SIGHUP (both the account's, as Mosquitto needs them).
func TestUserOptionDropsRoot(t *testing.T) {
	testkit.RequireRoot(t, "dropping privileges")
	dir := testkit.SharedDir(t)
	passwordFile(t, filepath.Join(dir, "passwd"), map[string]string{"alice": "alice-pw"})
	if err := os.Mkdir(filepath.Join(dir, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"passwd", "store"} {
		if err := os.Chown(filepath.Join(dir, p), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	conf := "listener 0 127.0.0.1\nallow_anonymous true\npassword_file {dir}/passwd\npersistence true\npersistence_location {dir}/store/\nuser nobody\n"
	b := startBrokerIn(t, dir, conf)
	b.proc.WaitLine(t, 10*time.Second, regexp.MustCompile(`msg="dropped privileges" user=nobody uid=65534`))
	if uid := testkit.ProcStatus(t, b.proc.Cmd.Process.Pid, "Uid:"); uid != "65534" {
		t.Fatalf("the broker runs as uid %s, want nobody (65534)", uid)
	}
	pub(t, b.port(), "-u", "alice", "-P", "alice-pw", "-r", "-q", "1", "-t", "kept/a", "-m", "one")

	// A user added to the file counts after SIGHUP, read as nobody.
	if _, code := testkit.Run(t, 10*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", b.port(), "-u", "bob", "-P", "bob-pw", "-t", "x", "-m", "y"); code == 0 {
		t.Fatal("bob got in before he was added")
	}
	passwordFile(t, filepath.Join(dir, "passwd"), map[string]string{"alice": "alice-pw", "bob": "bob-pw"})
	if err := b.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	b.proc.WaitLine(t, 10*time.Second, regexp.MustCompile(`password and ACL files reloaded`))
	pub(t, b.port(), "-u", "bob", "-P", "bob-pw", "-t", "x", "-m", "y")

	// The store, written as nobody, brings the retained message back.
	if err := b.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b.proc.Wait(t, 15*time.Second)
	b2 := startBrokerIn(t, dir, conf)
	equalLines(t, retained(t, b2.port(), "kept/#"), []string{"kept/a one"})
}

// A `user` that does not exist, or that could not use the broker's files,
// stops the broker with the reason, as in Mosquitto: it must not run on as
// root against the conf, nor fail later as the account. No owner changes.
func TestUserOptionRefusesWhatCannotWork(t *testing.T) {
	testkit.RequireRoot(t, "dropping privileges")
	dir := testkit.SharedDir(t)
	passwordFile(t, filepath.Join(dir, "passwd"), map[string]string{"alice": "alice-pw"}) // root's, 0600
	if err := os.Mkdir(filepath.Join(dir, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	for conf, want := range map[string]string{
		"listener 0 127.0.0.1\nuser no-such-account\n": `user no-such-account: cannot drop privileges: no user "no-such-account"`,
		"listener 0 127.0.0.1\nuser nobody\npassword_file " + dir + "/passwd\npersistence true\npersistence_location " + dir + "/store/\n": "user nobody: cannot drop privileges: the persistence folder " + dir + "/store is not writable by nobody\n" + dir + "/passwd is not readable by nobody",
	} {
		path := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := testkit.Run(t, 20*time.Second, testkit.Build(t, "./cmd/gatewayd"), "broker", "--config", path)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, want %q:\n%s", code, want, out)
		}
	}
	for _, p := range []string{"passwd", "store"} {
		if st, _ := os.Stat(filepath.Join(dir, p)); st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s changed owner", p)
		}
	}
}
