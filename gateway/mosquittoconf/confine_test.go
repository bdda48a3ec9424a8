package mosquittoconf

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// secret is what files outside the box's folders hold: it must never be
// in a diagnostic.
const secret = "SECRET-root-hash"

// box is a box root with the broker's folders, and a folder outside it.
type box struct {
	root, conf, certs, data, logs, own, outside string
	confine                                     Confinement
}

func newBox(t *testing.T) box {
	t.Helper()
	real := func(d string) string {
		r, err := filepath.EvalSymlinks(d)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	root := real(t.TempDir())
	b := box{root: root, conf: filepath.Join(root, "etc/mosquitto"), certs: filepath.Join(root, "etc/mosquitto/certs"),
		data: filepath.Join(root, "data"), logs: filepath.Join(root, "var/log/gateway"), own: filepath.Join(root, "data/gateway"),
		outside: real(t.TempDir())}
	write := func(p, text string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(b.certs, "ca.crt"), "x\n")
	write(filepath.Join(b.data, "passwd"), "u:x\n")
	write(filepath.Join(b.data, "acl"), "topic #\n")
	write(filepath.Join(b.own, "console.json"), `{"hash":"`+secret+`"}`+"\n")
	for _, f := range []string{"secret.txt", "ca.crt", "conf.d/secret.conf", "linked.conf"} {
		write(filepath.Join(b.outside, f), secret+" "+secret+"\n")
	}
	// A folder named like a conf file: listing conf.d would report it.
	for _, d := range []string{b.logs, filepath.Join(b.outside, "capath"), filepath.Join(b.outside, "conf.d/listed.conf")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.confine = Confinement{Folders: []string{b.conf, b.data}, LogFolders: []string{b.logs}, Refused: []string{b.own}}
	return b
}

func (b box) check(conf string) (*Config, Diagnostics) {
	return CheckWith("mosquitto.conf", []byte(conf), b.data, CheckOptions{Confine: &b.confine})
}

// noSecret fails when a diagnostic quotes a file outside.
func noSecret(t *testing.T, ds Diagnostics) {
	t.Helper()
	for _, d := range append(ds.Errors, ds.Warnings...) {
		if strings.Contains(d.Error(), secret) || strings.Contains(d.Error(), "secret.conf") {
			t.Errorf("diagnostic quotes a file outside: %s", d)
		}
	}
}

func TestConfineRefusesEveryFileOptionOutside(t *testing.T) {
	b := newBox(t)
	out := func(f string) string { return filepath.Join(b.outside, f) }
	folders := b.conf + ", " + b.data
	tls := "listener 8883\ncertfile ../etc/mosquitto/certs/ca.crt\nkeyfile ../etc/mosquitto/certs/ca.crt\n"
	bridge := "connection b\naddress 127.0.0.1\ntopic # out\nbridge_cafile ../etc/mosquitto/certs/ca.crt\n"
	cases := []struct {
		option, conf string
		line         int
		path         string // the path as the error names it
		log          bool
	}{
		{"acl_file", "acl_file " + out("secret.txt"), 1, out("secret.txt"), false},
		{"password_file", "password_file " + out("secret.txt"), 1, out("secret.txt"), false},
		{"psk_file", "psk_file " + out("secret.txt"), 1, out("secret.txt"), false},
		{"include_dir", "include_dir " + out("conf.d"), 1, out("conf.d"), false},
		{"persistence_location", "persistence_location " + out(""), 1, out(""), false},
		{"pid_file", "pid_file " + out("x.pid"), 1, out("x.pid"), false},
		{"log_dest", "log_dest file " + out("x.log"), 1, out("x.log"), true},
		{"plugin", "plugin " + out("p.so"), 1, out("p.so"), false},
		{"auth_plugin", "auth_plugin " + out("p.so"), 1, out("p.so"), false},
		{"global_plugin", "global_plugin " + out("p.so"), 1, out("p.so"), false},
		{"certfile", "listener 8883\ncertfile " + out("ca.crt") + "\nkeyfile ../etc/mosquitto/certs/ca.crt", 2, out("ca.crt"), false},
		{"keyfile", "listener 8883\ncertfile ../etc/mosquitto/certs/ca.crt\nkeyfile " + out("ca.crt"), 3, out("ca.crt"), false},
		{"cafile", tls + "cafile " + out("ca.crt"), 4, out("ca.crt"), false},
		{"capath", tls + "capath " + out("capath"), 4, out("capath"), false},
		{"crlfile", tls + "crlfile " + out("ca.crt"), 4, out("ca.crt"), false},
		{"dhparamfile", tls + "dhparamfile " + out("ca.crt"), 4, out("ca.crt"), false},
		{"http_dir", "listener 9001\nhttp_dir " + out(""), 2, out(""), false},
		{"bridge_cafile", "connection b\naddress 127.0.0.1\ntopic # out\nbridge_cafile " + out("ca.crt"), 4, out("ca.crt"), false},
		{"bridge_capath", "connection b\naddress 127.0.0.1\ntopic # out\nbridge_capath " + out("capath"), 4, out("capath"), false},
		{"bridge_certfile", bridge + "bridge_certfile " + out("ca.crt") + "\nbridge_keyfile ../etc/mosquitto/certs/ca.crt", 5, out("ca.crt"), false},
		{"bridge_keyfile", bridge + "bridge_certfile ../etc/mosquitto/certs/ca.crt\nbridge_keyfile " + out("ca.crt"), 6, out("ca.crt"), false},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.option] = true
		t.Run(c.option, func(t *testing.T) {
			cfg, ds := b.check(c.conf + "\n")
			fs := folders
			if c.log {
				fs += ", " + b.logs
			}
			want := "mosquitto.conf:" + strconv.Itoa(c.line) + ": " + c.option + ": " + c.path + " is outside the box's folders (" + fs + "): the console only accepts files there"
			if cfg != nil || len(ds.Errors) != 1 || ds.Errors[0].Error() != want {
				t.Errorf("errors %q\nwant [%q]", messages(ds.Errors), want)
			}
			noSecret(t, ds)
			// The broker itself keeps Mosquitto's meaning: it reads the
			// folder (and so would report listed.conf).
			_, plain := Check("mosquitto.conf", []byte(c.conf+"\n"), b.data)
			listed := false
			for _, d := range plain.Errors {
				if strings.Contains(d.Message, "outside") {
					t.Errorf("unconfined check refuses: %s", d)
				}
				listed = listed || strings.Contains(d.Message, "listed.conf")
			}
			if c.option == "include_dir" && !listed {
				t.Errorf("the unconfined check did not list the folder: %q", messages(plain.Errors))
			}
		})
	}
	for name := range fileOptions {
		if !seen[name] && name != "persistence_file" {
			t.Errorf("file option %s is not tested", name)
		}
	}
}

func TestConfineFollowsThePathAsTheBrokerDoes(t *testing.T) {
	b := newBox(t)
	if err := os.Symlink(filepath.Join(b.outside, "secret.txt"), filepath.Join(b.data, "link.acl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(b.outside, filepath.Join(b.data, "linkdir")); err != nil {
		t.Fatal(err)
	}
	// A dangling link: a log file created through it would land outside.
	if err := os.Symlink(filepath.Join(b.outside, "new.log"), filepath.Join(b.logs, "broker.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(b.outside, "linked.conf"), filepath.Join(b.conf, "z.conf")); err != nil {
		t.Fatal(err)
	}
	folders := " is outside the box's folders (" + b.conf + ", " + b.data + "): the console only accepts files there"
	cases := []struct{ conf, want string }{
		{"acl_file ../../" + filepath.Base(b.outside) + "/secret.txt",
			"mosquitto.conf:1: acl_file: ../../" + filepath.Base(b.outside) + "/secret.txt (" + filepath.Join(b.outside, "secret.txt") + ")" + folders},
		{"acl_file link.acl", "mosquitto.conf:1: acl_file: link.acl (" + filepath.Join(b.outside, "secret.txt") + ")" + folders},
		{"acl_file linkdir/secret.txt", "mosquitto.conf:1: acl_file: linkdir/secret.txt (" + filepath.Join(b.outside, "secret.txt") + ")" + folders},
		{"acl_file linkdir/../acl", "mosquitto.conf:1: acl_file: linkdir/../acl (" + filepath.Join(filepath.Dir(b.outside), "acl") + ")" + folders},
		{"include_dir linkdir/conf.d", "mosquitto.conf:1: include_dir: linkdir/conf.d (" + filepath.Join(b.outside, "conf.d") + ")" + folders},
		{"log_dest file ../var/log/gateway/broker.log",
			"mosquitto.conf:1: log_dest: ../var/log/gateway/broker.log (" + filepath.Join(b.outside, "new.log") + ") is outside the box's folders (" + b.conf + ", " + b.data + ", " + b.logs + "): the console only accepts files there"},
		{"persistence_file ../../x.db", "mosquitto.conf:1: persistence_file: ../../x.db (" + filepath.Join(filepath.Dir(b.root), "x.db") + ")" + folders},
		{"persistence_location mosquitto\npersistence_file ../../../x.db", "mosquitto.conf:2: persistence_file: mosquitto/../../../x.db (" + filepath.Join(filepath.Dir(b.root), "x.db") + ")" + folders},
		{"acl_file gateway/console.json", "mosquitto.conf:1: acl_file: gateway/console.json (" + filepath.Join(b.own, "console.json") + ") is in " + b.own + ", gatewayd's own folder: the console does not accept files there"},
		{"include_dir ../etc/mosquitto", "mosquitto.conf:1: include_dir: " + filepath.Join(b.data, "../etc/mosquitto/z.conf") + " (" + filepath.Join(b.outside, "linked.conf") + ")" + folders},
	}
	for _, c := range cases {
		cfg, ds := b.check(c.conf + "\n")
		if cfg != nil || len(ds.Errors) != 1 || ds.Errors[0].Error() != c.want {
			t.Errorf("%q:\n got %q\nwant [%q]", c.conf, messages(ds.Errors), c.want)
		}
		noSecret(t, ds)
	}
}

func TestConfineAcceptsTheBoxFolders(t *testing.T) {
	b := newBox(t)
	inc := filepath.Join(b.conf, "conf.d")
	if err := os.MkdirAll(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inc, "a.conf"), []byte("sys_interval 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := "listener 8883\ncertfile ../etc/mosquitto/certs/ca.crt\nkeyfile " + filepath.Join(b.certs, "ca.crt") + "\n" +
		"password_file passwd\nacl_file ./acl\npersistence true\npersistence_location mosquitto/\npersistence_file store.db\npid_file mosquitto.pid\n" +
		"log_dest file ../var/log/gateway/mosquitto.log\ninclude_dir ../etc/mosquitto/conf.d\n" +
		"connection b\naddress 127.0.0.1\ntopic # out\nbridge_cafile ../etc/mosquitto/certs/ca.crt\n"
	cfg, ds := b.check(conf)
	if cfg == nil {
		t.Fatalf("refused: %q", messages(ds.Errors))
	}
	if cfg.SysInterval != 5 || cfg.Security.ACLFile != "./acl" || cfg.Bridges[0].CAFile != "../etc/mosquitto/certs/ca.crt" {
		t.Errorf("config %+v", cfg)
	}
}

func TestConfineKeepsTheOwnersLines(t *testing.T) {
	b := newBox(t)
	ca := filepath.Join(b.outside, "ca.crt")
	b.confine.Kept = func(option, value string) bool { return option == "bridge_cafile" && value == ca }
	bridge := "connection b\naddress 127.0.0.1\ntopic # out\n"
	if cfg, ds := b.check(bridge + "bridge_cafile " + ca + "\n"); cfg == nil {
		t.Errorf("the owner's line refused: %q", messages(ds.Errors))
	}
	// The same file under another option is not the owner's line.
	if cfg, _ := b.check("listener 8883\ncertfile " + ca + "\nkeyfile " + ca + "\n"); cfg != nil {
		t.Error("certfile outside accepted")
	}
}

func TestConfineKeptIncludeOutsideIsNotQuoted(t *testing.T) {
	b := newBox(t)
	dir := filepath.Join(b.outside, "conf.d")
	b.confine.Kept = func(option, value string) bool { return option == "include_dir" && value == dir }
	_, ds := b.check("include_dir " + dir + "\n")
	want := []string{
		`mosquitto.conf:1: include_dir: "` + filepath.Join(dir, "listed.conf") + `" is not a regular file`,
		filepath.Join(dir, "secret.conf") + ":1: this line is wrong (the console does not quote files outside the box's folders: look at this line on the box)",
	}
	if got := messages(ds.Errors); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors\n got %q\nwant %q", got, want)
	}
	for _, d := range ds.Errors {
		if strings.Contains(d.Error(), secret) {
			t.Errorf("quotes a file outside: %s", d)
		}
	}
}

func TestConfineDoesNotQuoteIncludedFiles(t *testing.T) {
	b := newBox(t)
	inc := filepath.Join(b.data, "conf.d")
	if err := os.MkdirAll(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	text := secret + " x\nport " + secret + "\nconnection " + secret + "\nacl_file " + filepath.Join(b.outside, "secret.txt") + "\nhttp_dir x\n"
	if err := os.WriteFile(filepath.Join(inc, "a.conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ds := b.check("include_dir conf.d\n")
	want := []string{
		"conf.d/a.conf:1: " + secret + ": unknown option", // the option word of a file inside
		"conf.d/a.conf:2: port: this line is wrong (the console does not quote included files: look at this line on the box)",
		"conf.d/a.conf:3: connection: this line is wrong (the console does not quote included files: look at this line on the box)",
		"conf.d/a.conf:3: connection: this line is wrong (the console does not quote included files: look at this line on the box)",
		"conf.d/a.conf:4: acl_file: names a file outside the box's folders, or in gatewayd's own: the console only accepts files in the box's folders",
		"conf.d/a.conf:5: http_dir: this line is wrong (the console does not quote included files: look at this line on the box)", // no folder x
	}
	got := messages(ds.Errors)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors\n got %q\nwant %q", got, want)
	}
	for _, d := range append(ds.Errors, ds.Warnings...) {
		if strings.Contains(d.Message, secret) {
			t.Errorf("quotes the included file: %s", d)
		}
	}
}
