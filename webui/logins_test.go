package webui

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func fileText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Logins on in one save, never with no user; users, device logins and the
// ACL from the console, each checked, none of them able to take the box's
// own account names.
func TestLoginsSwitchUsersDevicesAndACL(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")
	pwFile := filepath.Join(filepath.Dir(env.conf), "passwd")
	aclFile := filepath.Join(filepath.Dir(env.conf), "acl")

	if a := b.req("GET", "/api/broker/logins", nil); a.code != 200 || a.m["required"] != false || a.m["users"] != float64(0) {
		t.Fatalf("logins at first: %d %s", a.code, a.raw)
	}
	// On with no user: refused, offering to create one; nothing written.
	if a := b.req("PUT", "/api/broker/logins", map[string]any{"required": true}); a.code != 409 || a.m["need_user"] != true {
		t.Errorf("logins on with no user: %d %s", a.code, a.raw)
	}
	if got := fileText(t, env.conf); got != baseConf {
		t.Errorf("a refused switch changed the conf:\n%s", got)
	}
	// The box's own names are not an owner's.
	for _, name := range []string{"gateway-box", "homeassistant", "gateway-anything"} {
		if a := b.req("POST", "/api/broker/users", map[string]string{"username": name, "password": "pw-pw-pw"}); a.code != 400 || !strings.Contains(string(a.raw), "reserved") {
			t.Errorf("user %q: %d %s", name, a.code, a.raw)
		}
	}
	// On with a first user, in the same save.
	a := b.req("PUT", "/api/broker/logins", map[string]any{"required": true, "first_user": map[string]string{"username": "owner", "password": "owner-pw"}})
	if a.code != 200 {
		t.Fatalf("logins on with a first user: %d %s", a.code, a.raw)
	}
	conf := fileText(t, env.conf)
	if !strings.Contains(conf, "allow_anonymous false # keep") && !strings.Contains(conf, "allow_anonymous false") || !strings.Contains(conf, "password_file "+pwFile) ||
		!strings.HasPrefix(conf, "# the owner's comment\n") {
		t.Errorf("conf after the switch:\n%s", conf)
	}
	if pw := fileText(t, pwFile); !strings.HasPrefix(pw, "owner:") {
		t.Errorf("password file: %q", pw)
	}
	if a := b.req("GET", "/api/broker/logins", nil); a.m["required"] != true || a.m["users"] != float64(1) || a.m["password_file"] != pwFile {
		t.Errorf("logins after: %s", a.raw)
	}

	// A device login: a generated password, an ACL block of its own; the
	// new acl_file first grants the clients there were what they had.
	a = b.req("POST", "/api/broker/devices", map[string]any{"name": "kitchen-plug"})
	if a.code != 201 || a.m["username"] != "kitchen-plug" || len(a.m["password"].(string)) < 20 || a.m["discovery_prefix"] != "homeassistant" ||
		!strings.HasSuffix(a.m["host"].(string), ".local") {
		t.Fatalf("device login: %d %s", a.code, a.raw)
	}
	acl := fileText(t, aclFile)
	for _, want := range []string{"topic readwrite #\n\nuser owner\ntopic readwrite #\n", "user kitchen-plug\ntopic readwrite kitchen-plug/#\ntopic readwrite +/kitchen-plug/#\n"} {
		if !strings.Contains(acl, want) {
			t.Errorf("acl_file lacks %q:\n%s", want, acl)
		}
	}
	if !strings.Contains(fileText(t, env.conf), "acl_file "+aclFile) || !strings.Contains(fileText(t, pwFile), "kitchen-plug:") {
		t.Errorf("the device's save did not name the acl_file or add the user")
	}
	if a := b.req("POST", "/api/broker/devices", map[string]any{"name": "kitchen-plug"}); a.code != 409 {
		t.Errorf("the same device twice: %d %s", a.code, a.raw)
	}

	// The ACL editor: a bad line is FILE:LINE: reason and changes nothing.
	bad := acl + "user x\ntopics read a/b\n"
	if a := b.req("POST", "/api/broker/acl/check", map[string]string{"text": bad}); a.code != 200 || a.m["ok"] != false ||
		!strings.Contains(string(a.raw), `"line":`+itoa(strings.Count(bad, "\n"))) {
		t.Errorf("check of a bad line: %d %s", a.code, a.raw)
	}
	a = b.req("PUT", "/api/broker/acl", map[string]string{"text": bad})
	if a.code != 422 || !strings.Contains(a.m["error"].(string), aclFile+":"+itoa(strings.Count(bad, "\n"))+": ") {
		t.Errorf("save of a bad line: %d %s", a.code, a.raw)
	}
	if fileText(t, aclFile) != acl {
		t.Error("a refused ACL changed the file")
	}
	good := acl + "pattern read sensors/%c/#\n"
	if a := b.req("PUT", "/api/broker/acl", map[string]string{"text": good}); a.code != 200 || fileText(t, aclFile) != good {
		t.Errorf("save of a good ACL: %d %s", a.code, a.raw)
	}
	if a := b.req("GET", "/api/broker/acl", nil); a.m["text"] != good || a.m["file"] != aclFile {
		t.Errorf("GET acl: %s", a.raw)
	}

	// Off again: allow_anonymous true, the users kept.
	if a := b.req("PUT", "/api/broker/logins", map[string]any{"required": false}); a.code != 200 {
		t.Fatalf("logins off: %d %s", a.code, a.raw)
	}
	if conf := fileText(t, env.conf); !strings.Contains(conf, "allow_anonymous true") || !strings.Contains(conf, "password_file "+pwFile) {
		t.Errorf("conf after off:\n%s", conf)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
