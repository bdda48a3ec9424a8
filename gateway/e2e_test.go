package gateway_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

const anonConf = "listener 0 127.0.0.1\nallow_anonymous true\n"

func TestRoundTripEveryQoSAndProtocolVersion(t *testing.T) {
	b := startBroker(t, anonConf)
	for _, v := range []string{"mqttv31", "mqttv311", "mqttv5"} {
		for _, q := range []string{"0", "1", "2"} {
			topic := "rt/" + v + "/" + q
			s, granted := subscribe(t, b.port(), "-V", v, "-q", q, "-t", topic, "-C", "1")
			if granted != q {
				t.Fatalf("%s: granted QoS %s, want %s", topic, granted, q)
			}
			pub(t, b.port(), "-V", v, "-q", q, "-t", topic, "-m", "hello "+v)
			equalLines(t, s.waitMessages(t, 1), []string{topic + " hello " + v})
		}
	}
}

func TestRetainedMessagesAndTheirClearing(t *testing.T) {
	b := startBroker(t, anonConf)
	pub(t, b.port(), "-r", "-q", "1", "-t", "ret/a", "-m", "one")
	pub(t, b.port(), "-r", "-q", "1", "-t", "ret/b", "-m", "two")
	pub(t, b.port(), "-r", "-n", "-t", "ret/b") // an empty retained message clears
	equalLines(t, retained(t, b.port(), "ret/#"), []string{"ret/a one"})
}

// retained lists the retained messages under filter. It subscribes to the
// filter and to a retained marker in one SUBSCRIBE: the broker sends the
// retained messages filter by filter, so everything before the marker is
// the filter's retained set, with no timing involved.
func retained(t *testing.T, port, filter string) []string {
	t.Helper()
	markerSeq++
	marker := fmt.Sprintf("zz/marker/%d", markerSeq)
	pub(t, port, "-r", "-t", marker, "-m", "end")
	s, _ := subscribe(t, port, "-t", filter, "-t", marker)
	var got []string
	testkit.WaitFor(t, 15*time.Second, "the retained marker", func() bool {
		got = got[:0]
		for _, m := range s.messages() {
			if m == marker+" end" {
				return true
			}
			got = append(got, m)
		}
		return false
	})
	return got
}

var markerSeq int

func TestWildcardsAndDollarTopics(t *testing.T) {
	b := startBroker(t, anonConf+"sys_interval 1\n")
	plus, _ := subscribe(t, b.port(), "-t", "w/+/x", "-C", "2")
	hash, _ := subscribe(t, b.port(), "-t", "#", "-C", "3")
	for _, topic := range []string{"w/a/x", "w/a/b/x", "w/b/x"} {
		pub(t, b.port(), "-q", "1", "-t", topic, "-m", "m")
	}
	equalLines(t, plus.waitMessages(t, 2), []string{"w/a/x m", "w/b/x m"})
	// `#` sees every ordinary topic but no $SYS one, although $SYS topics
	// are retained and published every second.
	equalLines(t, hash.waitMessages(t, 3), []string{"w/a/x m", "w/a/b/x m", "w/b/x m"})
	sys, _ := subscribe(t, b.port(), "-t", "$SYS/broker/uptime", "-t", "$SYS/broker/clients/connected", "-C", "2")
	for _, m := range sys.waitMessages(t, 2) {
		if !regexp.MustCompile(`^\$SYS/broker/(uptime \d+ seconds|clients/connected \d+)$`).MatchString(m) {
			t.Fatalf("unexpected $SYS message %q", m)
		}
	}
}

func TestWillIsSentOnUngracefulDisconnect(t *testing.T) {
	b := startBroker(t, anonConf)
	watcher, _ := subscribe(t, b.port(), "-t", "will/#", "-C", "1")
	dying, _ := subscribe(t, b.port(), "-t", "nothing", "--will-topic", "will/dev1", "--will-payload", "offline", "--will-qos", "1")
	if err := syscall.Kill(dying.proc.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	equalLines(t, watcher.waitMessages(t, 1), []string{"will/dev1 offline"})
}

// queue publishes n QoS 1 messages q00..q(n-1) to topic in one mosquitto_pub
// run (-l: one message per stdin line), all within about a second.
func queue(t *testing.T, port, topic string, n int) []string {
	t.Helper()
	var lines, want []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("q%02d", i))
		want = append(want, fmt.Sprintf("%s q%02d", topic, i))
	}
	cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", topic, "-l")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -l: %v: %s", err, out)
	}
	return want
}

func TestPersistentSessionGetsWhatWasQueuedInOrder(t *testing.T) {
	b := startBroker(t, anonConf)
	// Make the session, then leave.
	_, _ = subscribe(t, b.port(), "-c", "-i", "sess-order", "-q", "1", "-t", "q/order", "-E")
	want := queue(t, b.port(), "q/order", 20)
	equalLines(t, drain(t, b.port(), 20, "-c", "-i", "sess-order", "-q", "1", "-t", "q/order"), want)
}

func TestStoreSurvivesKill9(t *testing.T) {
	testkit.RequireTool(t, "mosquitto_pub")
	dir := t.TempDir()
	conf := anonConf + "persistence true\npersistence_location {dir}/store/\n"
	b := startBrokerIn(t, dir, conf)
	_, _ = subscribe(t, b.port(), "-c", "-i", "sess-kill", "-q", "1", "-t", "q/kill", "-E")
	pub(t, b.port(), "-r", "-q", "1", "-t", "dur/config", "-m", "kept")
	want := queue(t, b.port(), "q/kill", 15)
	b.kill9(t)

	b2 := startBrokerIn(t, dir, conf)
	equalLines(t, retained(t, b2.port(), "dur/#"), []string{"dur/config kept"})
	equalLines(t, drain(t, b2.port(), 15, "-c", "-i", "sess-kill", "-q", "1", "-t", "q/kill"), want)
}

func TestLargePayloadAndMessageSizeLimit(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 256*1024)), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, anonConf)
	s, _ := subscribe(t, b.port(), "-t", "big", "-C", "1")
	pub(t, b.port(), "-q", "1", "-t", "big", "-f", big)
	if got := s.waitMessages(t, 1)[0]; len(got) != len("big ")+256*1024 {
		t.Fatalf("256 KiB payload arrived as %d bytes", len(got)-len("big "))
	}

	limited := startBroker(t, anonConf+"message_size_limit 1000\n")
	s2, _ := subscribe(t, limited.port(), "-t", "lim", "-C", "1")
	pub(t, limited.port(), "-q", "1", "-t", "lim", "-f", big) // acknowledged, dropped
	pub(t, limited.port(), "-q", "1", "-t", "lim", "-m", "small")
	equalLines(t, s2.waitMessages(t, 1), []string{"lim small"})
}

func TestRetainedMessageHonoursPublisherExpiry(t *testing.T) {
	b := startBroker(t, anonConf)
	pub(t, b.port(), "-V", "mqttv5", "-r", "-t", "exp/short", "-m", "x", "-D", "publish", "message-expiry-interval", "1")
	pub(t, b.port(), "-r", "-t", "exp/long", "-m", "y")
	testkit.WaitFor(t, 10*time.Second, "the 1 s retained message to expire", func() bool {
		got := retained(t, b.port(), "exp/#")
		return len(got) == 1 && got[0] == "exp/long y"
	})
}

func TestTestConfigReportsFileAndLine(t *testing.T) {
	bin := testkit.Build(t, "./cmd/gatewayd")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("# comment\nlistener 70000\nno_such_option 1\n"), 0o644)
	out, code := testkit.Run(t, 10*time.Second, bin, "broker", "--test-config", "--config", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s", code, out)
	}
	for _, want := range []string{"bad.conf:2: listener:", "bad.conf:3: no_such_option:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte(anonConf), 0o644)
	if out, code := testkit.Run(t, 10*time.Second, bin, "broker", "--test-config", "--config", good); code != 0 {
		t.Fatalf("good config: exit %d: %s", code, out)
	}
}

func TestStartFailureNamesTheListenerLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	bin := testkit.Build(t, "./cmd/gatewayd")
	conf := filepath.Join(t.TempDir(), "m.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("allow_anonymous true\nlistener %d 127.0.0.1\n", port)), 0o644)
	out, code := testkit.Run(t, 10*time.Second, bin, "broker", "--config", conf)
	if code != 1 || !strings.Contains(out, "m.conf:2: listener:") {
		t.Fatalf("exit %d, want 1 naming m.conf:2: listener; output:\n%s", code, out)
	}
}

func TestSIGTERMStopsGracefully(t *testing.T) {
	b := startBroker(t, anonConf+"persistence true\npersistence_location {dir}/\n")
	if err := b.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.proc.Wait(t, 2*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; output:\n%s", code, b.proc.Output())
	}
}

func TestLANGuardRefusesOutsiders(t *testing.T) {
	b := startBroker(t, anonConf, "--allow-networks", "10.0.0.0/8")
	out, code := testkit.Run(t, 15*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", b.port(), "-t", "x", "-m", "y")
	if code == 0 {
		t.Fatalf("a loopback client was accepted by a guard allowing only 10.0.0.0/8: %s", out)
	}
	inside := startBroker(t, anonConf, "--allow-networks", "loopback")
	pub(t, inside.port(), "-t", "x", "-m", "y")
}
