package listeners

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"

	"github.com/homebox/gateway/gateway/languard"
	"github.com/homebox/gateway/internal/testkit"
)

// requireTool finds a command the test drives, failing (never skipping)
// with the package to install when it is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("test needs %s (Debian package mosquitto-clients): %v", name, err)
	}
	return p
}

// len is how many connections the listener has handed to the broker and
// not yet seen closed.
func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startBroker runs a mochi broker that allows everyone on the given
// listeners and stops it when the test ends.
func startBroker(t *testing.T, ls ...mochilisteners.Listener) *mqtt.Server {
	t.Helper()
	return serve(t, &mqtt.Options{}, new(auth.AllowHook), ls...)
}

// serve runs a mochi broker made from opts (inline client on, logs off),
// with hook (given the server as its config), on the given listeners, and
// stops it when the test ends.
func serve(t *testing.T, opts *mqtt.Options, hook mqtt.Hook, ls ...mochilisteners.Listener) *mqtt.Server {
	t.Helper()
	opts.InlineClient, opts.Logger = true, quietLogger()
	srv := mqtt.New(opts)
	if err := srv.AddHook(hook, srv); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if err := srv.AddListener(l); err != nil {
			t.Fatalf("AddListener %s: %v", l.ID(), err)
		}
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopBroker(srv) })
	return srv
}

// stopped holds the brokers already closed: mochi's Close panics when called
// twice.
var stopped sync.Map

func stopBroker(srv *mqtt.Server) {
	if _, done := stopped.LoadOrStore(srv, true); !done {
		_ = srv.Close()
	}
}

func mustGuard(t *testing.T, list string) *languard.Guard {
	t.Helper()
	g, err := languard.ParseNetworkList(list)
	if err != nil {
		t.Fatal(err)
	}
	g.SetLogger(quietLogger())
	return g
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return h, p
}

func subscribed(srv *mqtt.Server, topic, clientID string) func() bool {
	return func() bool {
		_, ok := srv.Topics.Subscribers(topic).Subscriptions[clientID]
		return ok
	}
}

// mosqRoundTrip subscribes with mosquitto_sub, waits until the broker has
// the subscription, publishes with mosquitto_pub and checks the message.
// extra holds connection flags (-h, -p, TLS files) for both tools.
func mosqRoundTrip(t *testing.T, srv *mqtt.Server, extra []string) {
	t.Helper()
	sub := requireTool(t, "mosquitto_sub")
	pub := requireTool(t, "mosquitto_pub")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := "sub-" + strings.ReplaceAll(t.Name(), "/", "-")
	topic := "test/" + id
	payload := "hello from " + t.Name()

	var out bytes.Buffer
	var errb testkit.Buffer // read at a timeout while mosquitto_sub still writes
	subCmd := exec.CommandContext(ctx, sub, append([]string{"-i", id, "-t", topic, "-q", "1", "-C", "1", "-W", "15"}, extra...)...)
	subCmd.Stdout, subCmd.Stderr = &out, &errb
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- subCmd.Wait() }()
	testkit.WaitForReport(t, 10*time.Second, "mosquitto_sub to subscribe", func() bool {
		select {
		case err := <-subDone:
			t.Fatalf("mosquitto_sub ended before subscribing: %v\n%s", err, errb.String())
		default:
		}
		return subscribed(srv, topic, id)()
	}, errb.String)
	pubOut, err := exec.CommandContext(ctx, pub, append([]string{"-t", topic, "-q", "1", "-m", payload}, extra...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, pubOut)
	}
	if err := <-subDone; err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, errb.String())
	}
	if got := strings.TrimSpace(out.String()); got != payload {
		t.Fatalf("mosquitto_sub got %q, want %q", got, payload)
	}
}

// testPKI is the shared test CA (internal/testkit).
type testPKI = testkit.PKI

func newTestPKI(t *testing.T) *testPKI { return testkit.NewPKI(t) }

// firstBytes is a Wrap that records what the broker reads first from each
// connection, to show Wrap sits after TLS on the MQTT byte stream.
type firstBytes struct {
	mu    sync.Mutex
	first []byte
}

func (f *firstBytes) wrap(c net.Conn) net.Conn { return &recordConn{Conn: c, f: f} }

func (f *firstBytes) get() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.first...)
}

type recordConn struct {
	net.Conn
	f    *firstBytes
	seen bool
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.seen {
		c.seen = true
		c.f.mu.Lock()
		c.f.first = append(c.f.first, p[0])
		c.f.mu.Unlock()
	}
	return n, err
}
