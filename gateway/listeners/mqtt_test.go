package listeners

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

func TestMQTTRoundTripMosquitto(t *testing.T) {
	g := mustGuard(t, "lan")
	l := NewMQTT(Config{ID: "t1", Address: "127.0.0.1:0", Guard: g})
	if l.Address() != "127.0.0.1:0" {
		t.Fatalf("Address before Init = %q, want the configured one", l.Address())
	}
	srv := startBroker(t, l)
	h, p := hostPort(t, l.Address())
	if h != "127.0.0.1" || p == "0" {
		t.Fatalf("Address after Init = %q, want the bound 127.0.0.1 port", l.Address())
	}
	if l.Protocol() != "tcp" || l.ID() != "t1" {
		t.Fatalf("Protocol/ID = %q/%q", l.Protocol(), l.ID())
	}
	mosqRoundTrip(t, srv, []string{"-h", h, "-p", p})
	if g.Refused() != 0 {
		t.Fatalf("loopback refused %d times under lan", g.Refused())
	}
}

func TestMQTTIPv6Loopback(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	}
	_ = probe.Close()
	l := NewMQTT(Config{ID: "v6", Address: "[::1]:0", Guard: mustGuard(t, "lan")})
	srv := startBroker(t, l)
	h, p := hostPort(t, l.Address())
	if h != "::1" {
		t.Fatalf("bound %q, want ::1", l.Address())
	}
	mosqRoundTrip(t, srv, []string{"-h", h, "-p", p})
}

func TestMQTTGuardRefusesLoopback(t *testing.T) {
	pub := requireTool(t, "mosquitto_pub")
	g := mustGuard(t, "10.0.0.0/8")
	l := NewMQTT(Config{ID: "guarded", Address: "127.0.0.1:0", Guard: g})
	srv := startBroker(t, l)
	h, p := hostPort(t, l.Address())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pub, "-h", h, "-p", p, "-i", "refused-pub", "-t", "x", "-m", "y").CombinedOutput()
	if err == nil {
		t.Fatalf("mosquitto_pub from loopback succeeded through a 10/8 guard:\n%s", out)
	}
	if ctx.Err() != nil {
		t.Fatal("mosquitto_pub hung instead of seeing its connection closed")
	}
	if g.Refused() == 0 || g.RefusedOn("guarded") == 0 {
		t.Fatalf("refusal not counted: Refused=%d RefusedOn=%d", g.Refused(), g.RefusedOn("guarded"))
	}
	if _, ok := srv.Clients.Get("refused-pub"); ok {
		t.Fatal("refused client reached the broker")
	}
	if srv.Info.ClientsConnected != 0 {
		t.Fatalf("%d clients connected", srv.Info.ClientsConnected)
	}
}

func TestMQTTTLS(t *testing.T) {
	pki := newTestPKI(t)
	cfg, err := TLSConfig(pki.ServerCert, pki.ServerKey, pki.CAFile, "", true, "tlsv1.2")
	if err != nil {
		t.Fatal(err)
	}
	var fb firstBytes
	l := NewMQTT(Config{ID: "tls", Address: "127.0.0.1:0", TLS: cfg, Guard: mustGuard(t, "lan"), Wrap: fb.wrap})
	srv := startBroker(t, l)
	if l.Protocol() != "tls" {
		t.Fatalf("Protocol = %q", l.Protocol())
	}
	h, p := hostPort(t, l.Address())
	withCert := []string{"-h", h, "-p", p, "--cafile", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}
	mosqRoundTrip(t, srv, withCert)

	// Wrap saw the plaintext MQTT stream: every connection began with CONNECT.
	first := fb.get()
	if len(first) != 2 || !bytes.Equal(first, []byte{0x10, 0x10}) {
		t.Fatalf("Wrap saw first bytes %x, want a CONNECT (0x10) from each of the 2 clients", first)
	}

	pub := requireTool(t, "mosquitto_pub")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// require_certificate: no client certificate, no entry.
	out, err := exec.CommandContext(ctx, pub, "-h", h, "-p", p, "--cafile", pki.CAFile, "-t", "x", "-m", "y").CombinedOutput()
	if err == nil {
		t.Fatalf("mosquitto_pub without a client certificate succeeded:\n%s", out)
	}
	// Plain MQTT on the TLS port fails too.
	out, err = exec.CommandContext(ctx, pub, "-h", h, "-p", p, "-t", "x", "-m", "y").CombinedOutput()
	if err == nil {
		t.Fatalf("plain mosquitto_pub on the TLS port succeeded:\n%s", out)
	}
	if len(fb.get()) != 2 {
		t.Fatal("a connection that failed its TLS handshake reached Wrap")
	}
}

func TestTLSMinimumVersion(t *testing.T) {
	pki := newTestPKI(t)
	cfg, err := TLSConfig(pki.ServerCert, pki.ServerKey, "", "", false, "tlsv1.3")
	if err != nil {
		t.Fatal(err)
	}
	l := NewMQTT(Config{ID: "tls13", Address: "127.0.0.1:0", TLS: cfg})
	startBroker(t, l)
	dial := func(maxV uint16) error {
		d := tls.Dialer{Config: &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", MaxVersion: maxV}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", l.Address())
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := dial(tls.VersionTLS12); err == nil {
		t.Fatal("a TLS 1.2 client was accepted by a tlsv1.3 listener")
	}
	if err := dial(tls.VersionTLS13); err != nil {
		t.Fatalf("TLS 1.3 client refused: %v", err)
	}
}

func TestInitPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, l := range []interface {
		Init(*slog.Logger) error
		Address() string
	}{
		NewMQTT(Config{ID: "m", Address: addr}),
		NewWebsocket(Config{ID: "w", Address: addr}),
	} {
		err := l.Init(quietLogger())
		if err == nil {
			t.Fatalf("Init on a busy port %s succeeded", addr)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("port-in-use error %q does not name %s", err, addr)
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("error %q does not wrap EADDRINUSE", err)
		}
	}
}

// A peer that connects and never sends CONNECT must not hold up the
// broker's shutdown, and must see its connection closed.
func TestCloseWithSilentPeers(t *testing.T) {
	ml := NewMQTT(Config{ID: "m", Address: "127.0.0.1:0"})
	wl := NewWebsocket(Config{ID: "w", Address: "127.0.0.1:0"})
	srv := startBroker(t, ml, wl)

	silent, err := net.Dial("tcp", ml.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ws := dialWS(t, "ws://"+wl.Address()+"/mqtt", nil, nil)
	testkit.WaitFor(t, 5*time.Second, "both silent peers handed to the broker", func() bool {
		return ml.conns.len() == 1 && wl.conns.len() == 1
	})

	closed := make(chan struct{})
	go func() {
		stopBroker(srv)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("broker Close hung on peers that never sent CONNECT")
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("silent TCP peer not disconnected: %v", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil || isTimeout(err) {
		t.Fatalf("silent websocket peer not disconnected: %v", err)
	}
	// Nothing is accepted any more.
	if c, err := net.DialTimeout("tcp", ml.Address(), time.Second); err == nil {
		_ = c.Close()
		t.Fatal("listener still accepts after Close")
	}
	// Close twice is harmless, as mochi may call it again.
	ml.Close(func(string) { t.Error("closeClients called twice") })
	wl.Close(func(string) { t.Error("closeClients called twice") })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
