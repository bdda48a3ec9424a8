package bridge

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/testkit"
)

// The TLS options of a bridge against a TLS remote: what connects, what
// is refused, and what the remote saw.
func TestBridgeTLSOptions(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := testPKI(t, dir)
	serverCert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(caFile)
	capath := filepath.Join(dir, "capath")
	if err := os.MkdirAll(capath, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(capath, "ca.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The server certificate doubles as the bridge's client certificate
	// (its usage is server only, so the remote asks for any certificate).
	cases := []struct {
		name    string
		server  func(*tls.Config)
		host    string // how the bridge names the remote
		set     func(*mosquittoconf.Bridge)
		up      bool
		version uint16 // TLS version the remote saw
		cn      string // client certificate the remote saw
	}{
		{"bridge_cafile", nil, "127.0.0.1", func(b *mosquittoconf.Bridge) { b.CAFile = caFile }, true, tls.VersionTLS13, ""},
		{"bridge_capath", nil, "127.0.0.1", func(b *mosquittoconf.Bridge) { b.CAPath = capath }, true, tls.VersionTLS13, ""},
		{"bridge_tls_version tlsv1.2", nil, "127.0.0.1", func(b *mosquittoconf.Bridge) { b.CAFile, b.TLSVersion = caFile, "tlsv1.2" }, true, tls.VersionTLS12, ""},
		{"bridge_tls_version tlsv1.3 to a 1.2 remote", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, "127.0.0.1",
			func(b *mosquittoconf.Bridge) { b.CAFile, b.TLSVersion = caFile, "tlsv1.3" }, false, 0, ""},
		{"host name not in the certificate", nil, "localhost", func(b *mosquittoconf.Bridge) { b.CAFile = caFile }, false, 0, ""},
		{"bridge_tls_use_os_certs: TLS on, the test CA is not the system's", nil, "127.0.0.1", func(b *mosquittoconf.Bridge) { b.TLSUseOSCerts = true }, false, 0, ""},
		{"bridge_tls_use_os_certs with bridge_cafile", nil, "127.0.0.1", func(b *mosquittoconf.Bridge) { b.TLSUseOSCerts, b.CAFile = true, caFile }, true, tls.VersionTLS13, ""},
		{"bridge_insecure", nil, "localhost", func(b *mosquittoconf.Bridge) { b.CAFile, b.Insecure = caFile, true }, true, tls.VersionTLS13, ""},
		{"bridge_certfile/bridge_keyfile", func(c *tls.Config) { c.ClientAuth = tls.RequireAnyClientCert }, "127.0.0.1",
			func(b *mosquittoconf.Bridge) { b.CAFile, b.CertFile, b.KeyFile = caFile, certFile, keyFile }, true, tls.VersionTLS13, "127.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := &tls.Config{Certificates: []tls.Certificate{serverCert}}
			if c.server != nil {
				c.server(sc)
			}
			remote := startCapture(t, sc)
			_, port, _ := net.SplitHostPort(remote.addr())
			box, _ := newMochi(t, false)
			b := v5(conn("tls", net.JoinHostPort(c.host, port), topic("t/#", "out", 1, "", "")))
			c.set(&b)
			m := startManager(t, box, t.TempDir(), b)
			if !c.up {
				testkit.WaitFor(t, 10*time.Second, "the connection refused with an error", func() bool {
					s := m.Stats()[0]
					return s.State == "down" && s.LastError != ""
				})
				if n := remote.connectCount(); n != 0 {
					t.Fatalf("remote got %d CONNECTs", n)
				}
				// TLS was on, and the system's CAs do not know the test's.
				if e := m.Stats()[0].LastError; strings.HasPrefix(c.name, "bridge_tls_use_os_certs") && !strings.Contains(e, "unknown authority") {
					t.Fatalf("error %q, want a certificate signed by an unknown authority", e)
				}
				return
			}
			testkit.WaitFor(t, 10*time.Second, "bridge CONNECT over TLS", func() bool { return remote.connectCount() > 0 })
			remote.mu.Lock()
			v, cn := remote.tlsVers[len(remote.tlsVers)-1], remote.clientCN[len(remote.clientCN)-1]
			remote.mu.Unlock()
			if v != c.version || cn != c.cn {
				t.Fatalf("remote saw TLS %#x with client certificate %q, want %#x and %q", v, cn, c.version, c.cn)
			}
		})
	}
}

// start_type, threshold, idle_timeout and restart_timeout, against a
// capturing remote.
func TestBridgeStartTypes(t *testing.T) {
	t.Run("lazy threshold idle_timeout", func(t *testing.T) {
		box, _ := newMochi(t, false)
		remote := startCapture(t, nil)
		b := v5(conn("lazy", remote.addr(), topic("t/#", "out", 1, "", "")))
		b.StartType, b.Threshold, b.IdleTimeout = "lazy", 2, 1
		m := startManager(t, box, t.TempDir(), b)
		if err := box.Publish("t/1", []byte("1"), false, 1); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 5*time.Second, "one message queued, bridge idle", func() bool {
			s := m.Stats()[0]
			return s.Queued == 1 && s.State == "idle"
		})
		if n := remote.connectCount(); n != 0 {
			t.Fatalf("connected below the threshold (%d CONNECTs)", n)
		}
		if err := box.Publish("t/2", []byte("2"), false, 1); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 10*time.Second, "both messages at the remote", func() bool {
			return len(remote.published("t/1")) == 1 && len(remote.published("t/2")) == 1
		})
		testkit.WaitFor(t, 10*time.Second, "idle again after idle_timeout 1", func() bool { return m.Stats()[0].State == "idle" })
	})
	for _, st := range []string{"once", "automatic"} {
		t.Run(st+" restart_timeout 1", func(t *testing.T) {
			// A remote that accepts TCP and closes at once.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			accepts := make(chan struct{}, 100)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_ = c.Close()
					accepts <- struct{}{}
				}
			}()
			box, _ := newMochi(t, false)
			b := conn(st, ln.Addr().String(), topic("t/#", "out", 1, "", ""))
			b.StartType, b.RestartTimeoutBase = st, 1
			m := startManager(t, box, t.TempDir(), b)
			<-accepts
			testkit.WaitFor(t, 10*time.Second, "the attempt failed", func() bool { return m.Stats()[0].LastError != "" })
			// Three restart_timeouts: automatic has tried again, once has not.
			select {
			case <-accepts:
				if st == "once" {
					t.Fatal("start_type once tried a second time")
				}
			case <-time.After(3 * time.Second):
				if st == "automatic" {
					t.Fatal("start_type automatic did not try again within 3 x restart_timeout 1")
				}
			}
		})
	}
}

// bridge_outgoing_retain: local retained messages keep or lose their
// retain flag on the way out.
func TestBridgeOutgoingRetain(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(strconv.FormatBool(keep), func(t *testing.T) {
			box, _ := newMochi(t, false)
			remote := startCapture(t, nil)
			b := v5(conn("ret", remote.addr(), topic("t/#", "out", 1, "", "")))
			b.OutgoingRetain = keep
			m := startManager(t, box, t.TempDir(), b)
			testkit.WaitFor(t, 10*time.Second, "bridge up", func() bool { return m.Stats()[0].State == "up" })
			if err := box.Publish("t/r", []byte("v"), true, 1); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 10*time.Second, "message at the remote", func() bool { return len(remote.published("t/r")) > 0 })
			if got := remote.published("t/r")[0].Retain; got != keep {
				t.Fatalf("retain flag %v, want %v", got, keep)
			}
		})
	}
}
