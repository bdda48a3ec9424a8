package mosquittoconf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testDir makes a broker folder with the files the conf lines below name.
func testDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"pw", "acl", "certs/server.crt", "certs/server.key", "certs/ca.crt"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"capath", "sub"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func messages(ds []Diagnostic) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Error())
	}
	return out
}

const bridgeOK = "connection b\naddress 127.0.0.1:1883\ntopic # out 0\n"

func TestCheckErrors(t *testing.T) {
	dir := testDir(t)
	cases := []struct {
		name string
		conf string
		want []string // exact errors; {dir} stands for the test folder
	}{
		{"port out of range", "listener 70000\n", []string{"mosquitto.conf:1: listener: port 70000 out of range 0-65535"}},
		{"negative port", "listener -1\n", []string{"mosquitto.conf:1: listener: port -1 out of range 0-65535"}},
		{"port not a number", "\n\nlistener abc\n", []string{`mosquitto.conf:3: listener: invalid port "abc"`}},
		{"listener without port", "listener\n", []string{"mosquitto.conf:1: listener: missing port"}},
		{"unix socket", "listener 0 /run/mqtt.sock\n", []string{"mosquitto.conf:1: listener: unix socket listeners are not supported"}},
		{"bad bind address", "listener 1883 bad!host\n", []string{`mosquitto.conf:1: listener: invalid address "bad!host"`}},
		{"old port out of range", "port 65536\n", []string{"mosquitto.conf:1: port: 65536 out of range 0-65535"}},
		{"unknown option", "listener 1883\nfoo bar\n", []string{"mosquitto.conf:2: foo: unknown option"}},
		{"typo", "allow_anonymus true\n", []string{"mosquitto.conf:1: allow_anonymus: unknown option (did you mean allow_anonymous?)"}},
		{"tab separated typo", "persistance\ttrue\n", []string{"mosquitto.conf:1: persistance: unknown option (did you mean persistence?)"}},
		{"bad boolean", "allow_anonymous yes\n", []string{`mosquitto.conf:1: allow_anonymous: invalid value "yes": want true or false`}},
		{"missing boolean", "persistence\n", []string{"mosquitto.conf:1: persistence: missing value"}},
		{"bad protocol", "listener 1883\nprotocol mqtts\n", []string{`mosquitto.conf:2: protocol: invalid value "mqtts": want mqtt or websockets`}},
		{"bad tls_version", "listener 8883\ncertfile certs/server.crt\nkeyfile certs/server.key\ntls_version tlsv1.0\n", []string{`mosquitto.conf:4: tls_version: invalid value "tlsv1.0": want tlsv1.3, tlsv1.2 or tlsv1.1`}},
		{"max_packet_size too small", "max_packet_size 10\n", []string{"mosquitto.conf:1: max_packet_size: 10 out of range 20-268435460"}},
		{"max_keepalive too big", "max_keepalive 70000\n", []string{"mosquitto.conf:1: max_keepalive: 70000 out of range 0-65535"}},
		{"sys_interval negative", "sys_interval -1\n", []string{"mosquitto.conf:1: sys_interval: -1 out of range 0-65535"}},
		{"queue negative", "max_queued_messages -5\n", []string{"mosquitto.conf:1: max_queued_messages: -5 is too small: want 0 or more"}},
		{"not a number", "max_inflight_messages x\n", []string{`mosquitto.conf:1: max_inflight_messages: invalid number "x"`}},
		{"huge number", "autosave_interval 99999999999999999999\n", []string{`mosquitto.conf:1: autosave_interval: invalid number "99999999999999999999"`}},
		{"message_size_limit", "message_size_limit 300000000\n", []string{"mosquitto.conf:1: message_size_limit: 300000000 out of range 0-268435455"}},
		{"log_dest", "log_dest screen\n", []string{`mosquitto.conf:1: log_dest: invalid value "screen": want none, syslog, stdout, stderr, topic, dlt or file PATH`}},
		{"log_dest file twice", "log_dest file /tmp/a.log\nlog_dest file /tmp/b.log\n", []string{"mosquitto.conf:2: log_dest: a second log file (the first is at mosquitto.conf:1)"}},
		{"log_dest file without path", "log_dest file\n", []string{"mosquitto.conf:1: log_dest: missing file name after file"}},
		{"log_type", "log_type everything\n", []string{`mosquitto.conf:1: log_type: invalid value "everything": want none, information, notice, warning, error, debug, subscribe, unsubscribe, internal, websockets or all`}},
		{"duplicate listener", "listener 1883\nlistener 1883\n", []string{"mosquitto.conf:2: listener: port 1883 on all addresses is already used by the listener at mosquitto.conf:1"}},
		{"duplicate listener with address", "listener 1883 127.0.0.1\nlistener 1884\nlistener 1883 127.0.0.1\n", []string{"mosquitto.conf:3: listener: port 1883 on 127.0.0.1 is already used by the listener at mosquitto.conf:1"}},
		{"default listener clashes", "port 1883\nlistener 1883\n", []string{"mosquitto.conf:1: listener: port 1883 on all addresses is already used by the listener at mosquitto.conf:2"}},
		{"missing password file", "password_file nope.txt\n", []string{`mosquitto.conf:1: password_file: cannot use "nope.txt": no such file or folder (looked for {dir}/nope.txt)`}},
		{"acl file is a folder", "acl_file sub\n", []string{`mosquitto.conf:1: acl_file: "sub" is not a regular file (looked for {dir}/sub)`}},
		{"absolute missing cafile", "listener 8883\ncertfile certs/server.crt\nkeyfile certs/server.key\ncafile /nonexistent/ca.crt\n", []string{`mosquitto.conf:4: cafile: cannot use "/nonexistent/ca.crt": no such file or folder`}},
		{"capath not a folder", "listener 8883\ncertfile certs/server.crt\nkeyfile certs/server.key\ncapath pw\n", []string{`mosquitto.conf:4: capath: "pw" is not a folder (looked for {dir}/pw)`}},
		{"password_file twice", "password_file pw\n\npassword_file pw\n", []string{"mosquitto.conf:3: password_file: set twice (first at mosquitto.conf:1)"}},
		{"certfile without keyfile", "listener 8883\ncertfile certs/server.crt\n", []string{"mosquitto.conf:2: certfile: needs keyfile in the same listener"}},
		{"keyfile without certfile", "listener 8883\nkeyfile certs/server.key\n", []string{"mosquitto.conf:2: keyfile: needs certfile in the same listener"}},
		{"cafile without certfile", "listener 8883\ncafile certs/ca.crt\n", []string{"mosquitto.conf:2: cafile: needs certfile and keyfile in the same listener (TLS is on when certfile is set)"}},
		{"require_certificate without ca", "listener 8883\ncertfile certs/server.crt\nkeyfile certs/server.key\nrequire_certificate true\n", []string{"mosquitto.conf:4: require_certificate: needs cafile or capath to check client certificates"}},
		{"tls options stay in their listener", "listener 8883\ncertfile certs/server.crt\nlistener 8884\nkeyfile certs/server.key\n", []string{
			"mosquitto.conf:2: certfile: needs keyfile in the same listener",
			"mosquitto.conf:4: keyfile: needs certfile in the same listener",
		}},
		{"per_listener_settings late", "allow_anonymous true\nper_listener_settings true\n", []string{"mosquitto.conf:2: per_listener_settings: must come before any security option (allow_anonymous at mosquitto.conf:1)"}},
		{"include_dir missing", "include_dir nope\n", []string{`mosquitto.conf:1: include_dir: cannot read folder "nope": no such file or folder`}},
		{"nul byte", "listener 1883\x00\n", []string{"mosquitto.conf:1: listener: line contains a NUL byte"}},
		{"invalid utf-8", "password_file p\xffw\n", []string{"mosquitto.conf:1: password_file: line is not valid UTF-8"}},
		{"bridge option outside bridge", "topic a/# both 0\n", []string{"mosquitto.conf:1: topic: only allowed in a bridge, after a connection line"}},
		{"unsupported bridge option outside bridge", "round_robin true\n", []string{"mosquitto.conf:1: round_robin: only allowed in a bridge, after a connection line"}},
		{"bridge without address or topic", "connection a\n", []string{
			`mosquitto.conf:1: connection: bridge "a" has no address`,
			`mosquitto.conf:1: connection: bridge "a" has no topic`,
		}},
		{"connection without name", "connection\naddress h:1883\ntopic #\n", []string{"mosquitto.conf:1: connection: missing value"}},
		{"duplicate bridge", bridgeOK + "connection b\naddress h:1\ntopic #\n", []string{`mosquitto.conf:4: connection: duplicate bridge name "b" (first at mosquitto.conf:1)`}},
		{"bridge port out of range", "connection a\naddress h:99999\ntopic #\n", []string{`mosquitto.conf:2: address: port 99999 out of range 1-65535 in address "h:99999"`}},
		{"bridge port not a number", "connection a\naddress h:x\ntopic #\n", []string{`mosquitto.conf:2: address: invalid port "x" in address "h:x"`}},
		{"bridge empty port", "connection a\naddresses good:1883 h:\ntopic #\n", []string{`mosquitto.conf:2: addresses: invalid port "" in address "h:"`}},
		{"bridge missing host", "connection a\naddress :1883\ntopic #\n", []string{`mosquitto.conf:2: address: missing host in address ":1883"`}},
		{"bridge bad host chars", "connection a\naddress ex$ample:1883\ntopic #\n", []string{`mosquitto.conf:2: address: invalid host "ex$ample" in address "ex$ample:1883"`}},
		{"bridge bracket", "connection a\naddress [::1\ntopic #\n", []string{`mosquitto.conf:2: address: invalid address "[::1": missing ]`}},
		{"address twice", "connection a\naddress h:1883\naddress g:1883\ntopic #\n", []string{`mosquitto.conf:3: address: bridge "a" already has its addresses (at mosquitto.conf:2); list them all on one line`}},
		{"bad direction", "connection a\naddress h\ntopic a/# sideways\n", []string{`mosquitto.conf:3: topic: invalid direction "sideways": want in, out or both`}},
		{"bad qos", "connection a\naddress h\ntopic a/# in 3\n", []string{`mosquitto.conf:3: topic: invalid qos "3": want 0, 1 or 2`}},
		{"bad pattern plus", "connection a\naddress h\ntopic a/b+/c\n", []string{`mosquitto.conf:3: topic: invalid pattern "a/b+/c": + must be a whole level`}},
		{"bad pattern hash", "connection a\naddress h\ntopic a/#/c both\n", []string{`mosquitto.conf:3: topic: invalid pattern "a/#/c": # must be the whole last level`}},
		{"wildcard prefix", "connection a\naddress h\ntopic x in 0 local/+/ remote/\n", []string{`mosquitto.conf:3: topic: invalid local prefix "local/+/": wildcards are not allowed`}},
		{"empty pattern one prefix", "connection a\naddress h\ntopic \"\" in 0 \"\" remote/\n", []string{`mosquitto.conf:3: topic: an empty pattern ("") needs both a local and a remote prefix`}},
		{"protocol version", "connection a\naddress h\ntopic #\nbridge_protocol_version mqttv5\n", []string{`mosquitto.conf:4: bridge_protocol_version: invalid value "mqttv5": want mqttv31, mqttv311 or mqttv50`}},
		{"restart_timeout cap below base", "connection a\naddress h\ntopic #\nrestart_timeout 30 10\n", []string{"mosquitto.conf:4: restart_timeout: cap 10 is lower than base 30"}},
		{"restart_timeout word", "connection a\naddress h\ntopic #\nrestart_timeout soon\n", []string{`mosquitto.conf:4: restart_timeout: invalid number "soon"`}},
		{"start_type manual", "connection a\naddress h\ntopic #\nstart_type manual\n", []string{`mosquitto.conf:4: start_type: cannot apply on this box: "manual" needs a control API to start the bridge, which this box does not have; use automatic, lazy or once`}},
		{"keepalive too big", "connection a\naddress h\ntopic #\nkeepalive_interval 70000\n", []string{"mosquitto.conf:4: keepalive_interval: 70000 is too big: want 65535 or less"}},
		{"notification topic wildcard", "connection a\naddress h\ntopic #\nnotification_topic state/#\n", []string{`mosquitto.conf:4: notification_topic: invalid topic "state/#": wildcards are not allowed`}},
		{"bridge remote_username twice", "connection a\naddress h\ntopic #\nusername u\nremote_username v\n", []string{"mosquitto.conf:5: remote_username: set twice (first at mosquitto.conf:4)"}},
		{"bridge certfile alone", "connection a\naddress h\ntopic #\nbridge_certfile certs/server.crt\n", []string{
			"mosquitto.conf:4: bridge_certfile: needs bridge_keyfile in the same bridge",
			"mosquitto.conf:4: bridge_certfile: needs bridge_cafile or bridge_capath in the same bridge (TLS to the remote is on when one is set)",
		}},
		{"bridge missing cafile", "connection a\naddress h\ntopic #\nbridge_cafile ca.pem\n", []string{`mosquitto.conf:4: bridge_cafile: cannot use "ca.pem": no such file or folder (looked for {dir}/ca.pem)`}},
		{"same local clientid", bridgeOK + "local_clientid here\nconnection c\naddress h\ntopic #\nlocal_clientid here\n", []string{`mosquitto.conf:5: connection: bridge "c" has the same local_clientid "here" as bridge "b"; set local_clientid on one of them`}},
		{"errors sorted and all reported", "listener 1883\nprotocol x\nsys_interval y\nbogus\n", []string{
			`mosquitto.conf:2: protocol: invalid value "x": want mqtt or websockets`,
			`mosquitto.conf:3: sys_interval: invalid number "y"`,
			"mosquitto.conf:4: bogus: unknown option",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, ds := Check("mosquitto.conf", []byte(c.conf), dir)
			var want []string
			for _, w := range c.want {
				want = append(want, strings.ReplaceAll(w, "{dir}", dir))
			}
			if got := messages(ds.Errors); !reflect.DeepEqual(got, want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if (cfg == nil) != (len(want) > 0) {
				t.Fatalf("config = %v with %d errors", cfg, len(want))
			}
			if len(want) > 0 {
				if ds.OK() || ds.Err() == nil {
					t.Fatal("OK() or Err() says no error")
				}
				if got := ds.Err().Error(); got != strings.Join(want, "\n") {
					t.Fatalf("Err() = %q", got)
				}
			} else if !ds.OK() || ds.Err() != nil {
				t.Fatal("OK() or Err() reports an error")
			}
		})
	}
}

func TestCheckWarnings(t *testing.T) {
	dir := testDir(t)
	cases := []struct {
		name string
		conf string
		want []string
	}{
		{"log_dest topic", "log_dest topic\n", []string{"mosquitto.conf:1: log_dest: topic: not supported yet (logs are not published on $SYS/broker/log), ignored"}},
		{"removed in Mosquitto 2.0", "retry_interval 20\n", []string{"mosquitto.conf:1: retry_interval: no longer available (Mosquitto 2.0 removed it too); ignored"}},
		{"extra words", "listener 1883 127.0.0.1 extra words\nsys_interval 5 6\n", []string{
			`mosquitto.conf:1: listener: extra text "extra words" ignored`,
			`mosquitto.conf:2: sys_interval: extra text "6" ignored`,
		}},
		{"trailing comment is no extra", "listener 1883 # plain MQTT\nsys_interval 5 #seconds\n", nil},
		{"low keepalive", bridgeOK + "keepalive_interval 2\n", []string{"mosquitto.conf:4: keepalive_interval: 2 is too low, using 5 seconds"}},
		{"port twice", "port 1883\nport 1884\n", []string{"mosquitto.conf:2: port: default listener port set again; only the last one is used"}},
		{"per listener security before any listener", "per_listener_settings true\npassword_file pw\nlistener 1883\n", []string{
			"mosquitto.conf:2: password_file: applies to no listener (per_listener_settings is true and no listener comes before it), ignored",
		}},
		{"per_listener_settings cannot be undone", "per_listener_settings true\nper_listener_settings false\n", []string{
			"mosquitto.conf:2: per_listener_settings: already true; it cannot be turned off again, ignored",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, ds := Check("mosquitto.conf", []byte(c.conf), dir)
			if !ds.OK() || cfg == nil {
				t.Fatalf("errors: %v", ds.Err())
			}
			if got := messages(ds.Warnings); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			for _, w := range ds.Warnings {
				if !w.Warning {
					t.Errorf("%v: Warning is false", w)
				}
			}
		})
	}
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "pw")); err != nil {
		t.Fatal(err)
	}
	_, ds := Check("m.conf", []byte("password_file pw\n"), dir)
	want := `m.conf:1: password_file: cannot use "pw": no such file or folder (looked for ` + dir + `/pw)`
	if got := messages(ds.Errors); len(got) != 1 || got[0] != want {
		t.Fatalf("errors = %q, want %q", got, want)
	}
	if os.Geteuid() != 0 { // root reads files whatever their mode
		p := filepath.Join(dir, "secret")
		if err := os.WriteFile(p, []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		_, ds = Check("m.conf", []byte("acl_file secret\n"), dir)
		want = `m.conf:1: acl_file: cannot read "secret": permission denied (looked for ` + p + `)`
		if got := messages(ds.Errors); len(got) != 1 || got[0] != want {
			t.Fatalf("errors = %q, want %q", got, want)
		}
	}
}
