package bridge

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		f, topic string
		want     bool
	}{
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false},
		{"#", "$SYS/x", false}, {"$SYS/#", "$SYS/x", true}, {"a/b", "a/b", true}, {"a/b", "a/c", false},
		{"+/+", "a/b", true}, {"a", "a/b", false},
	} {
		if got := matches(c.f, c.topic); got != c.want {
			t.Errorf("matches(%q, %q) = %v", c.f, c.topic, got)
		}
	}
}

func TestRouteMapping(t *testing.T) {
	r, err := newRoute(mosquittoconf.BridgeTopic{Pattern: "s/#", Direction: "both", QoS: 1, LocalPrefix: "box/", RemotePrefix: "site/"})
	if err != nil {
		t.Fatal(err)
	}
	if r.local != "box/s/#" || r.remote != "site/s/#" || r.toRemote("box/s/t") != "site/s/t" || r.toLocal("site/s/t") != "box/s/t" {
		t.Errorf("mapping wrong: %+v", r)
	}
	for _, bad := range []mosquittoconf.BridgeTopic{
		{Pattern: "a", Direction: "sideways"},
		{Pattern: "a", QoS: 3},
		{Pattern: ""},
		{Pattern: "a", LocalPrefix: "x/+/"},
		{Pattern: "a/#/b"},
	} {
		bad.Pos = mosquittoconf.Pos{File: "m.conf", Line: 7}
		if _, err := newRoute(bad); err == nil || !strings.HasPrefix(err.Error(), "m.conf:7: ") {
			t.Errorf("%+v: error %v, want one starting with m.conf:7", bad, err)
		}
	}
}

// connectPacket is a minimal MQTT CONNECT with the given version byte.
func connectPacket(name string, version byte) []byte {
	vh := []byte{0, byte(len(name))}
	vh = append(vh, name...)
	vh = append(vh, version, 0x02, 0, 60, 0, 1, 'c')
	return append([]byte{0x10, byte(len(vh))}, vh...)
}

func TestPrivateConn(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      []byte
		want    []byte
		private bool
	}{
		{"mqtt311 private", connectPacket("MQTT", 0x84), connectPacket("MQTT", 0x04), true},
		{"mqtt31 private", connectPacket("MQIsdp", 0x83), connectPacket("MQIsdp", 0x03), true},
		{"plain", connectPacket("MQTT", 0x04), connectPacket("MQTT", 0x04), false},
		{"not a connect", []byte{0x30, 3, 0, 1, 'a'}, []byte{0x30, 3, 0, 1, 'a'}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			go func() { _, _ = client.Write(c.in); client.Close() }()
			pc := PrivateConn(server)
			got, err := io.ReadAll(pc)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) {
				t.Errorf("read % x, want % x", got, c.want)
			}
			if isBridgeConn(pc) != c.private {
				t.Errorf("bridge = %v, want %v", isBridgeConn(pc), c.private)
			}
		})
	}
}

func TestQueuePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := openQueue(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"a", "b", "c"} {
		if err := q.push(message{topic: "t", payload: []byte(p), qos: 1, retain: i == 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.push(message{topic: "t", qos: 1}); err != errQueueFull {
		t.Errorf("4th push: %v, want errQueueFull", err)
	}
	seq, m, _ := q.take()
	if string(m.payload) != "a" {
		t.Fatalf("took %q", m.payload)
	}
	if err := q.ack(seq); err != nil {
		t.Fatal(err)
	}
	if err := q.close(); err != nil {
		t.Fatal(err)
	}
	q, err = openQueue(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	var got []string
	for {
		_, m, ok := q.take()
		if !ok {
			break
		}
		got = append(got, string(m.payload))
		if string(m.payload) == "b" && !m.retain {
			t.Error("retain flag lost")
		}
	}
	if strings.Join(got, "") != "bc" {
		t.Errorf("reloaded %v, want b c", got)
	}
}

func TestNewRejectsBadBridges(t *testing.T) {
	s, _ := newMochi(t, false)
	ca, _, _ := testPKI(t, t.TempDir())
	good := conn("ok", "127.0.0.1:1883", topic("a/#", "out", 0, "", ""))
	for name, mutate := range map[string]func(*mosquittoconf.Bridge){
		"no address":    func(b *mosquittoconf.Bridge) { b.Addresses = nil },
		"no topic":      func(b *mosquittoconf.Bridge) { b.Topics = nil },
		"version":       func(b *mosquittoconf.Bridge) { b.ProtocolVersion = "mqttv4" },
		"start type":    func(b *mosquittoconf.Bridge) { b.StartType = "sometimes" },
		"cafile":        func(b *mosquittoconf.Bridge) { b.CAFile = "/nonexistent/ca.pem" },
		"tls version":   func(b *mosquittoconf.Bridge) { b.CAFile = ca; b.TLSVersion = "ssl3" },
		"restart":       func(b *mosquittoconf.Bridge) { b.RestartTimeoutBase, b.RestartTimeoutCap = 10, 5 },
		"bad topic qos": func(b *mosquittoconf.Bridge) { b.Topics[0].QoS = 5 },
	} {
		b := good
		b.Topics = append([]mosquittoconf.BridgeTopic(nil), good.Topics...)
		mutate(&b)
		if _, err := New(Options{Server: s, Bridges: []mosquittoconf.Bridge{b}, Logger: testLogger(t)}); err == nil || !strings.HasPrefix(err.Error(), "test.conf:") {
			t.Errorf("%s: error %v, want one naming test.conf:LINE", name, err)
		}
	}
	b5 := good
	b5.ProtocolVersion, b5.MaxPacketSize = "mqttv50", 0
	b3 := good
	b3.Name, b3.ReceiveMaximum = "three", 10
	m, err := New(Options{Server: s, Bridges: []mosquittoconf.Bridge{b5, b3}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Warnings) != 2 || !strings.Contains(m.Warnings[0], "test.conf:1: connection ok: try_private") ||
		!strings.Contains(m.Warnings[1], "bridge_receive_maximum") {
		t.Errorf("warnings %q", m.Warnings)
	}
	if _, err := New(Options{Server: s, Bridges: []mosquittoconf.Bridge{good, good}}); err == nil {
		t.Error("a name used twice was accepted")
	}
}
