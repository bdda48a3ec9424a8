package confflow

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/supervisor"
)

const secret = "SECRET-root-hash"

// boxFixture is a flow over a box root laid out as gatewayd lays it out,
// and a folder outside the box holding a secret.
type boxFixture struct {
	root, conf, data, outside string
	apps                      *fakeApps
	hist                      *History
	flow                      *Flow
}

func newBoxFixture(t *testing.T, conf string, script func(*fakeApps, int, int) []supervisor.AppState) *boxFixture {
	t.Helper()
	real := func(d string) string {
		r, err := filepath.EvalSymlinks(d)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	x := &boxFixture{root: real(t.TempDir()), outside: real(t.TempDir())}
	x.conf = filepath.Join(x.root, "etc/mosquitto/mosquitto.conf")
	x.data = filepath.Join(x.root, "data")
	for _, f := range []struct{ path, text string }{
		{x.conf, conf},
		{filepath.Join(x.root, "etc/mosquitto/certs/ca.crt"), "x\n"},
		{filepath.Join(x.data, "passwd"), ""},
		{filepath.Join(x.outside, "secret.txt"), secret + "\n"},
		{filepath.Join(x.outside, "ca.crt"), "x\n"},
	} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, []byte(f.text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x.apps = newFakeApps(t, x.conf)
	x.apps.onRestart = script
	x.hist = NewHistory(filepath.Join(x.root, "data/gateway/config-history"), 0)
	x.flow = New(Options{Apps: x.apps, ConfPath: x.conf, BrokerDir: x.data, History: x.hist,
		ReadyTimeout: 2 * time.Second, Settle: 5 * time.Millisecond})
	return x
}

func (x *boxFixture) run(files ...File) (Result, error) {
	return x.flow.Run(context.Background(), "edit", func() ([]File, error) { return files, nil })
}

// unchanged fails unless the conf still holds was, nothing was kept in the
// history and the broker was not restarted.
func (x *boxFixture) unchanged(t *testing.T, was string) {
	t.Helper()
	if b, _ := os.ReadFile(x.conf); string(b) != was {
		t.Errorf("conf now %q, want %q", b, was)
	}
	if l, _ := x.hist.List(KindConf); len(l) != 0 {
		t.Errorf("history %v, want none", l)
	}
	if n, _, _ := x.apps.state(); n != 0 {
		t.Errorf("%d restarts, want none", n)
	}
}

func TestConfinementComesFromTheBoxRoot(t *testing.T) {
	x := newBoxFixture(t, "", ready)
	c := x.flow.Confinement()
	want := [][]string{
		{filepath.Join(x.root, "etc/mosquitto"), filepath.Join(x.root, "data")},
		{filepath.Join(x.root, "var/log/gateway")},
		{filepath.Join(x.root, "data/gateway"), filepath.Join(x.root, "data/gateway/config-history")},
	}
	if got := [][]string{c.Folders, c.LogFolders, c.Refused}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("confinement %q, want %q", got, want)
	}
	x.flow.o.Root = "/box"
	if c := x.flow.Confinement(); !slices.Equal(c.Folders, []string{filepath.Join(x.root, "etc/mosquitto"), "/box/data"}) {
		t.Errorf("with Root: %q", c.Folders)
	}
}

func TestRunRefusesAConfNamingAFileOutside(t *testing.T) {
	const was = "listener 1883\n"
	x := newBoxFixture(t, was, ready)
	conf := "listener 1883\n\nacl_file " + filepath.Join(x.outside, "secret.txt") + "\n"
	_, err := x.run(File{Path: x.conf, Kind: KindConf, Data: []byte(conf)})
	var ce *CheckError
	if !errors.As(err, &ce) || len(ce.Diagnostics.Errors) != 1 {
		t.Fatalf("err %v, want one check error", err)
	}
	d := ce.Diagnostics.Errors[0]
	want := "mosquitto.conf:3: acl_file: " + filepath.Join(x.outside, "secret.txt") + " is outside the box's folders (" +
		filepath.Join(x.root, "etc/mosquitto") + ", " + x.data + "): the console only accepts files there"
	if d.Error() != want {
		t.Errorf("error %q\nwant %q", d, want)
	}
	x.unchanged(t, was)
}

func TestRunKeepsTheOwnersFilesOutside(t *testing.T) {
	outside := t.TempDir()
	ca := filepath.Join(outside, "ca.crt")
	if err := os.WriteFile(ca, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Written by the owner over SSH: a certificate in /etc/ssl, say.
	was := "listener 8883\ncertfile " + ca + "\nkeyfile " + ca + "\n"
	x := newBoxFixture(t, was, ready)
	if _, err := x.run(File{Path: x.conf, Kind: KindConf, Data: []byte(was + "max_connections 10\n")}); err != nil {
		t.Errorf("an edit keeping the owner's lines: %v", err)
	}
	// Another file outside, in the owner's line's place, is refused.
	other := strings.Replace(was, "certfile "+ca, "certfile "+filepath.Join(x.outside, "ca.crt"), 1)
	var ce *CheckError
	if _, err := x.run(File{Path: x.conf, Kind: KindConf, Data: []byte(other)}); !errors.As(err, &ce) ||
		len(ce.Diagnostics.Errors) != 1 || !strings.Contains(ce.Diagnostics.Errors[0].Error(), "mosquitto.conf:2: certfile: ") {
		t.Errorf("err %v, want certfile refused", err)
	}
}

func TestRunWritesNoFileOutside(t *testing.T) {
	const was = "listener 1883\n"
	x := newBoxFixture(t, was, ready)
	for _, p := range []string{filepath.Join(x.outside, "passwd"), "../../" + filepath.Base(x.outside) + "/passwd", filepath.Join(x.data, "gateway/passwd")} {
		_, err := x.run(File{Path: p, Kind: KindPasswords, Data: []byte("u:x\n")})
		if !errors.Is(err, ErrOutside) {
			t.Errorf("%s: err %v, want ErrOutside", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(x.outside, "passwd")); err == nil {
		t.Error("a file was written outside")
	}
	x.unchanged(t, was)
	// Inside, it is written.
	if _, err := x.run(File{Path: filepath.Join(x.data, "passwd"), Kind: KindPasswords, Data: []byte("u:x\n")}); err != nil {
		t.Errorf("password file in data: %v", err)
	}
}

func TestRolledBackLogQuotesNoOtherFile(t *testing.T) {
	outside := t.TempDir()
	acl := filepath.Join(outside, "acl")
	if err := os.WriteFile(acl, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The owner's acl_file, which the broker fails on when it restarts.
	was := "listener 1883\nacl_file " + acl + "\n"
	x := newBoxFixture(t, was, then(func(f *fakeApps, _, pid int) []supervisor.AppState {
		f.log("2026-11-23T09:19:10.200Z error: broker: acl_file: " + acl + `:1: unknown keyword "` + secret + `" (want user, topic or pattern)`)
		return []supervisor.AppState{{Status: "launching", PID: pid}, {Status: "errored", LastExitAt: time.Now(), LastError: "exit status 1"}}
	}, ready))
	_, err := x.run(File{Path: x.conf, Kind: KindConf, Data: []byte(was + "max_connections 10\n")})
	var rb *RolledBackError
	if !errors.As(err, &rb) || rb.RestoreErr != nil {
		t.Fatalf("err %v, want a rollback", err)
	}
	if !strings.Contains(rb.BrokerError, acl+":1: (the rest is not shown") {
		t.Errorf("broker error %q, want the position of the acl line", rb.BrokerError)
	}
	for _, l := range append(rb.Log, rb.BrokerError) {
		if strings.Contains(l, secret) {
			t.Errorf("quotes the acl file: %s", l)
		}
	}
}

func TestUnquoteOthers(t *testing.T) {
	x := newBoxFixture(t, "", ready)
	shadow := filepath.Join(x.outside, "secret.txt")
	in := []string{
		"2026-11-23T09:19:10.200Z error: broker: acl_file: " + shadow + `:1: unknown keyword "` + secret + `" (want user, topic or pattern)`,
		"2026-11-23T09:19:10.200Z error: broker: password_file: passwd:2: user \"" + secret + "\": no password hash",
		"2026-11-23T09:19:10.200Z error: " + x.conf + ":1: listener: cannot listen on 127.0.0.1:1883: bind: address already in use",
		"2026-11-23T09:19:10.200Z error: mosquitto.conf:4: acl_file: names a file",
	}
	got := x.flow.unquoteOthers(slices.Clone(in))
	const cut = " (the rest is not shown: the console quotes no file but mosquitto.conf; look at this line on the box)"
	want := []string{
		"2026-11-23T09:19:10.200Z error: broker: acl_file: " + shadow + ":1:" + cut,
		"2026-11-23T09:19:10.200Z error: broker: password_file: passwd:2:" + cut,
		in[2], in[3],
	}
	if !slices.Equal(got, want) {
		t.Errorf("log\n got %q\nwant %q", got, want)
	}
	for _, l := range got {
		if strings.Contains(l, secret) {
			t.Errorf("quotes another file: %s", l)
		}
	}
}
