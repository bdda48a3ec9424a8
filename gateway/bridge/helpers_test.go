package bridge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/testkit"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// mosq is a real Debian mosquitto on a loopback port.
type mosq struct {
	t    testing.TB
	port int
	conf string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   sync.Mutex
}

// startMosquitto runs mosquitto with `listener PORT 127.0.0.1` and
// allow_anonymous true, plus extra lines.
func startMosquitto(t testing.TB, extra string) *mosq {
	t.Helper()
	testkit.RequireTool(t, "mosquitto")
	m := &mosq{t: t, port: testkit.FreePort(t)}
	return m.write(extra).start()
}

func (m *mosq) write(extra string) *mosq {
	dir := m.t.TempDir()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n", m.port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to user mosquitto and cannot read the test's files
	}
	conf += extra + "\n"
	m.conf = filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		m.t.Fatal(err)
	}
	return m
}

func (m *mosq) start() *mosq {
	m.t.Helper()
	bin := testkit.RequireTool(m.t, "mosquitto")
	m.mu.Lock()
	m.out = &bytes.Buffer{}
	m.cmd = exec.Command(bin, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		m.mu.Unlock()
		m.t.Fatalf("start mosquitto: %v", err)
	}
	cmd := m.cmd
	m.mu.Unlock()
	m.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(m.port)
	testkit.WaitFor(m.t, 10*time.Second, "mosquitto listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		return false
	})
	return m
}

// term stops mosquitto gracefully (it saves its store).
func (m *mosq) term() {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
}

func (m *mosq) addr() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// testListener is a tiny mochi listener on a loopback port, optionally
// wrapping each connection (PrivateConn).
type testListener struct {
	id   string
	ln   net.Listener
	wrap func(net.Conn) net.Conn
	wg   sync.WaitGroup
}

func (l *testListener) Init(*slog.Logger) error { return nil }
func (l *testListener) ID() string              { return l.id }
func (l *testListener) Address() string         { return l.ln.Addr().String() }
func (l *testListener) Protocol() string        { return "tcp" }
func (l *testListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if l.wrap != nil {
			c = l.wrap(c)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			_ = establish(l.id, c)
		}()
	}
}
func (l *testListener) Close(closeClients listeners.CloseFn) {
	_ = l.ln.Close()
	closeClients(l.id)
}

// newMochi starts a mochi server on a free loopback port; private puts
// PrivateConn and InboundHook in place.
func newMochi(t testing.TB, private bool) (*mqtt.Server, string) {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: testLogger(t)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := &testListener{id: "t" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), ln: ln}
	if private {
		tl.wrap = PrivateConn
		if err := s.AddHook(InboundHook(s, testLogger(t)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddListener(tl); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().String()
}

// startManager runs a Manager for the bridges and stops it in Cleanup.
func startManager(t testing.TB, s *mqtt.Server, storeDir string, bridges ...mosquittoconf.Bridge) *Manager {
	t.Helper()
	m, err := New(Options{Server: s, Bridges: bridges, StoreDir: storeDir, Hostname: "box", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	return m
}

// conn is a mosquittoconf.Bridge with Mosquitto's defaults, to the
// address given, with quick restarts for tests.
func conn(name, addr string, topics ...mosquittoconf.BridgeTopic) mosquittoconf.Bridge {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	for i := range topics {
		topics[i].Pos = mosquittoconf.Pos{File: "test.conf", Line: 10 + i}
	}
	return mosquittoconf.Bridge{
		Name:               name,
		Addresses:          []mosquittoconf.BridgeAddress{{Host: host, Port: p}},
		Topics:             topics,
		ProtocolVersion:    "mqttv311",
		KeepaliveInterval:  60,
		Notifications:      true,
		TryPrivate:         true,
		StartType:          "automatic",
		RestartTimeoutBase: 1,
		IdleTimeout:        60,
		Threshold:          10,
		OutgoingRetain:     true,
		BridgeExtra:        mosquittoconf.NewBridge(name).BridgeExtra,
		Pos:                mosquittoconf.Pos{File: "test.conf", Line: 1},
	}
}

func topic(pattern, dir string, qos byte, local, remote string) mosquittoconf.BridgeTopic {
	return mosquittoconf.BridgeTopic{Pattern: pattern, Direction: dir, QoS: qos, LocalPrefix: local, RemotePrefix: remote}
}

// got is one received message.
type got struct {
	topic   string
	payload string
	qos     byte
	retain  bool
}

// collector gathers messages.
type collector struct {
	mu   sync.Mutex
	msgs []got
}

func (c *collector) add(g got) {
	c.mu.Lock()
	c.msgs = append(c.msgs, g)
	c.mu.Unlock()
}

func (c *collector) all() []got {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]got(nil), c.msgs...)
}

func (c *collector) count(topic, payload string) int {
	n := 0
	for _, g := range c.all() {
		if g.topic == topic && (payload == "" || g.payload == payload) {
			n++
		}
	}
	return n
}

func (c *collector) find(topic, payload string) (got, bool) {
	for _, g := range c.all() {
		if g.topic == topic && g.payload == payload {
			return g, true
		}
	}
	return got{}, false
}

// client connects a real paho (MQTT 3.1.1) client to addr and subscribes
// to filter at QoS 2, collecting what arrives.
func client(t testing.TB, addr, id, filter string, opts ...func(*paho3.ClientOptions)) (paho3.Client, *collector) {
	t.Helper()
	c := &collector{}
	o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second)
	for _, f := range opts {
		f(o)
	}
	cl := paho3.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("client %s connect to %s: %v", id, addr, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	if filter != "" {
		tok := cl.Subscribe(filter, 2, func(_ paho3.Client, m paho3.Message) {
			c.add(got{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), retain: m.Retained()})
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("client %s subscribe: %v", id, tok.Error())
		}
	}
	return cl, c
}

func publish(t testing.TB, c paho3.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// localWatch collects, through the server's inline client, what is
// published locally on filter.
func localWatch(t testing.TB, s *mqtt.Server, filter string, id int) *collector {
	t.Helper()
	c := &collector{}
	err := s.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		c.add(got{topic: pk.TopicName, payload: string(pk.Payload), qos: pk.FixedHeader.Qos, retain: pk.FixedHeader.Retain})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Unsubscribe(filter, id) })
	return c
}

// testPKI makes a CA and a server certificate for 127.0.0.1 in dir.
func testPKI(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bridge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server.key", "EC PRIVATE KEY", keyDER)
}
