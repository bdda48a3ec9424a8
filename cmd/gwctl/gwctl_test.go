package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/webui/api"
)

func TestParseArgsTakesFlagsAnywhere(t *testing.T) {
	t.Setenv("GATEWAY_ROOT", "/from/env")
	o, err := parseArgs([]string{"status", "mqtt", "--json"})
	if err != nil || !o.json || o.root != "/from/env" || strings.Join(o.args, " ") != "status mqtt" {
		t.Fatalf("%+v %v", o, err)
	}
	o, err = parseArgs([]string{"logs", "mqtt", "-n", "5", "-f", "--root=/r"})
	if err != nil || o.n != 5 || !o.follow || o.root != "/r" {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range [][]string{{"-n"}, {"-n", "x"}, {"--root"}, {"--wat"}} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNoDaemonMessage(t *testing.T) {
	var out, errb bytes.Buffer
	root := t.TempDir()
	if code := run([]string{"--root", root, "status"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	want := "gatewayd is not running (no socket at " + root + "/run/gateway/gatewayd.sock)"
	if !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
}

func TestFormats(t *testing.T) {
	for d, want := range map[time.Duration]string{45 * time.Second: "45s", 192 * time.Second: "3m12s", 2*time.Hour + 3*time.Minute: "2h03m", 50 * time.Hour: "2d02h"} {
		if got := durationHuman(d); got != want {
			t.Errorf("%v: %s, want %s", d, got, want)
		}
	}
	for b, want := range map[uint64]string{0: "-", 512: "512 B", 1536: "1.5 KiB", 12 << 20: "12.0 MiB", 3 << 30: "3.00 GiB"} {
		if got := bytesHuman(b); got != want {
			t.Errorf("%d: %s, want %s", b, got, want)
		}
	}
	code := 3
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	if got := lastExit(api.App{LastExitCode: &code, LastExitAt: at}); got != "code 3 at 2026-01-02 03:04:05" {
		t.Errorf("last exit %q", got)
	}
	if got := lastExit(api.App{LastSignal: "SIGKILL"}); got != "signal SIGKILL" {
		t.Errorf("last exit %q", got)
	}
	if got := shellJoin([]string{"--config", "/a b/c.conf", ""}); got != `--config '/a b/c.conf' ''` {
		t.Errorf("shellJoin %s", got)
	}
	var buf bytes.Buffer
	printTable(&buf, []api.App{{Name: "mqtt", Status: "online", PID: 42, UptimeSeconds: 61, Restarts: 2, CPUPercent: 1.25, MemoryBytes: 5 << 20}}, false)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "mqtt online 42 1m01s 2 1.2% 5.0 MiB" {
		t.Errorf("table:\n%s", buf.String())
	}
}
