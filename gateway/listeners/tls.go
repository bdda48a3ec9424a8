package listeners

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TLSConfig builds a listener's TLS configuration from Mosquitto's
// per-listener options: certfile, keyfile, cafile, capath,
// require_certificate and tls_version ("tlsv1.2" or "tlsv1.3", the minimum
// version; empty means tlsv1.2). Errors name the file or value at fault.
//
// Without require_certificate no client certificate is asked for, as in
// Mosquitto; with it, clients must present one signed by cafile or capath.
func TLSConfig(certFile, keyFile, caFile, caPath string, requireCert bool, version string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both certfile and keyfile")
	}
	minVersion, err := parseTLSVersion(version)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certfile: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certfile %s with keyfile %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   minVersion,
	}

	if caFile != "" || caPath != "" {
		pool := x509.NewCertPool()
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("cafile: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cafile %s: no PEM certificate in it", caFile)
			}
		}
		if caPath != "" {
			if err := addCADir(pool, caPath); err != nil {
				return nil, err
			}
		}
		cfg.ClientCAs = pool
	}
	if requireCert {
		if cfg.ClientCAs == nil {
			return nil, errors.New("require_certificate true needs cafile or capath to check client certificates against")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func parseTLSVersion(v string) (uint16, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "tlsv1.2":
		return tls.VersionTLS12, nil
	case "tlsv1.3":
		return tls.VersionTLS13, nil
	case "tlsv1.1", "tlsv1", "tlsv1.0":
		return 0, fmt.Errorf("tls_version %q is no longer safe and not supported: use tlsv1.2 or tlsv1.3", v)
	}
	return 0, fmt.Errorf("tls_version %q: want tlsv1.2 or tlsv1.3", v)
}

// addCADir adds the PEM certificates of every regular file in dir. Mosquitto
// wants c_rehash names there; reading every file is a superset that needs no
// rehash step on the box.
func addCADir(pool *x509.CertPool, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("capath: %w", err)
	}
	found := false
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		info, err := os.Stat(path) // follows the symlinks c_rehash makes
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("capath %s: %w", dir, err)
		}
		if pool.AppendCertsFromPEM(pem) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("capath %s: no PEM certificate in any file", dir)
	}
	return nil
}
