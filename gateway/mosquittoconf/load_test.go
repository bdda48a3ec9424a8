package mosquittoconf

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustCheck(t *testing.T, conf, dir string) *Config {
	t.Helper()
	cfg, ds := Check("mosquitto.conf", []byte(conf), dir)
	if !ds.OK() {
		t.Fatalf("unexpected errors:\n%v", ds.Err())
	}
	if cfg == nil {
		t.Fatal("nil config without errors")
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	cfg := mustCheck(t, "# nothing\n", "")
	want := Defaults()
	want.Files = []string{"mosquitto.conf"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("empty conf = %+v\nwant %+v", cfg, want)
	}
	if len(cfg.Listeners) != 0 || cfg.MaxInflightMessages != 20 || cfg.MaxQueuedMessages != 1000 ||
		cfg.MaxKeepalive != 65535 || !cfg.RetainAvailable || cfg.SysInterval != 10 || cfg.MaxConnections != -1 ||
		!cfg.ConnectionMessages || cfg.PersistenceFile != "mosquitto.db" || cfg.AutosaveInterval != 1800 ||
		cfg.Security.AllowAnonymous != nil {
		t.Fatalf("defaults differ from Mosquitto's: %+v", cfg)
	}
}

func TestFullConfig(t *testing.T) {
	dir := testDir(t)
	conf := `# every supported option
persistence true
persistence_location /var/lib/mosquitto/
persistence_file broker.db
autosave_interval 60
max_inflight_messages 0
max_queued_messages 5000
message_size_limit 1048576
max_packet_size 2097152
max_keepalive 120
retain_available false
sys_interval 0
connection_messages false
pid_file /run/mosquitto.pid
log_dest stdout
log_dest file /var/log/mosquitto/my log.log
log_type error
log_type warning
allow_anonymous false
password_file pw
acl_file acl
max_connections 500

listener 1883 127.0.0.1
max_connections 100

listener 8883
protocol mqtt
certfile certs/server.crt
keyfile certs/server.key
cafile certs/ca.crt
capath capath
require_certificate true
tls_version tlsv1.2

listener 9001 ::1
protocol websockets

connection cloud
addresses broker.example.com:8883 [2001:db8::1]:1884 192.0.2.7
topic sensors/# out 1 home/ gw/home/
topic cmd/+ in 2
topic "" both 0 local/ remote/
topic #
remote_username user name
remote_password p@ss word
remote_clientid gw-1
local_clientid gw-1-local
bridge_protocol_version mqttv50
cleansession true
keepalive_interval 30
notifications false
notifications_local_only true
notification_topic gw/state
try_private false
start_type lazy
restart_timeout 10 120
idle_timeout 90
threshold 5
bridge_cafile certs/ca.crt
bridge_certfile certs/server.crt
bridge_keyfile certs/server.key
bridge_insecure false
bridge_tls_version tlsv1.3
bridge_max_packet_size 65536
bridge_outgoing_retain false

connection second
address 10.0.0.2
topic a/b both
restart_timeout 7
`
	cfg := mustCheck(t, conf, dir)
	if !cfg.Persistence || cfg.PersistenceLocation != "/var/lib/mosquitto/" || cfg.PersistenceFile != "broker.db" ||
		cfg.AutosaveInterval != 60 || cfg.MaxInflightMessages != 0 || cfg.MaxQueuedMessages != 5000 ||
		cfg.MessageSizeLimit != 1048576 || cfg.MaxPacketSize != 2097152 || cfg.MaxKeepalive != 120 ||
		cfg.RetainAvailable || cfg.SysInterval != 0 || cfg.ConnectionMessages || cfg.PidFile != "/run/mosquitto.pid" ||
		cfg.MaxConnections != 500 {
		t.Errorf("broker options = %+v", cfg)
	}
	if want := []string{"stdout", "file /var/log/mosquitto/my log.log"}; !reflect.DeepEqual(cfg.LogDest, want) {
		t.Errorf("LogDest = %q, want %q", cfg.LogDest, want)
	}
	if want := []string{"error", "warning"}; !reflect.DeepEqual(cfg.LogType, want) {
		t.Errorf("LogType = %q, want %q", cfg.LogType, want)
	}
	sec := cfg.Security
	if sec.AllowAnonymous == nil || *sec.AllowAnonymous || sec.PasswordFile != "pw" || sec.ACLFile != "acl" {
		t.Errorf("security = %+v", sec)
	}
	if p := sec.Pos["password_file"]; p != (Pos{"mosquitto.conf", 20}) {
		t.Errorf("password_file pos = %v", p)
	}
	if len(cfg.Listeners) != 3 {
		t.Fatalf("listeners = %+v", cfg.Listeners)
	}
	l0, l1, l2 := cfg.Listeners[0], cfg.Listeners[1], cfg.Listeners[2]
	if l0.Port != 1883 || l0.Address != "127.0.0.1" || l0.Protocol != "mqtt" || l0.MaxConnections != 100 || l0.TLS() || l0.Pos.Line != 24 {
		t.Errorf("listener 0 = %+v", l0)
	}
	if l1.Port != 8883 || l1.Address != "" || !l1.TLS() || l1.CertFile != "certs/server.crt" || l1.KeyFile != "certs/server.key" ||
		l1.CAFile != "certs/ca.crt" || l1.CAPath != "capath" || !l1.RequireCertificate || l1.TLSVersion != "tlsv1.2" || l1.MaxConnections != -1 {
		t.Errorf("listener 1 = %+v", l1)
	}
	if p := l1.Where["certfile"]; p.Line != 29 {
		t.Errorf("certfile pos = %v", p)
	}
	if l2.Port != 9001 || l2.Address != "::1" || l2.Protocol != "websockets" {
		t.Errorf("listener 2 = %+v", l2)
	}
	if len(cfg.Bridges) != 2 {
		t.Fatalf("bridges = %+v", cfg.Bridges)
	}
	if cfg.Bridges[0].Pos != (Pos{"mosquitto.conf", 39}) || cfg.Bridges[0].Topics[1].Pos.Line != 42 {
		t.Errorf("bridge positions = %v %v", cfg.Bridges[0].Pos, cfg.Bridges[0].Topics[1].Pos)
	}
	b := cfg.Bridges[0]
	b.Topics = append([]BridgeTopic(nil), b.Topics...)
	clearPositions(&b)
	want := Bridge{
		Name: "cloud",
		Addresses: []BridgeAddress{
			{Host: "broker.example.com", Port: 8883},
			{Host: "2001:db8::1", Port: 1884},
			{Host: "192.0.2.7", Port: 1883},
		},
		Topics: []BridgeTopic{
			{Pattern: "sensors/#", Direction: "out", QoS: 1, LocalPrefix: "home/", RemotePrefix: "gw/home/"},
			{Pattern: "cmd/+", Direction: "in", QoS: 2},
			{Pattern: "", Direction: "both", QoS: 0, LocalPrefix: "local/", RemotePrefix: "remote/"},
			{Pattern: "#", Direction: "out"},
		},
		RemoteUsername: "user name", RemotePassword: "p@ss word", RemoteClientID: "gw-1", LocalClientID: "gw-1-local",
		ProtocolVersion: "mqttv50", CleanSession: true, KeepaliveInterval: 30, Notifications: false,
		NotificationsLocalOnly: true, NotificationTopic: "gw/state", TryPrivate: false, StartType: "lazy",
		RestartTimeoutBase: 10, RestartTimeoutCap: 120, IdleTimeout: 90, Threshold: 5,
		CAFile: "certs/ca.crt", CertFile: "certs/server.crt", KeyFile: "certs/server.key", Insecure: false,
		TLSVersion: "tlsv1.3", MaxPacketSize: 65536, OutgoingRetain: false,
		BridgeExtra: BridgeExtra{AttemptUnsubscribe: true, MaxTopicAlias: 10},
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("bridge = %+v\nwant %+v", b, want)
	}
	host, _ := os.Hostname()
	b2 := cfg.Bridges[1]
	if b2.RemoteClientID != host+".second" || b2.LocalClientID != "local."+host+".second" ||
		b2.NotificationTopic != "$SYS/broker/connection/"+host+".second/state" || b2.ProtocolVersion != "mqttv311" ||
		b2.KeepaliveInterval != 60 || !b2.Notifications || !b2.TryPrivate || b2.StartType != "automatic" ||
		b2.RestartTimeoutBase != 7 || b2.RestartTimeoutCap != 0 || b2.IdleTimeout != 60 || b2.Threshold != 10 ||
		!b2.OutgoingRetain || b2.CleanSession || b2.Addresses[0] != (BridgeAddress{"10.0.0.2", 1883}) {
		t.Errorf("bridge defaults = %+v", b2)
	}
	if p := cfg.Where["listener"]; p.Line != 36 {
		t.Errorf("Where[listener] = %v", p)
	}
}

func TestPerListenerScoping(t *testing.T) {
	dir := testDir(t)
	body := `listener 1883
allow_anonymous true
listener 8883 127.0.0.1
password_file pw
allow_anonymous false
acl_file acl
`
	cfg := mustCheck(t, "per_listener_settings true\n"+body, dir)
	if !cfg.PerListenerSettings {
		t.Fatal("per_listener_settings not set")
	}
	if cfg.Security.AllowAnonymous != nil || cfg.Security.PasswordFile != "" || cfg.Security.ACLFile != "" {
		t.Errorf("broker security used: %+v", cfg.Security)
	}
	s0, s1 := cfg.SecurityFor(cfg.Listeners[0]), cfg.SecurityFor(cfg.Listeners[1])
	if s0.AllowAnonymous == nil || !*s0.AllowAnonymous || s0.PasswordFile != "" {
		t.Errorf("listener 1883 security = %+v", s0)
	}
	if s1.AllowAnonymous == nil || *s1.AllowAnonymous || s1.PasswordFile != "pw" || s1.ACLFile != "acl" || s1.Pos["acl_file"].Line != 7 {
		t.Errorf("listener 8883 security = %+v", s1)
	}

	// The same lines without per_listener_settings set the broker's.
	cfg = mustCheck(t, body, dir)
	s := cfg.SecurityFor(cfg.Listeners[0])
	if s.AllowAnonymous == nil || *s.AllowAnonymous || s.PasswordFile != "pw" || s.ACLFile != "acl" {
		t.Errorf("broker security = %+v", s)
	}
	if cfg.Listeners[1].Security.PasswordFile != "" {
		t.Errorf("listener got security without per_listener_settings")
	}
	// Listener options stay with their listener; global ones stay global
	// wherever they are written.
	cfg = mustCheck(t, "listener 1883\nprotocol websockets\nsys_interval 3\nlistener 1884\n", dir)
	if cfg.Listeners[0].Protocol != "websockets" || cfg.Listeners[1].Protocol != "mqtt" || cfg.SysInterval != 3 {
		t.Errorf("scoping: %+v", cfg)
	}
}

func TestDefaultListener(t *testing.T) {
	dir := testDir(t)
	// Options before any listener line make Mosquitto's default listener,
	// added after the others.
	cfg := mustCheck(t, "port 1884\nbind_address 127.0.0.1\nprotocol websockets\nlistener 1883\n", dir)
	if len(cfg.Listeners) != 2 {
		t.Fatalf("listeners = %+v", cfg.Listeners)
	}
	if l := cfg.Listeners[1]; l.Port != 1884 || l.Address != "127.0.0.1" || l.Protocol != "websockets" || l.Pos.Line != 1 {
		t.Errorf("default listener = %+v", l)
	}
	if l := cfg.Listeners[0]; l.Port != 1883 || l.Protocol != "mqtt" {
		t.Errorf("listener = %+v", l)
	}
	// A listener option alone makes the default listener on 1883.
	cfg = mustCheck(t, "protocol websockets\n", dir)
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Port != 1883 || cfg.Listeners[0].Protocol != "websockets" {
		t.Errorf("listeners = %+v", cfg.Listeners)
	}
	// max_connections before any listener is the broker-wide limit.
	cfg = mustCheck(t, "max_connections -7\nlistener 1883\n", dir)
	if cfg.MaxConnections != -1 || len(cfg.Listeners) != 1 || cfg.Listeners[0].MaxConnections != -1 {
		t.Errorf("max_connections: %+v", cfg)
	}
	// Port 0 (any free port) may be used more than once.
	cfg = mustCheck(t, "listener 0 127.0.0.1\nlistener 0 127.0.0.1\n", dir)
	if len(cfg.Listeners) != 2 {
		t.Errorf("port 0 listeners = %+v", cfg.Listeners)
	}
}

func TestIncludeDir(t *testing.T) {
	dir := testDir(t)
	inc := filepath.Join(dir, "conf.d")
	files := map[string]string{
		"b.conf": "# b\nmax_connections 10\nconnection fromb\naddress 127.0.0.1:1884\ntopic # both\n",
		"A.conf": "listener 1885\nprotocol websockets\n",
		"c.txt":  "this is not read\n",
		".conf":  "neither is this\n",
		"d.conf": "include_dir elsewhere\ntopic x/#\n",
	}
	if err := os.Mkdir(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(inc, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	main := "listener 1883\ninclude_dir conf.d\ncertfile certs/server.crt\nkeyfile certs/server.key\n"
	cfg, ds := Check("mosquitto.conf", []byte(main), dir)
	wantErr := []string{"conf.d/d.conf:2: topic: only allowed in a bridge, after a connection line"}
	if got := messages(ds.Errors); !reflect.DeepEqual(got, wantErr) {
		t.Fatalf("errors = %q, want %q", got, wantErr)
	}
	wantWarn := []string{"conf.d/d.conf:1: include_dir: only read from the main config file, ignored"}
	if got := messages(ds.Warnings); !reflect.DeepEqual(got, wantWarn) {
		t.Fatalf("warnings = %q, want %q", got, wantWarn)
	}
	if cfg != nil {
		t.Fatal("config returned with errors")
	}

	// Without the bad file: the order is A.conf, b.conf; each included
	// file starts outside any listener, and the main file's listener
	// continues after the include_dir line.
	if err := os.Remove(filepath.Join(inc, "d.conf")); err != nil {
		t.Fatal(err)
	}
	cfg = mustCheck(t, main, dir)
	if want := []string{"mosquitto.conf", "conf.d/A.conf", "conf.d/b.conf"}; !reflect.DeepEqual(cfg.Files, want) {
		t.Errorf("files = %q, want %q", cfg.Files, want)
	}
	if len(cfg.Listeners) != 2 || cfg.Listeners[0].Port != 1883 || !cfg.Listeners[0].TLS() ||
		cfg.Listeners[1].Port != 1885 || cfg.Listeners[1].Protocol != "websockets" || cfg.Listeners[1].TLS() {
		t.Errorf("listeners = %+v", cfg.Listeners)
	}
	if cfg.MaxConnections != 10 || cfg.Listeners[0].MaxConnections != -1 {
		t.Errorf("max_connections from include = %d / %d", cfg.MaxConnections, cfg.Listeners[0].MaxConnections)
	}
	if len(cfg.Bridges) != 1 || cfg.Bridges[0].Pos != (Pos{"conf.d/b.conf", 3}) {
		t.Errorf("bridges = %+v", cfg.Bridges)
	}

	// A folder named *.conf is not a file to read.
	if err := os.Mkdir(filepath.Join(inc, "z.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, ds = Check("mosquitto.conf", []byte(main), dir)
	if got := messages(ds.Errors); len(got) != 1 || got[0] != `mosquitto.conf:2: include_dir: "conf.d/z.conf" is not a regular file` {
		t.Errorf("errors = %q", got)
	}
}

func TestLoad(t *testing.T) {
	dir := testDir(t)
	// Relative paths are taken from the working directory, as Mosquitto does.
	t.Chdir(dir)
	if err := os.WriteFile("mosquitto.conf", []byte("listener 1883\npassword_file pw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, ds := Load("mosquitto.conf")
	if !ds.OK() || cfg.Security.PasswordFile != "pw" || cfg.Files[0] != "mosquitto.conf" {
		t.Fatalf("Load: %v %+v", ds.Err(), cfg)
	}
	if err := os.WriteFile("bad.conf", []byte("listener 1883\npassword_file nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ds = Load("bad.conf")
	want := `bad.conf:2: password_file: cannot use "nope": no such file or folder (looked for ` + filepath.Join(dir, "nope") + ")"
	if got := messages(ds.Errors); len(got) != 1 || got[0] != want {
		t.Fatalf("errors = %q, want %q", got, want)
	}
	_, ds = Load(filepath.Join(dir, "missing.conf"))
	want = filepath.Join(dir, "missing.conf") + ": cannot read the config file: no such file or folder"
	if got := messages(ds.Errors); len(got) != 1 || got[0] != want {
		t.Fatalf("errors = %q, want %q", got, want)
	}
	_, ds = Load(dir)
	if got := messages(ds.Errors); len(got) != 1 || !strings.HasPrefix(got[0], dir+": cannot read the config file: ") {
		t.Fatalf("errors = %q", got)
	}
}

// The file the box ships must load as it is, with nothing to warn about.
func TestShippedConfig(t *testing.T) {
	path := filepath.Join("..", "..", "rootfs", "etc", "mosquitto", "mosquitto.conf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ds := Load(path)
	if !ds.OK() || len(ds.Warnings) > 0 {
		t.Fatalf("shipped config: %v %v", ds.Errors, ds.Warnings)
	}
	if len(cfg.Listeners) != 2 || cfg.Listeners[0].Port != 1883 || cfg.Listeners[1].Port != 9001 ||
		cfg.Listeners[1].Protocol != "websockets" || !cfg.Persistence ||
		cfg.Security.AllowAnonymous == nil || !*cfg.Security.AllowAnonymous {
		t.Errorf("shipped config = %+v", cfg)
	}
	if got := ParseDocument(path, data).Bytes(); !bytes.Equal(got, data) {
		t.Error("shipped config does not round-trip")
	}
}

// exampleConf reads the mosquitto.conf Debian ships as documentation.
func exampleConf(t *testing.T) []byte {
	t.Helper()
	const base = "/usr/share/doc/mosquitto/examples/mosquitto.conf"
	if data, err := os.ReadFile(base); err == nil {
		return data
	}
	f, err := os.Open(base + ".gz")
	if err != nil {
		t.Skipf("%s(.gz) not found (Debian package mosquitto, its docs): %v", base, err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestMosquittoExample(t *testing.T) {
	data := exampleConf(t)
	if got := ParseDocument("mosquitto.conf", data).Bytes(); !bytes.Equal(got, data) {
		t.Fatal("example does not round-trip")
	}
	cfg, ds := Check("mosquitto.conf", data, t.TempDir())
	if !ds.OK() || cfg == nil {
		t.Fatalf("example: %v", ds.Err())
	}

	// Every option the example documents (as "#option value") is known
	// by name: uncommented, none is an unknown option.
	var opts []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") || strings.HasPrefix(line, "# ") || strings.HasPrefix(line, "##") || len(line) < 2 {
			continue
		}
		name := strings.Fields(line[1:])[0]
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_0123456789.") != "" {
			continue
		}
		opts = append(opts, name)
		_, ds := Check("x.conf", []byte(line[1:]+"\n"), t.TempDir())
		for _, e := range ds.Errors {
			if strings.HasPrefix(e.Message, "unknown option") {
				t.Errorf("%q: %v", line, e)
			}
		}
	}
	if len(opts) < 80 {
		t.Fatalf("found only %d documented options in the example: %q", len(opts), opts)
	}
}
