package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// link is one connection to the remote broker, whatever the library.
type link interface {
	// publish sends m. For QoS 1 and 2, done is called once: with nil when
	// the remote fully acknowledged m, with errResend when the library
	// dropped m from its session (send it again), with another error when
	// the remote refused m for good. publish itself fails when the link is
	// no longer usable; m is then not in flight.
	publish(m message, done func(error)) error
	// subscribe asks the remote for the in routes.
	subscribe(ctx context.Context, routes []route) error
	// unsubscribe asks the remote to drop filters (bridge_attempt_unsubscribe).
	unsubscribe(ctx context.Context, filters []string) error
	// lost is closed when the connection ends.
	lost() <-chan struct{}
	// cause says why the connection ended.
	cause() error
	// close disconnects cleanly (no will), first publishing final with
	// QoS 1 when final.topic is set.
	close(final message)
}

var errResend = errors.New("dropped from the session; send again")

// dialConfig is what a link needs to connect.
type dialConfig struct {
	addr         string
	tls          *tls.Config
	clientID     string
	username     string
	password     string
	cleanSession bool
	keepalive    time.Duration
	version      byte // 3, 4 or 5
	private      bool // try_private: version | 0x80
	will         *message
	onMessage    func(message)
	sock         sockOpts

	// MQTT 5 CONNECT properties (bridge_receive_maximum,
	// bridge_session_expiry_interval, bridge_max_topic_alias).
	receiveMax    uint16 // 0 = not sent
	sessionExpiry *uint32
	topicAliasMax uint16
}

// connectTimeout bounds one connection attempt to one address.
const connectTimeout = 10 * time.Second

// tlsConfig builds the bridge's TLS settings; nil when TLS is not asked for
// (Mosquitto turns TLS on with bridge_cafile or bridge_capath).
func tlsConfig(b mosquittoconf.Bridge, where string) (*tls.Config, error) {
	if b.CAFile == "" && b.CAPath == "" && !b.TLSUseOSCerts {
		if b.CertFile != "" || b.KeyFile != "" {
			return nil, fmt.Errorf("%s: bridge_certfile/bridge_keyfile need bridge_cafile, bridge_capath or bridge_tls_use_os_certs", where)
		}
		return nil, nil
	}
	pool := x509.NewCertPool()
	if b.TLSUseOSCerts {
		sys, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("%s: bridge_tls_use_os_certs: %w", where, err)
		}
		pool = sys
	}
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: bridge_cafile: %w", where, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: bridge_cafile %s: no PEM certificate in it", where, b.CAFile)
		}
	}
	if b.CAPath != "" {
		entries, err := os.ReadDir(b.CAPath)
		if err != nil {
			return nil, fmt.Errorf("%s: bridge_capath: %w", where, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			if pem, err := os.ReadFile(filepath.Join(b.CAPath, e.Name())); err == nil {
				pool.AppendCertsFromPEM(pem)
			}
		}
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if b.ALPN != "" {
		cfg.NextProtos = []string{b.ALPN}
	}
	switch b.TLSVersion {
	case "":
	case "tlsv1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	case "tlsv1.2":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case "tlsv1.1":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	default:
		return nil, fmt.Errorf("%s: bridge_tls_version %q is not tlsv1.3, tlsv1.2 or tlsv1.1", where, b.TLSVersion)
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		return nil, fmt.Errorf("%s: bridge_certfile and bridge_keyfile go together", where)
	}
	if b.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: bridge_certfile/bridge_keyfile: %w", where, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if b.Insecure {
		// bridge_insecure: the chain is still checked, the host name is not.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs = append(certs, c)
			}
			if len(certs) == 0 {
				return errors.New("no server certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

// dialNet opens the transport to addr, with TLS when cfg is set.
func dialNet(ctx context.Context, addr string, cfg *tls.Config, so sockOpts) (net.Conn, error) {
	d, err := so.dialer()
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	host, _, _ := net.SplitHostPort(addr)
	c := cfg.Clone()
	if c.ServerName == "" {
		c.ServerName = host
	}
	td := &tls.Dialer{NetDialer: d, Config: c}
	return td.DialContext(ctx, "tcp", addr)
}

func hostPort(a mosquittoconf.BridgeAddress) string {
	port := a.Port
	if port == 0 {
		port = 1883
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(port))
}
