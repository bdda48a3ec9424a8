package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/rootfs"
)

func TestShippedFileLoads(t *testing.T) {
	data, err := rootfs.FS.ReadFile("etc/gateway/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("gateway.yaml", data)
	if err != nil {
		t.Fatalf("the shipped gateway.yaml does not load:\n%v", err)
	}
	if cfg.Console.Listen != ":80" || len(cfg.LAN.Allow) != 1 || cfg.LAN.Allow[0] != "lan" || !cfg.Discovery.MDNS.Enabled {
		t.Errorf("console/lan/discovery = %+v %+v %+v", cfg.Console, cfg.LAN, cfg.Discovery)
	}
	mqtt, ok := cfg.App("mqtt")
	if !ok {
		t.Fatal("no mqtt app")
	}
	if mqtt.ReadyLog != `msg="broker running"` || mqtt.MaxMemory != 256<<20 || mqtt.MinUptime != 30*time.Second ||
		mqtt.BackoffMax != 15*time.Second || mqtt.KillTimeout != 5*time.Second || mqtt.StopSignal != syscall.SIGTERM {
		t.Errorf("mqtt = %+v", mqtt)
	}
	ha, _ := cfg.App("home-assistant")
	if ha.KillTimeout != 30*time.Second || ha.Delay != time.Second || len(ha.After) != 1 || ha.StopSignal != syscall.SIGTERM {
		t.Errorf("home-assistant = %+v", ha)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("g.yaml", []byte("apps:\n  - name: x\n    command: sleep\n    restart: {delay: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps[0]
	if a.KillTimeout != 5*time.Second || a.StopSignal != syscall.SIGTERM || a.Delay != 2*time.Second ||
		a.BackoffMax != 15*time.Second || a.MinUptime != 30*time.Second || a.MaxMemory != 0 {
		t.Errorf("defaults not applied field by field: %+v", a)
	}
	if cfg.Console.Listen != ":80" || cfg.LAN.Allow[0] != "lan" || !cfg.Discovery.MDNS.Enabled {
		t.Errorf("top-level defaults: %+v", cfg)
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"duration", "apps:\n  - name: x\n    command: sleep\n    kill_timeout: 5 seconds\n",
			`g.yaml:4: apps[x].kill_timeout: "5 seconds" is not a duration`},
		{"size", "apps:\n  - name: x\n    command: sleep\n    max_memory: lots\n",
			`g.yaml:4: apps[x].max_memory: "lots" is not a size`},
		{"signal", "apps:\n  - name: x\n    command: sleep\n    stop_signal: SIGFOO\n",
			`g.yaml:4: apps[x].stop_signal: "SIGFOO" is not a signal name`},
		{"unknown key", "apps:\n  - name: x\n    command: sleep\n    restrat: {}\n",
			`g.yaml:4: apps[x].restrat: unknown key`},
		{"nested unknown", "apps:\n  - name: x\n    command: sleep\n    restart:\n      dealy: 1s\n",
			`g.yaml:5: apps[x].restart.dealy: unknown key`},
		{"restart duration", "apps:\n  - name: x\n    command: sleep\n    restart:\n      delay: 1s\n      backoff_max: soon\n",
			`g.yaml:6: apps[x].restart.backoff_max: "soon" is not a duration`},
		{"yaml syntax", "apps:\n  - name: x\n\tcommand: sleep\n",
			`g.yaml:2: not valid YAML: found a tab character`},
		{"duplicate", "apps:\n  - name: x\n    command: a\n  - name: x\n    command: b\n",
			`g.yaml:4: apps[x].name: "x" is already the name of another app (the one at line 2)`},
		{"after unknown", "apps:\n  - name: x\n    command: a\n    after: [y]\n",
			`g.yaml:4: apps[x].after: names "y", which is not an app`},
		{"cycle", "apps:\n  - name: x\n    command: a\n    after: [y]\n  - name: y\n    command: b\n    after: [x]\n",
			`apps wait for each other in a circle`},
		{"no command", "apps:\n  - name: x\n",
			`g.yaml:2: apps[x].command: every app needs a command`},
		{"bad name", "apps:\n  - name: all\n    command: a\n",
			`g.yaml:2: apps[all].name: "all" is reserved`},
		{"ready tcp", "apps:\n  - name: x\n    command: a\n    ready: {tcp: \"1883\"}\n",
			`g.yaml:4: apps[x].ready.tcp: "1883" is not host:port`},
		{"ready log", "apps:\n  - name: x\n    command: a\n    ready: {log: \"([\"}\n",
			`g.yaml:4: apps[x].ready.log: is not a valid regular expression`},
		{"console", "console:\n  listen: \"80\"\napps: []\n",
			`g.yaml:2: console.listen: "80" is not [host]:port`},
		{"lan", "lan:\n  allow: [lan, nowhere]\n",
			`g.yaml:2: lan.allow[1]:`},
		{"mdns bool", "discovery:\n  mdns:\n    enabled: maybe\n",
			`g.yaml:3: discovery.mdns.enabled: must be true or false`},
		{"apps not a list", "apps: {x: 1}\n",
			`g.yaml:1: apps: must be a list`},
		{"key twice", "apps:\n  - name: x\n    command: a\n    command: b\n",
			`g.yaml:4: apps[x].command: is given twice (first at line 3)`},
		{"stop signal that stops nothing", "apps:\n  - name: x\n    command: a\n    stop_signal: SIGSTOP\n",
			`g.yaml:4: apps[x].stop_signal: "SIGSTOP" cannot stop an app`},
		{"user", "apps:\n  - name: x\n    command: a\n    user: Root Beer\n",
			`g.yaml:4: apps[x].user: "Root Beer" is not a user name or number`},
		{"group without user", "apps:\n  - name: x\n    command: a\n    group: staff\n",
			`g.yaml:4: apps[x].group: needs a user too`},
		{"ready twice over", "apps:\n  - name: x\n    command: a\n    ready: {tcp: \"127.0.0.1:1\", log: up}\n",
			`g.yaml:4: apps[x].ready: give tcp or log, not both`},
		{"entry not a mapping", "apps:\n  - just a string\n",
			`g.yaml:2: apps[0]: each app must be a mapping`},
		{"file not a mapping", "hello\n",
			`g.yaml:1: the file must be a mapping`},
		{"list for a value", "apps:\n  - name: x\n    command: [a, b]\n",
			`g.yaml:3: apps[x].command: must be a single value`},
		{"unknown top key", "consol:\n  listen: \":80\"\n",
			`g.yaml:1: consol: unknown key (known here: apps, console, discovery, lan)`},
		{"backoff below delay", "apps:\n  - name: x\n    command: a\n    restart: {delay: 10s, backoff_max: 1s}\n",
			`apps[x].restart.backoff_max: (1s) is shorter than delay (10s)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("g.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("accepted: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("returned a config along with the error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, c.want)
			}
			if len(ErrorList(err)) == 0 {
				t.Errorf("ErrorList found no *Error in %T", err)
			}
		})
	}
}

// An entry yaml.v3 cannot decode is reported once, for what it is: not as an
// app with no name or command, nor as an unknown app in another's after.
func TestUndecodableEntryReportedOnce(t *testing.T) {
	_, err := Parse("g.yaml", []byte("apps:\n  - name: x\n    command: a\n    command: b\n  - name: y\n    command: c\n    after: [x]\n    max_memory: lots\n"))
	es := ErrorList(err)
	if len(es) != 2 || es[0].Line != 4 || es[1].Line != 8 || es[1].Field != "apps[y].max_memory" {
		t.Fatalf("want errors on lines 4 and 8 only, got\n%v", err)
	}
}

func TestBackoffDefaultFollowsDelay(t *testing.T) {
	cfg, err := Parse("g.yaml", []byte("apps:\n  - name: x\n    command: a\n    restart: {delay: 20s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Apps[0]; a.BackoffMax != 20*time.Second {
		t.Errorf("backoff_max = %v, want delay (20s), as the supervisor's default", a.BackoffMax)
	}
}

func TestAllMistakesReportedAtOnce(t *testing.T) {
	_, err := Parse("g.yaml", []byte("apps:\n  - name: x\n    command: a\n    kill_timeout: x\n    max_memory: y\n"))
	es := ErrorList(err)
	if len(es) != 2 || es[0].Line != 4 || es[1].Line != 5 {
		t.Fatalf("want two errors on lines 4 and 5, got %v", err)
	}
}

func TestSpecsExpandRoot(t *testing.T) {
	cfg, err := Parse("g.yaml", []byte(`apps:
  - name: mqtt
    command: gatewayd
    args: [broker, --config, "{root}/etc/mosquitto/mosquitto.conf"]
    ready: {tcp: "127.0.0.1:1883"}
    env: {DATA: "{root}/data", PLAIN: "x"}
    cwd: "{root}/data"
    max_memory: 1.5GiB
    stop_signal: int
  - name: tool
    command: "{root}/bin/tool"
    after: [mqtt]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ root, prefix string }{{"/", ""}, {"/tmp/box/", "/tmp/box"}} {
		specs := cfg.Specs(tc.root, "/usr/bin/gatewayd")
		m := specs[0]
		if m.Command != "/usr/bin/gatewayd" {
			t.Errorf("command gatewayd became %q", m.Command)
		}
		if m.Args[2] != tc.prefix+"/etc/mosquitto/mosquitto.conf" || m.Cwd != tc.prefix+"/data" || m.Env["DATA"] != tc.prefix+"/data" {
			t.Errorf("root %s: args %q cwd %q env %v", tc.root, m.Args, m.Cwd, m.Env)
		}
		if m.Env["GATEWAY_ROOT"] == "" || m.Env["PLAIN"] != "x" {
			t.Errorf("env %v", m.Env)
		}
		if m.MaxMemory != 3<<29 || m.StopSignal != syscall.SIGINT || m.KillTimeout != 5*time.Second ||
			m.Restart.MinUptime != 30*time.Second || m.Restart.BackoffMax != 15*time.Second {
			t.Errorf("spec %+v", m)
		}
		if specs[1].Command != tc.prefix+"/bin/tool" || specs[1].After[0] != "mqtt" {
			t.Errorf("tool %+v", specs[1])
		}
	}
}

func TestLoadNamesMissingFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), Path(dir)) {
		t.Fatalf("err = %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(Path(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Path(dir), []byte("apps:\n  - name: x\n    command: sleep\n    max_memory: 12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir)
	if err != nil || cfg.File != Path(dir) || cfg.Apps[0].MaxMemory != 12 {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]uint64{"256MiB": 256 << 20, "1GiB": 1 << 30, "500MB": 500e6, "200M": 200 << 20, "4096": 4096, "64 KiB": 64 << 10, "1.5G": 3 << 29}
	for s, want := range good {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "MiB", "12 parsecs", "-5M", "0", "1.2.3M"} {
		if got, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", s, got)
		}
	}
}
func TestConsoleHosts(t *testing.T) {
	cfg, err := Parse("g.yaml", []byte("console:\n  listen: \":80\"\n  hosts: [gateway.home.arpa, hub]\napps: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Console.Hosts, ",") != "gateway.home.arpa,hub" {
		t.Errorf("hosts: %v", cfg.Console.Hosts)
	}
	_, err = Parse("g.yaml", []byte("console:\n  hosts: [\"evil.example:8080\"]\napps: []\n"))
	if err == nil || !strings.Contains(err.Error(), "g.yaml:2: console.hosts") {
		t.Errorf("a host:port in console.hosts: %v", err)
	}
}
