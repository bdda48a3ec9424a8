package confflow

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBrokerErrorIsTheBrokersOwnLine(t *testing.T) {
	lines := []string{
		"2026-11-23T09:19:10.100Z [gatewayd] started /usr/bin/gatewayd (pid 12)",
		"2026-11-23T09:19:10.150Z warning: mosquitto.conf:3: autosave_interval: accepted, every change is saved",
		"2026-11-23T09:19:10.200Z error: mosquitto.conf:9: listener: cannot listen on 127.0.0.1:1884: bind: address already in use",
		"2026-11-23T09:19:10.210Z [gatewayd] exit status 1 after 110ms; restarting in 1s",
	}
	want := "error: mosquitto.conf:9: listener: cannot listen on 127.0.0.1:1884: bind: address already in use"
	if got := brokerError(lines); got != want {
		t.Errorf("got %q", got)
	}
	if got := brokerError(lines[:2]); got != "" {
		t.Errorf("no error line: %q", got)
	}
}

func TestReadFromTakesOnlyNewLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mqtt.log")
	os.WriteFile(p, []byte("old 1\nold 2\n"), 0o644)
	off := fileSize(p)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("new 1\nnew 2\nnew 3\n")
	f.Close()
	got := readFrom(p, off, 2)
	if len(got) != 2 || got[0] != "new 2" || got[1] != "new 3" {
		t.Errorf("got %q", got)
	}
	// Rotated (shorter than the offset): from the start.
	os.WriteFile(p, []byte("r\n"), 0o644)
	if got := readFrom(p, off, 5); len(got) != 1 || got[0] != "r" {
		t.Errorf("rotated: %q", got)
	}
}
