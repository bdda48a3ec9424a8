// Package testkit holds what the gateway's end-to-end tests share: building
// the real binaries once, running them as child processes, waiting on a
// condition with a deadline, and requiring the external tools a test uses.
package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireTool fails the test when an external command is missing. The
// tests' tools are installed by `make test` (scripts/test-deps.sh).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, statErr := os.Stat(filepath.Join(dir, name)); statErr == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("%s is not installed: run `make test` (it installs the test tools) or install it by hand", name)
	}
	return p
}

// WaitFor polls cond until it is true or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitForReport(t, timeout, what, cond, nil)
}

// WaitForReport is WaitFor for a condition whose failure needs what was
// seen meanwhile (a child's output, the last reply): on timeout, report's
// text, taken then, follows the message.
func WaitForReport(t testing.TB, timeout time.Duration, what string, cond func() bool, report func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %s waiting for %s", timeout, what)
			if report != nil {
				msg += "\n" + report()
			}
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ModuleRoot is the repository's root folder.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// Build compiles a main package of the module (e.g. "./cmd/gatewayd") once
// per test process and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("find module root: %v", err)
	}
	dir, err := os.MkdirTemp("", "gw-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// Proc is a child process whose combined output is kept as lines.
type Proc struct {
	Cmd *exec.Cmd

	mu    sync.Mutex
	lines []string
	done  chan struct{}
	err   error
}

// Start runs name with args; the process is killed at the end of the test.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(name, args...), done: make(chan struct{})}
	r, w := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = w, w
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = p.Cmd.Wait()
		w.Close()
		<-scanned // every line is in before done says so
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// Lines returns the output so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Output is the output so far as one string.
func (p *Proc) Output() string { return strings.Join(p.Lines(), "\n") }

// WaitLine waits for an output line matching re and returns its
// submatches. A process that ends first fails the test at once.
func (p *Proc) WaitLine(t testing.TB, timeout time.Duration, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		exited := p.Exited() // read before the lines, so none are missed
		for _, l := range p.Lines() {
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		if exited {
			t.Fatalf("%s exited before printing a line matching %q; output:\n%s", p.Cmd.Path, re, p.tail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for a line matching %q from %s; output:\n%s", timeout, re, p.Cmd.Path, p.tail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *Proc) tail() string {
	l := p.Lines()
	if len(l) > 40 {
		l = l[len(l)-40:]
	}
	return strings.Join(l, "\n")
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end and returns its exit code.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s; output:\n%s", p.Cmd.Path, timeout, p.tail())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Run runs a command to completion with a timeout and returns its combined
// output and exit code.
func Run(t testing.TB, timeout time.Duration, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s did not finish within %s; output:\n%s", name, strings.Join(args, " "), timeout, buf.String())
	}
	return buf.String(), cmd.ProcessState.ExitCode()
}

// FreePort asks the kernel for a loopback TCP port that no one uses now,
// for programs that cannot report the real port of a port-0 listener.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Buffer is a bytes.Buffer that one goroutine may read (String) while
// another writes: a child's output, a logger's lines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WriteFile writes text to path, making its folder first.
func WriteFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
