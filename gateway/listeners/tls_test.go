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
	cfg, err := TLSConfig(pki.ServerCert, pki.ServerKey, pki.CAFile, "", true, "TLSv1.3")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("unexpected config: min %x auth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	cfg, err = TLSConfig(pki.ServerCert, pki.ServerKey, pki.CAFile, "", false, "")
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
	caPEM, _ := os.ReadFile(pki.CAFile)
	if err := os.WriteFile(filepath.Join(caDir, "README"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDir, "ab12cd34.0"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TLSConfig(pki.ServerCert, pki.ServerKey, "", caDir, true, "tlsv1.2"); err != nil {
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
		{"no cert", "", pki.ServerKey, "", "", false, "", []string{"certfile", "keyfile"}},
		{"missing cert", missing, pki.ServerKey, "", "", false, "", []string{"certfile", missing}},
		{"missing key", pki.ServerCert, missing, "", "", false, "", []string{"keyfile", missing}},
		{"cert not PEM", garbage, pki.ServerKey, "", "", false, "", []string{garbage}},
		{"key of another cert", pki.ServerCert, pki.ClientKey, "", "", false, "", []string{pki.ServerCert, pki.ClientKey}},
		{"missing cafile", pki.ServerCert, pki.ServerKey, missing, "", false, "", []string{"cafile", missing}},
		{"cafile not PEM", pki.ServerCert, pki.ServerKey, garbage, "", false, "", []string{"cafile", garbage}},
		{"missing capath", pki.ServerCert, pki.ServerKey, "", missing, false, "", []string{"capath", missing}},
		{"empty capath", pki.ServerCert, pki.ServerKey, "", emptyDir, false, "", []string{"capath", emptyDir}},
		{"require without CA", pki.ServerCert, pki.ServerKey, "", "", true, "", []string{"require_certificate", "cafile"}},
		{"old version", pki.ServerCert, pki.ServerKey, "", "", false, "tlsv1.1", []string{"tls_version", "tlsv1.1"}},
		{"unknown version", pki.ServerCert, pki.ServerKey, "", "", false, "sslv3", []string{"tls_version", "sslv3"}},
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
