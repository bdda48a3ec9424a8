package traffic_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/homebox/gateway/gateway"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/gateway/traffic"
	"github.com/homebox/gateway/internal/testkit"
)

// A broker with known traffic: an owner's publisher and subscriber, and a
// client of the box's own reading the same topics and the split figures.
// Each figure counts exactly what was sent, on the fast path (QoS 0) and
// mochi's (QoS 1).
func TestSplitCountsKnownTraffic(t *testing.T) {
	testkit.RequireTool(t, "mosquitto_pub")
	testkit.RequireTool(t, "mosquitto_sub")
	port := strconv.Itoa(testkit.FreePort(t))
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\nsys_interval 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := mosquittoconf.Load(conf)
	if !diags.OK() {
		t.Fatal(diags.Err())
	}
	b, err := gateway.New(gateway.Options{Config: cfg, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		IsBoxUser: func(u string) bool { return u == "gateway-box" }})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	sub := func(args ...string) *testkit.Proc {
		p := testkit.Start(t, "stdbuf", append([]string{"-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-d", "-v"}, args...)...)
		p.WaitLine(t, 15*time.Second, regexp.MustCompile(`^Subscribed`))
		return p
	}
	owner := sub("-i", "owner-sub", "-t", "home/#")
	box := sub("-i", "box-sub", "-u", "gateway-box", "-t", "home/#", "-t", "$SYS/broker/gateway/#")
	const n = 5
	for i := range n {
		q := strconv.Itoa(i % 2) // QoS 0 goes the fast path's way, QoS 1 mochi's
		if out, code := testkit.Run(t, 15*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", q, "-t", "home/t", "-m", fmt.Sprint(i)); code != 0 {
			t.Fatalf("mosquitto_pub: %s", out)
		}
	}
	owner.WaitLine(t, 15*time.Second, regexp.MustCompile(fmt.Sprintf(`^home/t %d$`, n-1)))
	box.WaitLine(t, 15*time.Second, regexp.MustCompile(fmt.Sprintf(`^home/t %d$`, n-1)))

	// The split arrives at the next $SYS tick; wait for the figures the
	// known traffic gives: n in from the owner, n out to the owner's
	// subscriber and n to the box's, one box client, and the broker's own
	// $SYS publishes counted apart.
	want := map[string]string{
		traffic.TopicReceived + "owner": strconv.Itoa(n),
		traffic.TopicReceived + "box":   "0",
		traffic.TopicSent + "owner":     strconv.Itoa(n),
		traffic.TopicSent + "box":       strconv.Itoa(n),
		traffic.TopicBoxClients:         "1",
	}
	last := map[string]string{}
	line := regexp.MustCompile(`^(\$SYS/broker/gateway/\S+) (\S+)$`)
	testkit.WaitFor(t, 15*time.Second, "the split figures of the known traffic", func() bool {
		for _, l := range box.Lines() {
			if m := line.FindStringSubmatch(l); m != nil {
				last[m[1]] = m[2]
			}
		}
		for k, v := range want {
			if last[k] != v {
				return false
			}
		}
		// The broker's own $SYS publishes of a tick are counted after the
		// tick's figures are taken: they show from the next one on.
		for _, k := range []string{traffic.TopicReceived + "sys", traffic.TopicSent + "sys"} {
			if v, _ := strconv.Atoi(last[k]); v == 0 {
				return false
			}
		}
		return true
	})
}
