package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// broker is a real `gatewayd broker` child process.
type broker struct {
	proc  *testkit.Proc
	conf  string
	dir   string
	ports map[string][]string // protocol -> ports in conf order
}

var listenerLine = regexp.MustCompile(`msg="listener open" protocol=(\w+) address=\S*:(\d+)`)

// startBroker writes conf (with {dir} replaced by a fresh folder) and runs
// the broker on it. Listeners should use port 0; their real ports are read
// from the broker's log.
func startBroker(t *testing.T, conf string, args ...string) *broker {
	t.Helper()
	dir := t.TempDir()
	return startBrokerIn(t, dir, conf, args...)
}

func startBrokerIn(t *testing.T, dir, conf string, args ...string) *broker {
	t.Helper()
	bin := testkit.Build(t, "./cmd/gatewayd")
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(conf, "{dir}", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &broker{conf: path, dir: dir, ports: map[string][]string{}}
	b.proc = testkit.Start(t, bin, append([]string{"broker", "--config", path}, args...)...)
	b.proc.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="broker running"`))
	for _, l := range b.proc.Lines() {
		if m := listenerLine.FindStringSubmatch(l); m != nil {
			b.ports[m[1]] = append(b.ports[m[1]], m[2])
		}
	}
	return b
}

// port is the first plain MQTT listener's port.
func (b *broker) port() string { return b.ports["mqtt"][0] }

func (b *broker) kill9(t *testing.T) {
	t.Helper()
	if err := b.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.proc.Wait(t, 10*time.Second)
}

// pub runs mosquitto_pub against port and fails the test if it fails.
func pub(t *testing.T, port string, args ...string) {
	t.Helper()
	testkit.RequireTool(t, "mosquitto_pub")
	out, code := testkit.Run(t, 20*time.Second, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", port}, args...)...)
	if code != 0 {
		t.Fatalf("mosquitto_pub %v: exit %d: %s", args, code, out)
	}
}

// subscriber is a running mosquitto_sub with -d, so we know when its
// subscription is in place.
type subscriber struct{ proc *testkit.Proc }

var subscribedLine = regexp.MustCompile(`^Subscribed \(mid: \d+\): (.*)$`)

// subscribe starts mosquitto_sub -v and waits for its SUBACK. It returns
// the granted codes line too.
func subscribe(t *testing.T, port string, args ...string) (*subscriber, string) {
	t.Helper()
	testkit.RequireTool(t, "mosquitto_sub")
	testkit.RequireTool(t, "stdbuf")
	// stdbuf: mosquitto_sub's stdout is a pipe here, and we must see its
	// SUBACK line as it happens, not when its buffer fills.
	all := append([]string{"-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-d", "-v"}, args...)
	p := testkit.Start(t, "stdbuf", all...)
	m := p.WaitLine(t, 15*time.Second, subscribedLine)
	return &subscriber{proc: p}, m[1]
}

// drain reconnects a persistent session with mosquitto_sub -C n: its queued
// messages may arrive before its SUBACK, so it is not waited on.
func drain(t *testing.T, port string, n int, args ...string) []string {
	t.Helper()
	testkit.RequireTool(t, "mosquitto_sub")
	all := append([]string{"-h", "127.0.0.1", "-p", port, "-d", "-v", "-C", fmt.Sprint(n)}, args...)
	s := &subscriber{proc: testkit.Start(t, "mosquitto_sub", all...)}
	if code := s.proc.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("mosquitto_sub exit %d; output:\n%s", code, s.proc.Output())
	}
	return s.messages()
}

// messages are the "topic payload" lines received so far.
func (s *subscriber) messages() []string {
	var out []string
	for _, l := range s.proc.Lines() {
		if strings.HasPrefix(l, "Client ") || subscribedLine.MatchString(l) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// waitMessages waits until n messages arrived and returns them.
func (s *subscriber) waitMessages(t *testing.T, n int) []string {
	t.Helper()
	testkit.WaitFor(t, 15*time.Second, fmt.Sprintf("%d messages; got %q", n, s.messages()), func() bool {
		return len(s.messages()) >= n
	})
	return s.messages()
}

func equalLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func osWriteFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
