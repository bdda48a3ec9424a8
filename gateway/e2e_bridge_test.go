package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// startMosquitto runs Debian's mosquitto on conf (with {port} replaced).
func startMosquitto(t *testing.T, conf string) string {
	t.Helper()
	testkit.RequireTool(t, "mosquitto")
	port := fmt.Sprint(testkit.FreePort(t))
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	conf = regexp.MustCompile(`\{port\}`).ReplaceAllString(conf, port)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testkit.Start(t, "mosquitto", "-v", "-c", path)
	p.WaitLine(t, 10*time.Second, regexp.MustCompile(`Opening ipv4 listen socket on port `+port))
	return port
}

func TestMosquittoBridgesIntoGatewayWithTryPrivate(t *testing.T) {
	gw := startBroker(t, anonConf)
	// Mosquitto's defaults: try_private true, MQTT 3.1.1.
	mq := startMosquitto(t, fmt.Sprintf(`listener {port} 127.0.0.1
allow_anonymous true
connection box
address 127.0.0.1:%s
topic sensors/# out 1
topic cmd/# in 1
`, gw.port()))
	s, _ := subscribe(t, gw.port(), "-t", "$SYS/broker/connection/+/state", "-t", "sensors/#")
	// The bridge is up once its state topic says 1 on the gateway.
	testkit.WaitFor(t, 15*time.Second, "mosquitto's bridge state 1 on the gateway", func() bool {
		for _, m := range s.messages() {
			if regexp.MustCompile(`^\$SYS/broker/connection/\S+/state 1$`).MatchString(m) {
				return true
			}
		}
		return false
	})
	pub(t, mq, "-q", "1", "-t", "sensors/temp", "-m", "21.5")
	testkit.WaitFor(t, 15*time.Second, "sensors/temp forwarded into the gateway", func() bool {
		for _, m := range s.messages() {
			if m == "sensors/temp 21.5" {
				return true
			}
		}
		return false
	})
	back, _ := subscribe(t, mq, "-t", "cmd/#", "-C", "1")
	pub(t, gw.port(), "-q", "1", "-t", "cmd/light", "-m", "on")
	equalLines(t, back.waitMessages(t, 1), []string{"cmd/light on"})
}

func TestTwoGatewaysBridgedBothWaysDeliverOnce(t *testing.T) {
	b := startBroker(t, anonConf)
	a := startBroker(t, anonConf+fmt.Sprintf(`connection peer
address 127.0.0.1:%s
topic t/# both 1
`, b.port()))
	onA, _ := subscribe(t, a.port(), "-t", "t/#", "-t", "$SYS/broker/connection/#")
	onB, _ := subscribe(t, b.port(), "-t", "t/#")
	testkit.WaitFor(t, 15*time.Second, "the bridge up", func() bool {
		for _, m := range onA.messages() {
			if regexp.MustCompile(`^\$SYS/broker/connection/\S+/state 1$`).MatchString(m) {
				return true
			}
		}
		return false
	})
	pub(t, a.port(), "-q", "1", "-t", "t/from-a", "-m", "1")
	pub(t, b.port(), "-q", "1", "-t", "t/from-b", "-m", "2")
	// A marker from each side last: once both markers arrived on both
	// sides, a loop would have shown as a second copy before them.
	pub(t, a.port(), "-q", "1", "-t", "t/end-a", "-m", "x")
	pub(t, b.port(), "-q", "1", "-t", "t/end-b", "-m", "x")
	for name, s := range map[string]*subscriber{"A": onA, "B": onB} {
		testkit.WaitFor(t, 15*time.Second, "both markers on "+name, func() bool {
			return count(s, "t/end-a x") == 1 && count(s, "t/end-b x") == 1
		})
		if count(s, "t/from-a 1") != 1 || count(s, "t/from-b 2") != 1 {
			t.Fatalf("%s got %q, want each message once", name, s.messages())
		}
	}
}

func count(s *subscriber, line string) int {
	n := 0
	for _, m := range s.messages() {
		if m == line {
			n++
		}
	}
	return n
}
