package webui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homebox/gateway/webui/confflow"
)

const outsideSecret = "SECRET-root-hash-in-a-file-outside"

// outsideBox is a folder outside the box's root with a secret file, a
// conf.d of *.conf files, and a folder named like a conf file (listing the
// conf.d would report it).
func outsideBox(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"shadow", "ca.crt", "conf.d/secret.conf"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(outsideSecret+" x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "conf.d/listed.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// quotesNothingOutside fails when an answer names or quotes what is in the
// folder outside.
func quotesNothingOutside(t *testing.T, what string, a answer) {
	t.Helper()
	for _, s := range []string{outsideSecret, "secret.conf", "listed.conf"} {
		if strings.Contains(string(a.raw), s) {
			t.Errorf("%s: the answer shows %q from outside: %s", what, s, a.raw)
		}
	}
}

func (env *consoleEnv) unchanged(t *testing.T, pid int) {
	t.Helper()
	if got, _ := os.ReadFile(env.conf); string(got) != baseConf {
		t.Errorf("conf changed:\n%s", got)
	}
	if list, _ := env.flow.History().List(confflow.KindConf); len(list) != 0 {
		t.Errorf("history: %v", list)
	}
	if st, _ := env.sup.Get("mqtt"); st.PID != pid {
		t.Errorf("the broker was restarted (pid %d, was %d)", st.PID, pid)
	}
}

func TestConsoleRefusesFilesOutsideTheBox(t *testing.T) {
	env := newConsole(t, baseConf)
	out := outsideBox(t)
	if err := os.Symlink(filepath.Join(out, "shadow"), filepath.Join(env.data, "inside.acl")); err != nil {
		t.Fatal(err)
	}
	b := env.browser(t)
	b.setup("correct horse")
	st, _ := env.sup.Get("mqtt")
	folders := filepath.Join(env.root, "etc/mosquitto") + ", " + env.data
	tls := "listener 8883\ncertfile ../etc/mosquitto/certs/ca.crt\nkeyfile ../etc/mosquitto/certs/ca.crt\n"
	if err := os.MkdirAll(filepath.Join(env.root, "etc/mosquitto/certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.root, "etc/mosquitto/certs/ca.crt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bridge := "connection c\naddress 127.0.0.1\ntopic # out\n"
	cases := []struct {
		option, text, shown string
		line                int
	}{
		{"acl_file", "acl_file /etc/shadow\n", "/etc/shadow", 1},
		{"acl_file", "acl_file " + filepath.Join(out, "shadow") + "\n", filepath.Join(out, "shadow"), 1},
		{"acl_file", "acl_file inside.acl\n", "inside.acl (" + filepath.Join(out, "shadow") + ")", 1},
		{"password_file", "password_file ../../" + filepath.Base(out) + "/shadow\n", "../../" + filepath.Base(out) + "/shadow (" + filepath.Join(out, "shadow") + ")", 1},
		{"include_dir", "include_dir " + filepath.Join(out, "conf.d") + "\n", filepath.Join(out, "conf.d"), 1},
		{"include_dir", "include_dir /etc\n", "/etc", 1},
		{"log_dest", "log_dest file " + filepath.Join(out, "any.log") + "\n", filepath.Join(out, "any.log"), 1},
		{"persistence_location", "persistence_location " + out + "\n", out, 1},
		{"pid_file", "pid_file " + filepath.Join(out, "x.pid") + "\n", filepath.Join(out, "x.pid"), 1},
		{"psk_file", "psk_file " + filepath.Join(out, "shadow") + "\n", filepath.Join(out, "shadow"), 1},
		{"cafile", tls + "cafile " + filepath.Join(out, "ca.crt") + "\n", filepath.Join(out, "ca.crt"), 4},
		{"capath", tls + "capath " + out + "\n", out, 4},
		{"crlfile", tls + "crlfile " + filepath.Join(out, "ca.crt") + "\n", filepath.Join(out, "ca.crt"), 4},
		{"bridge_cafile", bridge + "bridge_cafile " + filepath.Join(out, "ca.crt") + "\n", filepath.Join(out, "ca.crt"), 4},
	}
	for _, c := range cases {
		text := baseConf + c.text
		line := float64(strings.Count(baseConf, "\n") + c.line)
		msg := c.shown + " is outside the box's folders (" + folders
		if c.option == "log_dest" {
			msg += ", " + filepath.Join(env.root, "var/log/gateway")
		}
		msg += "): the console only accepts files there"
		want := fmt.Sprintf("mosquitto.conf %v %s %s", line, c.option, msg)
		only := func(what string, a answer) {
			t.Helper()
			errs, _ := a.m["errors"].([]any)
			if len(errs) != 1 {
				t.Errorf("%s %q: %d %s, want one error", what, c.text, a.code, a.raw)
				return
			}
			e := errs[0].(map[string]any)
			if got := fmt.Sprintf("%v %v %v %v", e["file"], e["line"], e["option"], e["message"]); got != want {
				t.Errorf("%s %q:\n got %s\nwant %s", what, c.text, got, want)
			}
			quotesNothingOutside(t, what, a)
		}
		a := b.req("POST", "/api/broker/config/check", map[string]string{"text": text})
		if a.code != 200 || a.m["ok"] != false {
			t.Errorf("check %q: %d %s", c.text, a.code, a.raw)
		}
		only("check", a)
		a = b.req("PUT", "/api/broker/config", map[string]string{"text": text})
		if a.code != 422 {
			t.Errorf("PUT %q: %d %s", c.text, a.code, a.raw)
		}
		only("PUT", a)
		env.unchanged(t, st.PID)
	}
	if _, err := os.Stat(filepath.Join(out, "any.log")); err == nil {
		t.Error("a log file was made outside")
	}
}

func TestConsoleAcceptsFilesInTheBox(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")
	for _, f := range []string{"passwd", "acl"} {
		if err := os.WriteFile(filepath.Join(env.data, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(env.root, "etc/mosquitto/conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.root, "etc/mosquitto/conf.d/a.conf"), []byte("sys_interval 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := baseConf + "password_file passwd\nacl_file ./acl\npersistence true\npersistence_location mosquitto/\n" +
		"log_dest file ../var/log/gateway/mosquitto.log\ninclude_dir ../etc/mosquitto/conf.d\n"
	if a := b.req("PUT", "/api/broker/config", map[string]string{"text": text}); a.code != 200 {
		t.Fatalf("PUT: %d %s", a.code, a.raw)
	}
	if a := b.req("POST", "/api/broker/users", map[string]string{"username": "alice", "password": "wonder land"}); a.code != 200 {
		t.Errorf("add user: %d %s", a.code, a.raw)
	}
	if a := b.req("GET", "/api/broker/users", nil); a.code != 200 || a.m["acl_file"] != filepath.Join(env.data, "acl") {
		t.Errorf("users: %d %s", a.code, a.raw)
	}
}

// An included file inside the box's folders is read, but what its lines
// say is not shown beyond their option word.
func TestConsoleDoesNotQuoteIncludedFiles(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")
	inc := filepath.Join(env.data, "conf.d")
	if err := os.MkdirAll(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inc, "a.conf"), []byte("listener "+outsideSecret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := b.req("POST", "/api/broker/config/check", map[string]string{"text": baseConf + "include_dir conf.d\n"})
	errs, _ := a.m["errors"].([]any)
	if a.code != 200 || len(errs) != 1 || errs[0].(map[string]any)["option"] != "listener" || errs[0].(map[string]any)["line"] != float64(1) {
		t.Errorf("check: %d %s", a.code, a.raw)
	}
	quotesNothingOutside(t, "check", a)
}

// The conf on the box, written by its owner over SSH, may name files
// anywhere: the console's edits keep working, but the console itself reads
// and writes no file outside.
func TestConsoleLeavesTheOwnersFilesOutsideAlone(t *testing.T) {
	out := outsideBox(t)
	owners := baseConf + "password_file " + filepath.Join(out, "shadow") + "\n"
	env := newConsole(t, owners)
	b := env.browser(t)
	b.setup("correct horse")
	a := b.req("PUT", "/api/broker/config", map[string]string{"text": owners + "max_connections 100\n"})
	if a.code != 200 {
		t.Errorf("an edit keeping the owner's line: %d %s", a.code, a.raw)
	}
	for _, r := range []struct{ method, path string }{{"GET", "/api/broker/users"}, {"POST", "/api/broker/users"}, {"DELETE", "/api/broker/users/x"}} {
		a := b.req(r.method, r.path, map[string]string{"username": "eve", "password": "x"})
		if a.code != 409 || !strings.Contains(string(a.raw), "password_file: "+filepath.Join(out, "shadow")+" is outside the box's folders") {
			t.Errorf("%s %s: %d %s", r.method, r.path, a.code, a.raw)
		}
		quotesNothingOutside(t, r.path, a)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "shadow")); string(got) != outsideSecret+" x\n" {
		t.Errorf("the file outside was written: %q", got)
	}
}
