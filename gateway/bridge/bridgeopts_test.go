package bridge

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	mqtt "github.com/mochi-mqtt/server/v2"
	mochipk "github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/sys/unix"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/testkit"
)

// The tests of the bridge options of issue 16: what the remote saw.

func v5(b mosquittoconf.Bridge) mosquittoconf.Bridge {
	b.ProtocolVersion = "mqttv50"
	return b
}

func u32(v uint32) *uint32 { return &v }

// MQTT 5 CONNECT properties and the source address, as the remote saw
// them, for Mosquitto's defaults and for set values.
func TestBridgeConnectOptions(t *testing.T) {
	cases := []struct {
		name     string
		set      func(*mosquittoconf.Bridge)
		expiry   *uint32 // Session Expiry Interval in CONNECT; nil = absent
		recvMax  uint16  // 0 = absent (max_inflight_messages when not written)
		aliasMax uint16  // 0 = absent
		source   string
		maxPkt   uint32 // Maximum Packet Size; 0 = absent
		inflight int    // max_inflight_messages of the conf
	}{
		{"defaults", func(*mosquittoconf.Bridge) {}, nil, 20, 10, "127.0.0.1", 0, 20},
		{"session kept for ever", func(b *mosquittoconf.Bridge) { b.SessionExpiryInterval = u32(math.MaxUint32) }, u32(math.MaxUint32), 20, 10, "127.0.0.1", 0, 20},
		{"set", func(b *mosquittoconf.Bridge) {
			b.SessionExpiryInterval, b.ReceiveMaximum, b.MaxTopicAlias = u32(120), 20, 0
		}, u32(120), 20, 0, "127.0.0.1", 0, 50},
		{"bridge_bind_address", func(b *mosquittoconf.Bridge) { b.BindAddress = "127.0.0.2" }, nil, 20, 10, "127.0.0.2", 0, 20},
		{"max_inflight_messages 0 (unlimited)", func(*mosquittoconf.Bridge) {}, nil, 0, 10, "127.0.0.1", 0, 0},
		{"max_inflight_messages 50", func(*mosquittoconf.Bridge) {}, nil, 50, 10, "127.0.0.1", 0, 50},
		{"bridge_max_packet_size is not our receive limit", func(b *mosquittoconf.Bridge) { b.MaxPacketSize = 4096 }, nil, 20, 10, "127.0.0.1", 0, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			box, _ := newMochi(t, false)
			remote := startCapture(t, nil)
			b := v5(conn("props", remote.addr(), topic("t/#", "out", 1, "", "")))
			c.set(&b)
			m, err := New(Options{Server: box, Bridges: []mosquittoconf.Bridge{b}, MaxInflight: c.inflight, Hostname: "box", Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Stop() })
			testkit.WaitFor(t, 10*time.Second, "bridge CONNECT at the remote", func() bool { return remote.firstConnect() != nil })
			cp := remote.firstConnect()
			p := cp.Properties
			if (p.SessionExpiryInterval == nil) != (c.expiry == nil) || (c.expiry != nil && *p.SessionExpiryInterval != *c.expiry) {
				t.Errorf("Session Expiry Interval = %v, want %v", deref(p.SessionExpiryInterval), deref(c.expiry))
			}
			if got := deref16(p.ReceiveMaximum); got != c.recvMax {
				t.Errorf("Receive Maximum = %d, want %d (0 = absent)", got, c.recvMax)
			}
			if got := p.MaximumPacketSize; (got == nil) != (c.maxPkt == 0) || (got != nil && *got != c.maxPkt) {
				t.Errorf("Maximum Packet Size = %v, want %d (0 = absent)", deref(got), c.maxPkt)
			}
			if got := deref16(p.TopicAliasMaximum); got != c.aliasMax {
				t.Errorf("Topic Alias Maximum = %d, want %d (0 = absent)", got, c.aliasMax)
			}
			remote.mu.Lock()
			peer := remote.peers[0]
			remote.mu.Unlock()
			if host, _, _ := net.SplitHostPort(peer); host != c.source {
				t.Errorf("source address = %s, want %s", host, c.source)
			}
		})
	}
}

func deref(p *uint32) any {
	if p == nil {
		return "absent"
	}
	return *p
}

func deref16(p *uint16) uint16 {
	if p == nil {
		return 0
	}
	return *p
}

// bridge_bind_address against Debian's mosquitto: it logs the bridge's
// connection as coming from 127.0.0.2.
func TestBridgeBindAddressMosquitto(t *testing.T) {
	box, _ := newMochi(t, false)
	remote := startLoggingMosquitto(t)
	b := conn("bind", remote.addr(), topic("t/#", "out", 1, "", ""))
	b.BindAddress = "127.0.0.2"
	startManager(t, box, t.TempDir(), b)
	testkit.WaitFor(t, 10*time.Second, "mosquitto saw the bridge from 127.0.0.2", func() bool {
		return strings.Contains(remote.logged(), "New connection from 127.0.0.2:")
	})
}

// bridge_max_topic_alias: aliases the remote sets are resolved; one above
// the maximum ends the connection (the bridge connects again).
func TestBridgeInboundTopicAlias(t *testing.T) {
	box, _ := newMochi(t, false)
	remote := startCapture(t, nil)
	seen := localWatch(t, box, "in/#", 950)
	startManager(t, box, t.TempDir(), v5(conn("alias", remote.addr(), topic("in/#", "in", 0, "", ""))))
	testkit.WaitFor(t, 10*time.Second, "bridge subscribed at the remote", func() bool {
		remote.mu.Lock()
		defer remote.mu.Unlock()
		return len(remote.subs) == 1
	})
	one := uint16(1)
	remote.send(t, &packets.Publish{Topic: "in/a", Payload: []byte("1"), Properties: &packets.Properties{TopicAlias: &one}})
	remote.send(t, &packets.Publish{Payload: []byte("2"), Properties: &packets.Properties{TopicAlias: &one}})
	testkit.WaitFor(t, 10*time.Second, "both messages on in/a locally", func() bool {
		return seen.count("in/a", "1") == 1 && seen.count("in/a", "2") == 1
	})
	eleven := uint16(11)
	remote.send(t, &packets.Publish{Topic: "in/b", Payload: []byte("3"), Properties: &packets.Properties{TopicAlias: &eleven}})
	testkit.WaitFor(t, 10*time.Second, "bridge reconnected after alias 11 > 10", func() bool {
		remote.mu.Lock()
		defer remote.mu.Unlock()
		return len(remote.connects) == 2
	})
	if seen.count("in/b", "") != 0 {
		t.Fatal("a publish with an alias above bridge_max_topic_alias was delivered")
	}
}

// bridge_attempt_unsubscribe against Debian's mosquitto, both protocol
// versions: out-only topics are unsubscribed at the remote before the in
// topics are subscribed, or not at all when false.
func TestBridgeAttemptUnsubscribe(t *testing.T) {
	for _, version := range []string{"mqttv311", "mqttv50"} {
		for _, attempt := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/%v", version, attempt), func(t *testing.T) {
				box, _ := newMochi(t, false)
				remote := startLoggingMosquitto(t)
				b := conn("unsub", remote.addr(), topic("out/#", "out", 1, "", ""), topic("in/#", "in", 1, "", ""))
				b.ProtocolVersion, b.AttemptUnsubscribe = version, attempt
				startManager(t, box, t.TempDir(), b)
				id := "box.unsub"
				testkit.WaitFor(t, 10*time.Second, "the in topic subscribed at mosquitto", func() bool {
					return strings.Contains(remote.logged(), "Received SUBSCRIBE from "+id)
				})
				log := remote.logged()
				unsub := strings.Index(log, "Received UNSUBSCRIBE from "+id)
				sub := strings.Index(log, "Received SUBSCRIBE from "+id)
				if attempt && (unsub < 0 || unsub > sub) {
					t.Fatalf("no UNSUBSCRIBE before the SUBSCRIBE:\n%s", log)
				}
				if !attempt && unsub >= 0 {
					t.Fatalf("UNSUBSCRIBE sent with bridge_attempt_unsubscribe false:\n%s", log)
				}
			})
		}
	}
}

// round_robin false: the first address is the main one; on a secondary
// the bridge goes back to it once it answers. round_robin true: it stays
// where it is until that fails, then takes the next.
func TestBridgeRoundRobin(t *testing.T) {
	old := primaryRetry
	primaryRetry = 200 * time.Millisecond
	t.Cleanup(func() { primaryRetry = old })

	address := func(m *Manager) string {
		if s := m.Stats(); len(s) == 1 && s[0].State == "up" {
			return s[0].Address
		}
		return ""
	}
	t.Run("false", func(t *testing.T) {
		box, _ := newMochi(t, false)
		main := &mosq{t: t, port: testkit.FreePort(t)}
		main.write("")
		second := startMosquitto(t, "")
		b := conn("rr", main.addr(), topic("t/#", "out", 1, "", ""))
		b.Addresses = append(b.Addresses, mosquittoconf.BridgeAddress{Host: "127.0.0.1", Port: second.port})
		m := startManager(t, box, t.TempDir(), b)
		testkit.WaitFor(t, 10*time.Second, "up on the secondary", func() bool { return address(m) == second.addr() })
		main.start()
		testkit.WaitFor(t, 10*time.Second, "back on the main address", func() bool { return address(m) == main.addr() })
	})
	t.Run("true", func(t *testing.T) {
		box, _ := newMochi(t, false)
		first := startMosquitto(t, "")
		second := startMosquitto(t, "")
		b := conn("rr", first.addr(), topic("t/#", "out", 1, "", ""))
		b.Addresses = append(b.Addresses, mosquittoconf.BridgeAddress{Host: "127.0.0.1", Port: second.port})
		b.RoundRobin = true
		m := startManager(t, box, t.TempDir(), b)
		testkit.WaitFor(t, 10*time.Second, "up on the first", func() bool { return address(m) == first.addr() })
		first.term()
		testkit.WaitFor(t, 10*time.Second, "up on the second", func() bool { return address(m) == second.addr() })
		first.start()
		// Ten main-address checks later it is still on the second.
		deadline := time.Now().Add(10 * primaryRetry)
		for time.Now().Before(deadline) {
			if a := address(m); a != second.addr() && a != "" {
				t.Fatalf("left the second address for %s while it worked", a)
			}
			time.Sleep(primaryRetry / 4)
		}
		second.term()
		testkit.WaitFor(t, 10*time.Second, "up on the first again", func() bool { return address(m) == first.addr() })
	})
}

// bridge_alpn: the remote's TLS handshake negotiated the protocol named.
func TestBridgeALPN(t *testing.T) {
	for _, alpn := range []string{"x-mqtt", ""} {
		t.Run("alpn="+alpn, func(t *testing.T) {
			dir := t.TempDir()
			caFile, certFile, keyFile := testPKI(t, dir)
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			remote := startCapture(t, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"x-mqtt", "mqtt"}})
			box, _ := newMochi(t, false)
			b := v5(conn("alpn", remote.addr(), topic("t/#", "out", 1, "", "")))
			b.CAFile, b.ALPN = caFile, alpn
			startManager(t, box, t.TempDir(), b)
			testkit.WaitFor(t, 10*time.Second, "bridge CONNECT over TLS", func() bool { return remote.firstConnect() != nil })
			remote.mu.Lock()
			got := remote.alpn[0]
			remote.mu.Unlock()
			if got != alpn {
				t.Fatalf("negotiated ALPN %q, want %q", got, alpn)
			}
		})
	}
}

// bridge_tcp_keepalive and bridge_tcp_user_timeout, read from a conf,
// are on the socket the bridge dials.
func TestBridgeSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	conf := fmt.Sprintf("connection s\naddress %s\ntopic t/# out 1\nbridge_tcp_keepalive 30 5 4\nbridge_tcp_user_timeout 9000\n", ln.Addr())
	cfg, ds := mosquittoconf.Check("mosquitto.conf", []byte(conf), "")
	if !ds.OK() {
		t.Fatal(ds.Err())
	}
	d, err := newSockOpts(cfg.Bridges[0]).dialer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name       string
		level, opt int
		v          int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 5},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4},
		{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 9000},
	}
	for _, w := range want {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), w.level, w.opt) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if got != w.v {
			t.Errorf("%s = %d, want %d", w.name, got, w.v)
		}
	}
}

// loggingMosquitto is startMosquitto with every log type written to a
// file, which the test reads while mosquitto runs.
type loggingMosquitto struct {
	*mosq
	file string
}

func startLoggingMosquitto(t *testing.T) loggingMosquitto {
	f := filepath.Join(t.TempDir(), "mosquitto.log")
	return loggingMosquitto{startMosquitto(t, "log_type all\nlog_dest file "+f), f}
}

func (m loggingMosquitto) logged() string {
	b, _ := os.ReadFile(m.file)
	return string(b)
}

// What Debian's mosquitto logs of the bridge's CONNECT: protocol version,
// clean session, keepalive, client id, username, and the state will
// (notifications), for the options that set them.
func TestBridgeConnectMosquittoSees(t *testing.T) {
	cases := []struct {
		name    string
		set     func(*mosquittoconf.Bridge)
		kind    string // "New bridge" (try_private) or "New client"
		connect string // "as ID (...)." as mosquitto logs it
		will    string // will topic; "" = no will
	}{
		{"defaults", func(*mosquittoconf.Bridge) {}, "New bridge", "as box.c (p2, c0, k60).", "$SYS/broker/connection/box.c/state"},
		{"mqttv31, cleansession, keepalive, ids, username", func(b *mosquittoconf.Bridge) {
			b.ProtocolVersion, b.CleanSession, b.KeepaliveInterval = "mqttv31", true, 30
			b.RemoteClientID, b.RemoteUsername, b.RemotePassword = "rc", "u", "p"
		}, "New bridge", "as rc (p1, c1, k30, u'u').", "$SYS/broker/connection/rc/state"},
		{"mqttv50", func(b *mosquittoconf.Bridge) { b.ProtocolVersion = "mqttv50" }, "New client", "as box.c (p5, c0, k60).", "$SYS/broker/connection/box.c/state"},
		{"notification_topic", func(b *mosquittoconf.Bridge) { b.NotificationTopic = "gw/state" }, "New bridge", "as box.c (p2, c0, k60).", "gw/state"},
		{"notifications false", func(b *mosquittoconf.Bridge) { b.Notifications = false }, "New bridge", "as box.c (p2, c0, k60).", ""},
		{"notifications_local_only", func(b *mosquittoconf.Bridge) { b.NotificationsLocalOnly = true }, "New bridge", "as box.c (p2, c0, k60).", ""},
		{"try_private false", func(b *mosquittoconf.Bridge) { b.TryPrivate = false }, "New client", "as box.c (p2, c0, k60).", "$SYS/broker/connection/box.c/state"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			box, _ := newMochi(t, false)
			remote := startLoggingMosquitto(t)
			b := conn("c", remote.addr(), topic("t/#", "out", 1, "", ""))
			c.set(&b)
			startManager(t, box, t.TempDir(), b)
			testkit.WaitFor(t, 10*time.Second, "mosquitto acknowledged the bridge's CONNECT", func() bool {
				return strings.Contains(remote.logged(), "Sending CONNACK to ")
			})
			log := remote.logged()
			if !strings.Contains(log, c.kind+" connected from 127.0.0.1:") || !strings.Contains(log, c.connect) {
				t.Fatalf("no %q in:\n%s", c.connect, log)
			}
			hasWill := strings.Contains(log, "Will message specified")
			if (c.will != "") != hasWill || (c.will != "" && !strings.Contains(log, "\t"+c.will+"\n")) {
				t.Fatalf("will %q wanted; log:\n%s", c.will, log)
			}
		})
	}
}

// local_clientid is the origin of what the bridge publishes locally.
func TestBridgeLocalClientID(t *testing.T) {
	box, _ := newMochi(t, false)
	remote := startMosquitto(t, "")
	var origin sync.Map
	if err := box.Subscribe("in/#", 960, func(_ *mqtt.Client, _ mochipk.Subscription, pk mochipk.Packet) {
		origin.Store(pk.Origin, true)
	}); err != nil {
		t.Fatal(err)
	}
	b := conn("lc", remote.addr(), topic("in/#", "in", 1, "", ""))
	b.LocalClientID = "bridge-here"
	startManager(t, box, t.TempDir(), b)
	pub, _ := client(t, remote.addr(), "pub-lc", "")
	testkit.WaitFor(t, 10*time.Second, "a remote message published locally by bridge-here", func() bool {
		if _, ok := origin.Load("bridge-here"); ok {
			return true
		}
		publish(t, pub, "in/x", 1, false, "v")
		return false
	})
}

// restart_timeout BASE CAP STABLE: the backoff is back at BASE after a
// connection that lasted STABLE, not after a shorter one; without STABLE
// at every connection. (Timing only, so the backoff itself is tested.)
func TestBridgeRestartTimeoutStable(t *testing.T) {
	grown := func(stable time.Duration) *backoff {
		bo := newBackoff(1, 30)
		bo.stable = stable
		for bo.cur < 3*time.Second { // jitter grows it; bounded by the cap
			bo.next()
		}
		return bo
	}
	bo := grown(0)
	bo.connected(0)
	if bo.cur != time.Second {
		t.Fatalf("without STABLE the backoff is %v after a connection, want 1s", bo.cur)
	}
	bo = grown(10 * time.Second)
	before := bo.cur
	bo.connected(0)
	bo.connected(9 * time.Second)
	if bo.cur != before {
		t.Fatalf("a 9 s connection with STABLE 10 reset the backoff to %v", bo.cur)
	}
	bo.connected(10 * time.Second)
	if bo.cur != time.Second {
		t.Fatalf("a 10 s connection with STABLE 10 left the backoff at %v, want 1s", bo.cur)
	}
	for range 1000 {
		if d := bo.next(); d < time.Second || d > 30*time.Second {
			t.Fatalf("backoff %v outside BASE 1s .. CAP 30s", d)
		}
	}
}

// bridge_max_packet_size: a message whose PUBLISH would be larger is not
// sent to the remote; the ones before and after it are, in order. Both
// protocol families, QoS 0 and 1, against Debian's mosquitto.
func TestBridgeMaxPacketSize(t *testing.T) {
	for _, version := range []string{"mqttv311", "mqttv50"} {
		for _, qos := range []byte{0, 1} {
			t.Run(fmt.Sprintf("%s/qos%d", version, qos), func(t *testing.T) {
				box, _ := newMochi(t, false)
				remote := startMosquitto(t, "")
				_, atRemote := client(t, remote.addr(), "watch-mps", "t/#")
				b := conn("mps", remote.addr(), topic("t/#", "out", qos, "", ""))
				b.ProtocolVersion, b.MaxPacketSize = version, 100
				m := startManager(t, box, t.TempDir(), b)
				testkit.WaitFor(t, 10*time.Second, "bridge up", func() bool { return m.Stats()[0].State == "up" })
				big := strings.Repeat("x", 100)
				// t/n + 90 bytes fits in 100 bytes at any QoS and version.
				fits := strings.Repeat("y", 90)
				testkit.WaitFor(t, 10*time.Second, "a first message at the remote", func() bool {
					if atRemote.count("t/a", "") > 0 {
						return true
					}
					_ = box.Publish("t/a", []byte(fits), false, qos)
					return false
				})
				for _, p := range []struct{ topic, payload string }{{"t/b", big}, {"t/c", fits}} {
					if err := box.Publish(p.topic, []byte(p.payload), false, qos); err != nil {
						t.Fatal(err)
					}
				}
				testkit.WaitFor(t, 10*time.Second, "the message after the big one", func() bool { return atRemote.count("t/c", fits) == 1 })
				if n := atRemote.count("t/b", ""); n != 0 {
					t.Fatalf("the %d-byte payload crossed a bridge_max_packet_size of 100", len(big))
				}
			})
		}
	}
}
