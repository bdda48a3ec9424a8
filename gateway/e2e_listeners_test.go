package gateway_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/internal/testkit"
)

func TestTLSAndWebsocketListenersFromTheConf(t *testing.T) {
	pki := testkit.NewPKI(t)
	b := startBroker(t, fmt.Sprintf(`allow_anonymous true
listener 0 127.0.0.1
listener 0 127.0.0.1
certfile %s
keyfile %s
cafile %s
require_certificate true
listener 0 127.0.0.1
protocol websockets
`, pki.ServerCert, pki.ServerKey, pki.CAFile))
	plain, secure := b.ports["mqtt"][0], b.ports["mqtt"][1]

	// A TLS publisher with its client certificate reaches a plain subscriber.
	s, _ := subscribe(t, plain, "-t", "tls/t", "-C", "1")
	pub(t, secure, "--cafile", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey, "-t", "tls/t", "-m", "sealed")
	equalLines(t, s.waitMessages(t, 1), []string{"tls/t sealed"})
	// Without a client certificate the TLS listener refuses.
	if out, code := testkit.Run(t, 15*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", secure, "--cafile", pki.CAFile, "-t", "x", "-m", "y"); code == 0 {
		t.Fatalf("TLS without a client certificate accepted: %s", out)
	}

	// A websockets client (paho) round trip through the broker.
	ws := "ws://127.0.0.1:" + b.ports["websockets"][0]
	got := make(chan string, 1)
	opts := paho.NewClientOptions().AddBroker(ws + "/mqtt").SetClientID("ws-client").SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("websockets connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("ws/t", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("websockets subscribe: %v", tok.Error())
	}
	pub(t, plain, "-q", "1", "-t", "ws/t", "-m", "over-ws")
	select {
	case m := <-got:
		if m != "over-ws" {
			t.Fatalf("websockets got %q", m)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no message over websockets")
	}
}

func TestPasswordFileAndACLFromTheConf(t *testing.T) {
	testkit.RequireTool(t, "mosquitto_passwd")
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if out, code := testkit.Run(t, 10*time.Second, "mosquitto_passwd", "-b", "-c", pw, "sensor", "s3cret"); code != 0 {
		t.Fatalf("mosquitto_passwd: %s", out)
	}
	acl := filepath.Join(dir, "acl")
	write := func(p, s string) {
		t.Helper()
		if err := osWriteFile(p, s); err != nil {
			t.Fatal(err)
		}
	}
	write(acl, "user sensor\ntopic readwrite home/#\n")
	b := startBroker(t, fmt.Sprintf("listener 0 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\n", pw, acl))

	// Right password: allowed topic works, and a filter outside the ACL
	// gets SUBACK 128 (MQTT 3.1.1) / 135 (MQTT 5).
	s, granted := subscribe(t, b.port(), "-u", "sensor", "-P", "s3cret", "-t", "home/t", "-C", "1")
	if granted != "0" {
		t.Fatalf("granted %q", granted)
	}
	pub(t, b.port(), "-u", "sensor", "-P", "s3cret", "-t", "home/t", "-m", "ok")
	equalLines(t, s.waitMessages(t, 1), []string{"home/t ok"})
	_, refused := subscribe(t, b.port(), "-u", "sensor", "-P", "s3cret", "-t", "away/t", "-E")
	if refused != "128" {
		t.Fatalf("SUBACK for a filter the ACL does not grant: %q, want 128", refused)
	}
	_, refused5 := subscribe(t, b.port(), "-V", "mqttv5", "-u", "sensor", "-P", "s3cret", "-t", "away/t", "-E")
	if refused5 != "135" {
		t.Fatalf("MQTT 5 SUBACK for a refused filter: %q, want 135", refused5)
	}
	// Wrong password and anonymous are refused.
	for _, args := range [][]string{{"-u", "sensor", "-P", "wrong"}, {}} {
		all := append([]string{"-h", "127.0.0.1", "-p", b.port(), "-t", "home/t", "-m", "x"}, args...)
		if out, code := testkit.Run(t, 15*time.Second, "mosquitto_pub", all...); code == 0 || !strings.Contains(strings.ToLower(out), "not authori") {
			t.Fatalf("mosquitto_pub %v: exit %d, output %q; want a refusal", args, code, out)
		}
	}
}

func TestMaxKeepalive(t *testing.T) {
	b := startBroker(t, anonConf+"max_keepalive 30\n")
	// MQTT 3.1.1 cannot be told another keepalive: refused, as Mosquitto 2 does.
	out, code := testkit.Run(t, 15*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", b.port(), "-k", "60", "-t", "k", "-m", "x")
	if code == 0 || !strings.Contains(strings.ToLower(out), "identifier rejected") {
		t.Fatalf("keepalive 60 over max 30: exit %d, %q; want identifier rejected", code, out)
	}
	pub(t, b.port(), "-k", "30", "-t", "k", "-m", "x")
	// MQTT 5 is told to use 30 (Server Keep Alive) and stays connected.
	pub(t, b.port(), "-V", "mqttv5", "-k", "60", "-t", "k", "-m", "x")
}
