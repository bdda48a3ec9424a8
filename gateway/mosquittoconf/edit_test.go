package mosquittoconf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sameBridge(t *testing.T, got, want Bridge) {
	t.Helper()
	got.Topics = append([]BridgeTopic(nil), got.Topics...)
	def := NewBridge(want.Name)
	normaliseBridge(&want, def)
	normaliseBridge(&got, def)
	clearPositions(&got)
	clearPositions(&want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bridge read back = %+v\nwant %+v", got, want)
	}
}

func TestUpsertBridgeAppends(t *testing.T) {
	path := filepath.Join("..", "..", "rootfs", "etc", "mosquitto", "mosquitto.conf")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := ParseDocument("mosquitto.conf", orig)
	b := NewBridge("cloud")
	b.Addresses = []BridgeAddress{{Host: "127.0.0.1", Port: 18830}, {Host: "::1", Port: 18831}}
	b.Topics = []BridgeTopic{{Pattern: "home/#", Direction: "out", QoS: 1}, {Pattern: "#", Direction: "in", LocalPrefix: "cloud/", RemotePrefix: ""}}
	b.RemoteUsername = "gw"
	b.RemotePassword = "s3cret pass #1"
	b.KeepaliveInterval = 20
	if err := d.UpsertBridge(b); err != nil {
		t.Fatal(err)
	}
	want := string(orig) + "\nconnection cloud\naddresses 127.0.0.1:18830 [::1]:18831\ntopic home/# out 1\ntopic # in 0 cloud/ \"\"\n" +
		"remote_username gw\nremote_password s3cret pass #1\nkeepalive_interval 20\n"
	if got := string(d.Bytes()); got != want {
		t.Fatalf("after upsert:\n%s\nwant:\n%s", got, want)
	}
	cfg := mustCheck(t, string(d.Bytes()), "")
	if len(cfg.Bridges) != 1 {
		t.Fatalf("bridges = %+v", cfg.Bridges)
	}
	sameBridge(t, cfg.Bridges[0], b)
	for i, l := range d.Lines {
		if l.Num != i+1 {
			t.Fatalf("line %d numbered %d", i+1, l.Num)
		}
	}
}

const crlfDoc = "# header\r\n" +
	"listener 1883\r\n" +
	"\r\n" +
	"# the cloud bridge\r\n" +
	"connection cloud\r\n" +
	"address old.example.com:1883\r\n" +
	"# keep this comment\r\n" +
	"topic old/# in 0\r\n" +
	"keepalive_interval 30\r\n" +
	"\r\n" +
	"connection other\r\n" +
	"address 10.0.0.1\r\n" +
	"topic x/# out 0\r\n"

func TestUpsertBridgeReplaces(t *testing.T) {
	d := ParseDocument("mosquitto.conf", []byte(crlfDoc))
	b := NewBridge("cloud")
	b.Addresses = []BridgeAddress{{Host: "new.example.com", Port: 8883}}
	b.Topics = []BridgeTopic{{Pattern: "new/#", Direction: "both", QoS: 2}}
	b.StartType = "lazy"
	b.RestartTimeoutBase, b.RestartTimeoutCap = 3, 0
	if err := d.UpsertBridge(b); err != nil {
		t.Fatal(err)
	}
	want := "# header\r\n" +
		"listener 1883\r\n" +
		"\r\n" +
		"# the cloud bridge\r\n" +
		"connection cloud\r\n" +
		"address new.example.com:8883\r\n" +
		"topic new/# both 2\r\n" +
		"start_type lazy\r\n" +
		"restart_timeout 3\r\n" +
		"# keep this comment\r\n" +
		"\r\n" +
		"connection other\r\n" +
		"address 10.0.0.1\r\n" +
		"topic x/# out 0\r\n"
	if got := string(d.Bytes()); got != want {
		t.Fatalf("after upsert:\n%q\nwant:\n%q", got, want)
	}
	cfg, ds := Check("mosquitto.conf", d.Bytes(), "")
	if !ds.OK() {
		t.Fatal(ds.Err())
	}
	sameBridge(t, cfg.Bridges[0], b)
	if cfg.Bridges[1].Name != "other" || cfg.Bridges[1].Addresses[0].Host != "10.0.0.1" {
		t.Fatalf("other bridge changed: %+v", cfg.Bridges[1])
	}
	if got := messages(ds.Warnings); len(got) != 0 {
		t.Fatalf("warnings = %q", got)
	}
}

// Writing back a parsed bridge unchanged keeps its meaning, whatever its
// options were written as.
func TestUpsertParsedBridgeUnchanged(t *testing.T) {
	dir := testDir(t)
	conf := "listener 1883\n\nconnection b\nusername u\npassword p w\nclientid rid\naddresses h1:1 [::1]:2\n" +
		"topic # both 1 \"\" remote/\ntopic \"\" in 0 l/ r/\nkeepalive_interval 2\nbridge_cafile certs/ca.crt\n" +
		"bridge_certfile certs/server.crt\nbridge_keyfile certs/server.key\nbridge_insecure true\n# end\n"
	cfg, ds := Check("m.conf", []byte(conf), dir)
	if !ds.OK() {
		t.Fatal(ds.Err())
	}
	d := ParseDocument("m.conf", []byte(conf))
	if err := d.UpsertBridge(cfg.Bridges[0]); err != nil {
		t.Fatal(err)
	}
	cfg2, ds := Check("m.conf", d.Bytes(), dir)
	if !ds.OK() {
		t.Fatalf("%v\n%s", ds.Err(), d.Bytes())
	}
	sameBridge(t, cfg2.Bridges[0], cfg.Bridges[0])
	if !strings.HasPrefix(string(d.Bytes()), "listener 1883\n\nconnection b\n") || !strings.HasSuffix(string(d.Bytes()), "bridge_insecure true\n# end\n") {
		t.Fatalf("unexpected text:\n%s", d.Bytes())
	}
}

func TestUpsertNoFinalNewline(t *testing.T) {
	d := ParseDocument("m.conf", []byte("listener 1883\nconnection a\naddress h\ntopic #"))
	b := NewBridge("a")
	b.Addresses = []BridgeAddress{{Host: "h2"}}
	b.Topics = []BridgeTopic{{Pattern: "x"}}
	if err := d.UpsertBridge(b); err != nil {
		t.Fatal(err)
	}
	if got, want := string(d.Bytes()), "listener 1883\nconnection a\naddress h2:1883\ntopic x out 0"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Appending to a file without a final newline ends its last line first.
	d = ParseDocument("m.conf", []byte("listener 1883"))
	if err := d.UpsertBridge(b); err != nil {
		t.Fatal(err)
	}
	if got, want := string(d.Bytes()), "listener 1883\n\nconnection a\naddress h2:1883\ntopic x out 0\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// An empty document gets just the block.
	d = ParseDocument("m.conf", nil)
	if err := d.UpsertBridge(b); err != nil {
		t.Fatal(err)
	}
	if got, want := string(d.Bytes()), "connection a\naddress h2:1883\ntopic x out 0\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRemoveBridge(t *testing.T) {
	d := ParseDocument("mosquitto.conf", []byte(crlfDoc))
	if err := d.RemoveBridge("cloud"); err != nil {
		t.Fatal(err)
	}
	want := "# header\r\nlistener 1883\r\n\r\n# the cloud bridge\r\n# keep this comment\r\n\r\n" +
		"connection other\r\naddress 10.0.0.1\r\ntopic x/# out 0\r\n"
	if got := string(d.Bytes()); got != want {
		t.Fatalf("after remove:\n%q\nwant:\n%q", got, want)
	}
	if err := d.RemoveBridge("cloud"); err == nil || err.Error() != `mosquitto.conf: no bridge "cloud"` {
		t.Fatalf("second remove: %v", err)
	}
	if err := d.RemoveBridge("other"); err != nil {
		t.Fatal(err)
	}
	cfg := mustCheck(t, string(d.Bytes()), "")
	if len(cfg.Bridges) != 0 || len(cfg.Listeners) != 1 {
		t.Fatalf("after removing both: %+v", cfg)
	}
	// The last line removed from a file without a final newline.
	d = ParseDocument("m.conf", []byte("listener 1883\nconnection a\naddress h\ntopic #"))
	if err := d.RemoveBridge("a"); err != nil {
		t.Fatal(err)
	}
	if got := string(d.Bytes()); got != "listener 1883" {
		t.Fatalf("got %q", got)
	}
}

func TestUpsertBridgeRefuses(t *testing.T) {
	good := func() Bridge {
		b := NewBridge("cloud")
		b.Addresses = []BridgeAddress{{Host: "h", Port: 1883}}
		b.Topics = []BridgeTopic{{Pattern: "a/#", Direction: "out"}}
		return b
	}
	cases := []struct {
		name string
		edit func(*Bridge)
		want string
	}{
		{"line break in password", func(b *Bridge) { b.RemotePassword = "x\nlistener 1" }, `bridge "cloud": remote_password "x\nlistener 1" contains a line break or NUL`},
		{"blank in name", func(b *Bridge) { b.Name = "my cloud" }, `bridge "my cloud": name "my cloud" contains a blank`},
		{"empty name", func(b *Bridge) { b.Name = "" }, "bridge: missing name"},
		{"trailing blank", func(b *Bridge) { b.RemoteUsername = "u " }, `bridge "cloud": remote_username "u " starts or ends with a blank`},
		{"hash prefix", func(b *Bridge) { b.Topics[0].LocalPrefix = "#x" }, `bridge "cloud": local prefix "#x" starts with # (it would read as a comment)`},
		{"no address", func(b *Bridge) { b.Addresses = nil }, `bridge "cloud": bridge cloud:1: connection: bridge "cloud" has no address`},
		{"bad pattern", func(b *Bridge) { b.Topics[0].Pattern = "a/#/b" }, `bridge "cloud": bridge cloud:3: topic: invalid pattern "a/#/b": # must be the whole last level`},
		{"bad port", func(b *Bridge) { b.Addresses[0].Port = 70000 }, `bridge "cloud": bridge cloud:2: address: port 70000 out of range 1-65535 in address "h:70000"`},
		{"clamped keepalive", func(b *Bridge) { b.KeepaliveInterval = 2 }, `bridge "cloud": cannot be written as mosquitto.conf lines that mean the same (check values Mosquitto would change, such as a keepalive_interval below 5)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := ParseDocument("m.conf", []byte(crlfDoc))
			b := good()
			c.edit(&b)
			err := d.UpsertBridge(b)
			if err == nil || err.Error() != c.want {
				t.Fatalf("err = %v\nwant %s", err, c.want)
			}
			if !bytes.Equal(d.Bytes(), []byte(crlfDoc)) {
				t.Fatal("document changed by a refused upsert")
			}
		})
	}
}
