package bridge

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/internal/testkit"
)

// TestDirectionsAgainstMosquitto runs out, in and both routes with
// remapped and empty prefixes at each QoS, retained, against a real
// mosquitto, over MQTT 3.1.1 (with try_private) and MQTT 5.
func TestDirectionsAgainstMosquitto(t *testing.T) {
	for _, version := range []string{"mqttv311", "mqttv50"} {
		t.Run(version, func(t *testing.T) {
			remote := startMosquitto(t, "")
			local, localAddr := newMochi(t, false)
			b := conn("cloud", remote.addr(),
				topic("sensors/#", "out", 2, "box/", "site1/"),
				topic("cmd/#", "in", 2, "box/", "site1/"),
				topic("sync/#", "both", 1, "", ""),
				topic("", "out", 1, "box/exact", "site1/renamed"),
			)
			b.ProtocolVersion = version
			m := startManager(t, local, "", b)
			testkit.WaitFor(t, 10*time.Second, "bridge up", func() bool { return m.Stats()[0].State == "up" })

			_, atRemote := client(t, remote.addr(), "watch-remote", "#")
			_, atLocal := client(t, localAddr, "watch-local", "#")
			lpub, _ := client(t, localAddr, "pub-local", "")
			rpub, _ := client(t, remote.addr(), "pub-remote", "")

			// out, each QoS, mapped box/sensors/... -> site1/sensors/...
			for q := byte(0); q <= 2; q++ {
				publish(t, lpub, "box/sensors/t", q, false, fmt.Sprintf("out-q%d", q))
			}
			for q := byte(0); q <= 2; q++ {
				p := fmt.Sprintf("out-q%d", q)
				testkit.WaitFor(t, 10*time.Second, "remote gets "+p, func() bool { return atRemote.count("site1/sensors/t", p) == 1 })
				g, _ := atRemote.find("site1/sensors/t", p)
				if g.qos != q {
					t.Errorf("%s arrived at QoS %d, want %d", p, g.qos, q)
				}
			}
			// the empty pattern: the prefixes are whole topics
			publish(t, lpub, "box/exact", 1, false, "exact")
			testkit.WaitFor(t, 10*time.Second, "remote gets site1/renamed", func() bool { return atRemote.count("site1/renamed", "exact") == 1 })

			// in, mapped site1/cmd/... -> box/cmd/..., QoS kept
			publish(t, rpub, "site1/cmd/light", 2, false, "on")
			testkit.WaitFor(t, 10*time.Second, "local gets box/cmd/light", func() bool { return atLocal.count("box/cmd/light", "on") == 1 })
			if g, _ := atLocal.find("box/cmd/light", "on"); g.qos != 2 {
				t.Errorf("in message at QoS %d, want 2", g.qos)
			}

			// both, empty prefixes, each way exactly once (no echo)
			publish(t, lpub, "sync/a", 1, false, "from-local")
			publish(t, rpub, "sync/b", 1, false, "from-remote")
			testkit.WaitFor(t, 10*time.Second, "sync both ways", func() bool {
				return atRemote.count("sync/a", "from-local") == 1 && atLocal.count("sync/b", "from-remote") == 1
			})

			// retained: a local retained out message is retained remotely
			publish(t, lpub, "box/sensors/kept", 1, true, "kept")
			testkit.WaitFor(t, 10*time.Second, "remote gets retained", func() bool { return atRemote.count("site1/sensors/kept", "kept") == 1 })
			_, late := client(t, remote.addr(), "late-remote", "site1/sensors/kept")
			testkit.WaitFor(t, 10*time.Second, "late subscriber gets the retained copy", func() bool {
				g, ok := late.find("site1/sensors/kept", "kept")
				return ok && g.retain
			})

			// a sentinel after everything: nothing came back twice
			publish(t, lpub, "sync/end", 1, false, "end")
			publish(t, rpub, "sync/end2", 1, false, "end")
			testkit.WaitFor(t, 10*time.Second, "sentinels", func() bool {
				return atRemote.count("sync/end", "end") == 1 && atLocal.count("sync/end2", "end") == 1
			})
			if n := atLocal.count("sync/a", ""); n != 1 {
				t.Errorf("sync/a seen %d times locally, want 1 (echo)", n)
			}
			if n := atRemote.count("sync/b", ""); n != 1 {
				t.Errorf("sync/b seen %d times remotely, want 1 (echo)", n)
			}
			if n := atRemote.count("box/sensors/t", ""); n != 0 {
				t.Errorf("unmapped topic reached the remote %d times", n)
			}
			st := m.Stats()[0]
			if st.MessagesOut < 7 || st.MessagesIn < 2 || st.Address != remote.addr() {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestAuthAndTLS bridges to a mosquitto that wants a password (file made
// by mosquitto_passwd) over TLS with a CA the test makes.
func TestAuthAndTLS(t *testing.T) {
	passwd := testkit.RequireTool(t, "mosquitto_passwd")
	dir := t.TempDir()
	ca, cert, key := testPKI(t, dir)
	pwfile := filepath.Join(dir, "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", pwfile, "bridger", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	_ = os.Chmod(pwfile, 0o600)
	tlsPort := testkit.FreePort(t)
	remote := startMosquitto(t, fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\npassword_file %s\nallow_anonymous false\n",
		tlsPort, ca, cert, key, pwfile))
	_, atRemote := client(t, remote.addr(), "watch", "#", func(o *paho3.ClientOptions) { o.SetUsername("bridger").SetPassword("s3cret") })

	local, _ := newMochi(t, false)
	b := conn("secure", fmt.Sprintf("127.0.0.1:%d", tlsPort), topic("t/#", "out", 1, "", ""))
	b.CAFile = ca
	b.RemoteUsername, b.RemotePassword = "bridger", "s3cret"

	bad := b
	bad.Name, bad.RemoteClientID, bad.RemotePassword = "wrongpw", "box.wrongpw", "nope"
	m := startManager(t, local, "", b, bad)
	testkit.WaitFor(t, 10*time.Second, "TLS bridge up", func() bool { return m.Stats()[0].State == "up" })
	if err := local.Publish("t/x", []byte("secret"), false, 1); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "message over TLS", func() bool { return atRemote.count("t/x", "secret") == 1 })
	// The bridge with the wrong password never connects: its copy stays queued.
	testkit.WaitFor(t, 10*time.Second, "wrong password reported", func() bool {
		s := m.Stats()[1]
		return s.State == "down" && s.LastError != "" && s.Queued == 1
	})
	if n := atRemote.count("t/x", ""); n != 1 {
		t.Errorf("t/x arrived %d times, want 1", n)
	}
}
