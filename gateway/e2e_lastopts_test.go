package gateway_test

import (
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/internal/testkit"
)

// certUserConf is one conf for both brokers: a plain listener for an
// anonymous watcher, one naming clients by their certificate's CN (and
// taking the name as client id), one by its whole subject. {p1}..{p3} are
// the ports.
const certUserConf = `allow_anonymous true
acl_file {acl}
listener {p1} 127.0.0.1
listener {p2} 127.0.0.1
certfile {cert}
keyfile {key}
cafile {ca}
require_certificate true
use_identity_as_username true
use_username_as_clientid true
listener {p3} 127.0.0.1
certfile {cert}
keyfile {key}
cafile {ca}
require_certificate true
use_subject_as_username true
`

// certUserACL: anonymous clients read everything; each certificate name
// writes its own branch; a pattern shows the client id.
const certUserACL = `topic read #
user client
topic write ident/#
topic read ident/b
user CN=sensor 1,OU=Hall,O=Home
topic write subj/#
pattern write byid/%c/#
`

// TestCertificateAsUsername: use_identity_as_username and
// use_subject_as_username name a client by its certificate for the ACLs
// (the CONNECT's login is not used) and write the subject as Mosquitto
// does: the same conf and ACL file give the same deliveries on Debian's
// mosquitto and here, a will the name may not write dropped by both.
func TestCertificateAsUsername(t *testing.T) {
	pki := testkit.NewPKI(t)
	subjCert, subjKey := pki.NewClient(t, "sensor", pkix.Name{CommonName: "sensor 1", OrganizationalUnit: []string{"Hall"}, Organization: []string{"Home"}})
	boxCert, boxKey := pki.NewClient(t, "box", pkix.Name{CommonName: "gateway-box"})
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	if err := osWriteFile(acl, certUserACL); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{acl}", acl, "{cert}", pki.ServerCert, "{key}", pki.ServerKey, "{ca}", pki.CAFile).Replace(certUserConf)

	run := func(t *testing.T, ports []string) {
		plain, ident, subj := ports[0], ports[1], ports[2]
		tls := func(cert, key string) []string { return []string{"--cafile", pki.CAFile, "--cert", cert, "--key", key} }
		w, _ := subscribe(t, plain, "-t", "ident/#", "-t", "subj/#", "-t", "byid/#")
		send := func(port string, cert []string, args ...string) {
			t.Helper()
			pub(t, port, append(cert, args...)...)
		}
		// CN "client": its branch only; the login it sends is ignored.
		send(ident, tls(pki.ClientCert, pki.ClientKey), "-u", "nobody", "-P", "wrong", "-t", "ident/a", "-m", "1")
		send(ident, tls(pki.ClientCert, pki.ClientKey), "-t", "subj/a", "-m", "denied")
		// use_username_as_clientid: the id is the CN, whatever -i says.
		send(ident, tls(pki.ClientCert, pki.ClientKey), "-i", "other", "-t", "byid/client/x", "-m", "2")
		// The whole subject, OpenSSL's way.
		send(subj, tls(subjCert, subjKey), "-t", "subj/a", "-m", "3")
		send(subj, tls(subjCert, subjKey), "-t", "ident/a", "-m", "denied")
		send(ident, tls(pki.ClientCert, pki.ClientKey), "-t", "ident/end", "-m", "4")
		equalLines(t, w.waitMessages(t, 4), []string{"ident/a 1", "byid/client/x 2", "subj/a 3", "ident/end 4"})
		// A will the name may not write: the client is let in, the will
		// never published; one it may write is, when the client is killed.
		for _, will := range []string{"subj/w", "ident/w"} {
			args := append(tls(pki.ClientCert, pki.ClientKey), "--will-topic", will, "--will-payload", "gone", "-t", "ident/b")
			s, granted := subscribe(t, ident, args...)
			if granted != "0" {
				t.Fatalf("will on %s: SUBACK %q", will, granted)
			}
			if err := s.proc.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			s.proc.Wait(t, 10*time.Second)
		}
		equalLines(t, w.waitMessages(t, 5), []string{"ident/a 1", "byid/client/x 2", "subj/a 3", "ident/end 4", "ident/w gone"})
	}

	t.Run("mosquitto", func(t *testing.T) {
		testkit.RequireTool(t, "mosquitto")
		var ports []string
		c := conf
		for _, p := range []string{"{p1}", "{p2}", "{p3}"} {
			port := fmt.Sprint(testkit.FreePort(t))
			ports = append(ports, port)
			c = strings.Replace(c, p, port, 1)
		}
		if os.Getuid() == 0 {
			c = "user root\n" + c // not mosquitto's own account: it could not read the test's files
		}
		path := filepath.Join(t.TempDir(), "mosquitto.conf")
		if err := os.WriteFile(path, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		p := testkit.Start(t, "mosquitto", "-v", "-c", path)
		p.WaitLine(t, 10*time.Second, regexp.MustCompile(`Opening ipv4 listen socket on port `+ports[2]))
		run(t, ports)
	})
	t.Run("gateway", func(t *testing.T) {
		c := strings.NewReplacer("{p1}", "0", "{p2}", "0", "{p3}", "0").Replace(conf)
		b := startBroker(t, c)
		run(t, b.ports["mqtt"])
		// A certificate naming one of the box's own accounts gets nothing
		// of the box's rights: it is refused.
		out, code := testkit.Run(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", b.ports["mqtt"][1],
			"--cafile", pki.CAFile, "--cert", boxCert, "--key", boxKey, "-t", "ident/x", "-m", "x")
		if code == 0 {
			t.Fatalf("a certificate named gateway-box was let in: %s", out)
		}
	})
}

// TestMaximumQoSIsMaxQoS: maximum_qos, Mosquitto's other name of max_qos,
// limits the listener the same way.
func TestMaximumQoSIsMaxQoS(t *testing.T) {
	b := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\nmaximum_qos 1\n")
	if ca := connack5(t, b.port(), "a", ""); ca.Properties.MaximumQoS == nil || *ca.Properties.MaximumQoS != 1 {
		t.Fatalf("maximum QoS %v, want 1", ca.Properties.MaximumQoS)
	}
	sub, granted := subscribe(t, b.port(), "-V", "mqttv311", "-q", "2", "-t", "m/t")
	if granted != "1" {
		t.Fatalf("granted %q, want 1", granted)
	}
	pub(t, b.port(), "-q", "1", "-t", "m/t", "-m", "hello")
	equalLines(t, sub.waitMessages(t, 1), []string{"m/t hello"})
}

// TestMaxQueuedBytes: a disconnected persistent session holds QoS 1
// messages while their payload bytes are below max_queued_bytes (so the
// message that crosses it stays) and the next ones are dropped: the same
// messages come back from Debian's mosquitto and, after a kill -9 and a
// restart from the store, from here.
func TestMaxQueuedBytes(t *testing.T) {
	const conf = "max_queued_bytes 1000\nallow_anonymous true\n"
	payload := strings.Repeat("x", 400) // three make 1,200: over the limit from the third
	session := []string{"-c", "-i", "q1", "-q", "1", "-t", "q/#"}
	fill := func(t *testing.T, port string) {
		t.Helper()
		if out, code := testkit.Run(t, 20*time.Second, "mosquitto_sub", append([]string{"-h", "127.0.0.1", "-p", port, "-E"}, session...)...); code != 0 {
			t.Fatalf("persistent subscribe: exit %d: %s", code, out)
		}
		for i := 1; i <= 5; i++ {
			pub(t, port, "-q", "1", "-t", fmt.Sprintf("q/%d", i), "-m", payload)
		}
		// The store writes a drop with its next change (gateway/durable);
		// this one is written before its PUBACK, so the kill -9 below
		// comes after the drops are stored.
		pub(t, port, "-q", "1", "-r", "-t", "flush", "-m", "x")
	}
	check := func(t *testing.T, port string) {
		t.Helper()
		// The session comes back (without subscribing again: its
		// subscription is kept) with what was kept; a message published
		// while it is here follows them, so nothing else came in between.
		got := make(chan string, 16)
		opts := paho.NewClientOptions().AddBroker("tcp://127.0.0.1:" + port).SetClientID("q1").SetProtocolVersion(4).
			SetCleanSession(false).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
			SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		defer c.Disconnect(100)
		var topics []string
		next := func() {
			t.Helper()
			select {
			case topic := <-got:
				topics = append(topics, topic)
			case <-time.After(15 * time.Second):
				t.Fatalf("no message after %q", topics)
			}
		}
		for range 3 {
			next()
		}
		pub(t, port, "-q", "1", "-t", "q/end", "-m", "end")
		next()
		equalLines(t, topics, []string{"q/1", "q/2", "q/3", "q/end"})
	}

	t.Run("mosquitto", func(t *testing.T) {
		port := startMosquitto(t, "listener {port} 127.0.0.1\n"+conf)
		fill(t, port)
		check(t, port)
	})
	t.Run("gateway", func(t *testing.T) {
		dir := t.TempDir()
		c := "persistence true\npersistence_location {dir}/\nlistener 0 127.0.0.1\n" + conf
		b := startBrokerIn(t, dir, c)
		fill(t, b.port())
		// What was dropped is gone from the store too.
		b.kill9(t)
		b = startBrokerIn(t, dir, c)
		check(t, b.port())
	})
}

// TestCertificateNamedClientsStayOnReload: a client named by its
// certificate has no password to have changed, so a SIGHUP with a
// password_file in force leaves it connected.
func TestCertificateNamedClientsStayOnReload(t *testing.T) {
	pki := testkit.NewPKI(t)
	dir := t.TempDir()
	pw, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	passwordFile(t, pw, map[string]string{"someone": "pw"})
	if err := osWriteFile(acl, "user client\ntopic readwrite cert/#\n"); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, fmt.Sprintf("password_file %s\nacl_file %s\nlistener 0 127.0.0.1\ncertfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\nuse_identity_as_username true\n",
		pw, acl, pki.ServerCert, pki.ServerKey, pki.CAFile))
	tls := []string{"--cafile", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}
	s, _ := subscribe(t, b.port(), append(tls, "-t", "cert/#")...)
	if err := b.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	b.proc.WaitLine(t, 10*time.Second, regexp.MustCompile(`password and ACL files reloaded`))
	pub(t, b.port(), append(tls, "-t", "cert/after", "-m", "1")...)
	equalLines(t, s.waitMessages(t, 1), []string{"cert/after 1"})
	if out := b.proc.Output(); strings.Contains(out, "disconnecting client") {
		t.Fatalf("a client named by its certificate was disconnected on reload:\n%s", out)
	}
}
