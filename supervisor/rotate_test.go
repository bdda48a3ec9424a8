package supervisor

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

func TestRotatingWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "app.log")
	w := NewRotatingWriter(path, 100, 3)
	var want []string
	for i := range 40 {
		line := fmt.Sprintf("line %02d %s\n", i, strings.Repeat("x", 10)) // 19 bytes
		want = append(want, line)
		if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	// A batch of lines in one write is cut at line ends too.
	batch := strings.Repeat("0123456789abcdefgh\n", 8)
	if _, err := w.Write([]byte(batch)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var kept string
	for _, f := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 100 || len(b) == 0 || b[len(b)-1] != '\n' {
			t.Errorf("%s: %d bytes, ends %q; want 1..100 bytes of whole lines", f, len(b), b[max(0, len(b)-1):])
		}
		kept += string(b)
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists", path)
	}
	all := strings.Join(want, "") + batch
	if !strings.HasSuffix(all, kept) {
		t.Errorf("kept text is not the tail of what was written:\n%s", kept)
	}
	if _, err := w.Write([]byte("late\n")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestRotatingWriterEdges(t *testing.T) {
	dir := t.TempDir()
	// One file: truncated in place.
	one := filepath.Join(dir, "one.log")
	w := NewRotatingWriter(one, 10, 1)
	for range 5 {
		w.Write([]byte("12345678\n"))
	}
	w.Close()
	if b, _ := os.ReadFile(one); string(b) != "12345678\n" {
		t.Errorf("one file: %q", b)
	}
	if _, err := os.Stat(one + ".1"); !os.IsNotExist(err) {
		t.Error("one-file writer made a .1")
	}
	// A line longer than the limit goes whole into a file of its own.
	long := filepath.Join(dir, "long.log")
	w = NewRotatingWriter(long, 10, 2)
	w.Write([]byte("ab\n"))
	w.Write([]byte("0123456789012345\n"))
	w.Close()
	if b, _ := os.ReadFile(long); string(b) != "0123456789012345\n" {
		t.Errorf("long line file: %q", b)
	}
	if b, _ := os.ReadFile(long + ".1"); string(b) != "ab\n" {
		t.Errorf("long.1: %q", b)
	}
	// Appends to an existing file and counts its size.
	w = NewRotatingWriter(long, 20, 2)
	w.Write([]byte("xyz\n"))
	w.Close()
	if b, _ := os.ReadFile(long); string(b) != "xyz\n" {
		t.Errorf("after reopen: %q", b)
	}
	// An unwritable place fails on Write with the path in the error.
	w = NewRotatingWriter(filepath.Join(one, "x.log"), 0, 0)
	if _, err := w.Write([]byte("x\n")); err == nil || !strings.Contains(err.Error(), "one.log") {
		t.Errorf("Write under a file = %v", err)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "int": syscall.SIGINT,
		" SIGKILL ": syscall.SIGKILL, "15": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "SIGNOPE", "0", "99", "-1"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) succeeded", in)
		}
	}
	if SignalName(syscall.SIGTERM) != "SIGTERM" || SignalName(40) != "SIG40" {
		t.Error("SignalName")
	}
}

func TestParseStopSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM,
		"SIGINT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "sighup": syscall.SIGHUP, "SIGKILL": syscall.SIGKILL} {
		if got, err := ParseStopSignal(in); err != nil || got != want {
			t.Errorf("ParseStopSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// Numbers differ between architectures; SIGSTOP and SIGCHLD stop nothing.
	for in, want := range map[string]string{"SIGNOPE": "is not a signal name", "15": "is not a signal name",
		"SIGSTOP": "cannot stop an app", "chld": "cannot stop an app"} {
		if _, err := ParseStopSignal(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseStopSignal(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestRestartDelay(t *testing.T) {
	a := &app{eff: Spec{Restart: RestartPolicy{Delay: 0, BackoffMax: time.Second}}.withDefaults()}
	var got []time.Duration
	for streak := range 6 {
		a.streak = streak
		got = append(got, a.restartDelay())
	}
	want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	a.streak = 1000 // no overflow
	if d := a.restartDelay(); d != time.Second {
		t.Errorf("long streak delay %v", d)
	}
	if d := (Spec{}).withDefaults(); d.KillTimeout != DefaultKillTimeout || d.StopSignal != syscall.SIGTERM ||
		d.Restart.BackoffMax != DefaultBackoffMax || d.Restart.MinUptime != DefaultMinUptime {
		t.Errorf("defaults: %+v", d)
	}
}

func TestCopyOutput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out testkit.Buffer
	readyCalls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyOutput(r, &out, regexp.MustCompile(`^up$`), func() { readyCalls++ }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	// A whole line is written out even while a partial one waits for its end.
	w.Write([]byte("first\nup\npart"))
	waitFor(t, 5*time.Second, "the whole lines", func() bool { return strings.Count(out.String(), "\n") == 2 })
	w.Write([]byte("ial\r\nup\nlast without newline"))
	w.Close()
	<-done
	r.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	var texts []string
	for _, l := range lines {
		ts, text, _ := strings.Cut(l, " ")
		if _, err := time.Parse(tsLayout, ts); err != nil {
			t.Errorf("line %q: %v", l, err)
		}
		texts = append(texts, text)
	}
	want := []string{"first", "up", "partial\r", "up", "last without newline"}
	if fmt.Sprint(texts) != fmt.Sprint(want) {
		t.Errorf("lines %q, want %q", texts, want)
	}
	if readyCalls != 1 {
		t.Errorf("ready matched %d times, want once", readyCalls)
	}
}
