package listeners

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSConfig(t *testing.T) {
	pki := newTestPKI(t)
	cfg, err := TLSConfig(pki.serverCert, pki.serverKy, pki.caFile, "", true, "TLSv1.3")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("unexpected config: min %x auth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	cfg, err = TLSConfig(pki.serverCert, pki.serverKy, pki.caFile, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Fatalf("defaults: min %x auth %v, want TLS 1.2 and no client certificate", cfg.MinVersion, cfg.ClientAuth)
	}

	// capath: every PEM file of the folder, other files ignored.
	caDir := filepath.Join(t.TempDir(), "certs")
	if err := os.Mkdir(caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(pki.caFile)
	if err := os.WriteFile(filepath.Join(caDir, "README"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDir, "ab12cd34.0"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TLSConfig(pki.serverCert, pki.serverKy, "", caDir, true, "tlsv1.2"); err != nil {
		t.Fatalf("capath: %v", err)
	}

	emptyDir := t.TempDir()
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	bad := []struct {
		name                string
		cert, key, ca, path string
		require             bool
		version             string
		mention             []string
	}{
		{"no cert", "", pki.serverKy, "", "", false, "", []string{"certfile", "keyfile"}},
		{"missing cert", missing, pki.serverKy, "", "", false, "", []string{"certfile", missing}},
		{"missing key", pki.serverCert, missing, "", "", false, "", []string{"keyfile", missing}},
		{"cert not PEM", garbage, pki.serverKy, "", "", false, "", []string{garbage}},
		{"key of another cert", pki.serverCert, pki.clientKy, "", "", false, "", []string{pki.serverCert, pki.clientKy}},
		{"missing cafile", pki.serverCert, pki.serverKy, missing, "", false, "", []string{"cafile", missing}},
		{"cafile not PEM", pki.serverCert, pki.serverKy, garbage, "", false, "", []string{"cafile", garbage}},
		{"missing capath", pki.serverCert, pki.serverKy, "", missing, false, "", []string{"capath", missing}},
		{"empty capath", pki.serverCert, pki.serverKy, "", emptyDir, false, "", []string{"capath", emptyDir}},
		{"require without CA", pki.serverCert, pki.serverKy, "", "", true, "", []string{"require_certificate", "cafile"}},
		{"old version", pki.serverCert, pki.serverKy, "", "", false, "tlsv1.1", []string{"tls_version", "tlsv1.1"}},
		{"unknown version", pki.serverCert, pki.serverKy, "", "", false, "sslv3", []string{"tls_version", "sslv3"}},
	}
	for _, tc := range bad {
		_, err := TLSConfig(tc.cert, tc.key, tc.ca, tc.path, tc.require, tc.version)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, m := range tc.mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, m)
			}
		}
	}
}
