//go:build linux

// Package netnstest makes network namespaces for tests: the namespaces,
// their veth pairs and addresses exist only for the test that made them
// and are deleted when it ends; the machine's own interfaces are never
// touched. Namespaces need root: without it a test is skipped with a
// message, or fails when the CI environment variable is set.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/homebox/gateway/internal/testkit"
	"golang.org/x/sys/unix"
)

// Require skips (fails under CI) a test that cannot make namespaces.
func Require(t testing.TB) {
	t.Helper()
	testkit.RequireRoot(t, "network namespaces")
	IPTool(t)
}

// IPTool is the path of iproute2's ip.
func IPTool(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("ip (Debian package iproute2) is needed to make network namespaces; make test-deps installs it")
	return ""
}

// Set is a group of namespaces made by one test.
type Set struct {
	t      testing.TB
	ip     string
	suffix string
	names  map[string]string // short name -> namespace name
}

// New makes one namespace per short name (e.g. "box", "lan"), each with
// loopback up and deleted when the test ends.
func New(t testing.TB, short ...string) *Set {
	t.Helper()
	Require(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	s := &Set{t: t, ip: IPTool(t), suffix: hex.EncodeToString(b), names: map[string]string{}}
	for _, n := range short {
		full := "gwt-" + n + "-" + s.suffix
		s.IP("netns", "add", full)
		t.Cleanup(func() { _ = exec.Command(s.ip, "netns", "del", full).Run() })
		s.names[n] = full
		s.IP("-n", full, "link", "set", "lo", "up")
	}
	return s
}

// Name is the full name of the namespace made for short.
func (s *Set) Name(short string) string {
	n, ok := s.names[short]
	if !ok {
		s.t.Fatalf("netnstest: no namespace %q in this set", short)
	}
	return n
}

// IP runs ip with args, failing the test with its output on error.
func (s *Set) IP(args ...string) {
	s.t.Helper()
	if out, err := exec.Command(s.ip, args...).CombinedOutput(); err != nil {
		s.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// In runs ip with args inside the namespace short ("ip -n NS args...").
func (s *Set) In(short string, args ...string) {
	s.t.Helper()
	s.IP(append([]string{"-n", s.Name(short)}, args...)...)
}

// Sysctl sets a sysctl inside a namespace.
func (s *Set) Sysctl(short string, kv ...string) {
	s.t.Helper()
	args := append([]string{"netns", "exec", s.Name(short), "sysctl", "-qw"}, kv...)
	s.IP(args...)
}

// Veth joins namespaces a and b with a veth pair named ifA (in a) and ifB
// (in b), both up.
func (s *Set) Veth(a, ifA, b, ifB string) {
	s.t.Helper()
	s.In(a, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", s.Name(b))
	s.In(a, "link", "set", ifA, "up")
	s.In(b, "link", "set", ifB, "up")
}

// Command is name with args to be run inside the namespace short.
func (s *Set) Command(short, name string, args ...string) *exec.Cmd {
	return exec.Command(s.ip, append([]string{"netns", "exec", s.Name(short), name}, args...)...)
}

// Do runs fn on an OS thread moved into the namespace short: sockets fn
// opens (listen, dial, netlink) are that namespace's. Goroutines fn starts
// run elsewhere; the thread is discarded afterwards.
func (s *Set) Do(short string, fn func()) {
	s.t.Helper()
	f, err := os.Open("/run/netns/" + s.Name(short))
	if err != nil {
		s.t.Fatalf("netnstest: open namespace %s: %v", short, err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", short, err)
			return
		}
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic in namespace %s: %v", short, r)
			}
		}()
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		s.t.Fatal(err)
	}
}
