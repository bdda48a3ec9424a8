package bridge

import (
	"fmt"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/homebox/gateway/internal/testkit"
)

func bridgeClients(s *mqtt.Server) int {
	n := 0
	for _, cl := range s.Clients.GetAll() {
		if cl.Net.Conn != nil && isBridgeConn(cl.Net.Conn) {
			n++
		}
	}
	return n
}

// TestMosquittoBridgesIn: a real mosquitto bridge with its defaults
// (try_private true) connects to mochi through PrivateConn, is treated
// as a bridge, and forwards both ways without echo.
func TestMosquittoBridgesIn(t *testing.T) {
	box, boxAddr := newMochi(t, true)
	host, port, _ := net.SplitHostPort(boxAddr)
	states := localWatch(t, box, "$SYS/broker/connection/#", 901)
	remote := startMosquitto(t, fmt.Sprintf(`connection tobox
address %s:%s
remote_clientid cloud.tobox
restart_timeout 1
topic down/# out 1
topic up/# in 1
topic both/# both 1
`, host, port))
	testkit.WaitFor(t, 15*time.Second, "mosquitto's bridge connected as a bridge", func() bool { return bridgeClients(box) == 1 })
	testkit.WaitFor(t, 10*time.Second, "mosquitto's bridge state relayed", func() bool {
		_, ok := states.find("$SYS/broker/connection/cloud.tobox/state", "1")
		return ok
	})

	_, atBox := client(t, boxAddr, "watch-box", "#")
	_, atCloud := client(t, remote.addr(), "watch-cloud", "#")
	boxPub, _ := client(t, boxAddr, "pub-box", "")
	cloudPub, _ := client(t, remote.addr(), "pub-cloud", "")

	// The bridge's subscriptions reach mochi asynchronously: retry the
	// first message until it crosses.
	testkit.WaitFor(t, 15*time.Second, "cloud -> box", func() bool {
		if atBox.count("down/x", "") == 0 {
			publish(t, cloudPub, "down/x", 1, false, "d")
			return false
		}
		return true
	})
	testkit.WaitFor(t, 15*time.Second, "box -> cloud", func() bool {
		if atCloud.count("up/x", "") == 0 {
			publish(t, boxPub, "up/x", 1, false, "u")
			return false
		}
		return true
	})
	publish(t, boxPub, "both/fromBox", 1, false, "1")
	publish(t, cloudPub, "both/fromCloud", 1, false, "1")
	publish(t, boxPub, "both/end", 1, false, "end")
	publish(t, cloudPub, "both/end2", 1, false, "end")
	testkit.WaitFor(t, 10*time.Second, "both ways", func() bool {
		return atCloud.count("both/fromBox", "1") >= 1 && atBox.count("both/fromCloud", "1") >= 1 &&
			atCloud.count("both/end", "end") == 1 && atBox.count("both/end2", "end") == 1
	})
	for _, c := range []struct {
		col   *collector
		topic string
	}{{atCloud, "both/fromBox"}, {atBox, "both/fromBox"}, {atBox, "both/fromCloud"}, {atCloud, "both/fromCloud"}} {
		if n := c.col.count(c.topic, ""); n != 1 {
			t.Errorf("%s seen %d times, want 1 (no echo)", c.topic, n)
		}
	}
}

// TestTwoMochiBoth: a mochi bridged to another mochi with `topic # both`
// delivers each message once on each side: no loop.
func TestTwoMochiBoth(t *testing.T) {
	for _, version := range []string{"mqttv311", "mqttv50"} {
		t.Run(version, func(t *testing.T) {
			a, aAddr := newMochi(t, false)
			bsrv, bAddr := newMochi(t, true)
			br := conn("peer", bAddr, topic("#", "both", 2, "", ""))
			br.ProtocolVersion = version
			m := startManager(t, a, "", br)
			testkit.WaitFor(t, 10*time.Second, "bridge up", func() bool { return m.Stats()[0].State == "up" })
			if version == "mqttv311" && bridgeClients(bsrv) != 1 {
				t.Errorf("try_private bridge not recognised by the peer")
			}
			_, atA := client(t, aAddr, "watch-a", "#")
			_, atB := client(t, bAddr, "watch-b", "#")
			pa, _ := client(t, aAddr, "pub-a", "")
			pb, _ := client(t, bAddr, "pub-b", "")
			for q := byte(0); q <= 2; q++ {
				publish(t, pa, "x/a", q, false, fmt.Sprint(q))
				publish(t, pb, "x/b", q, false, fmt.Sprint(q))
			}
			publish(t, pa, "end/a", 1, false, "end")
			publish(t, pb, "end/b", 1, false, "end")
			testkit.WaitFor(t, 10*time.Second, "sentinels", func() bool {
				return atB.count("end/a", "end") == 1 && atA.count("end/b", "end") == 1
			})
			for _, c := range []*collector{atA, atB} {
				for _, tp := range []string{"x/a", "x/b"} {
					if n := c.count(tp, ""); n != 3 {
						t.Errorf("%s seen %d times on one side, want 3 (one per QoS)", tp, n)
					}
				}
			}
			st := m.Stats()[0]
			if st.MessagesIn != 4 || st.MessagesOut < 4 {
				t.Errorf("stats in %d out %d, want 4 and >= 4", st.MessagesIn, st.MessagesOut)
			}
		})
	}
}
