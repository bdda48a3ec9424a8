package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// crlPKI writes a CA, a server certificate, client certificates "good"
// (serial 10), "revoked" (11) and "expired" (12, an hour past its end),
// and a CRL that revokes serial 11, as PEM files.
func crlPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(name, "EC PRIVATE KEY", der)
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crl test CA"},
		NotBefore: now.Add(-4 * time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.crt", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) {
		k := key()
		from, until := now.Add(-time.Hour), now.Add(time.Hour)
		if name == "expired" {
			from, until = now.Add(-3*time.Hour), now.Add(-2*time.Hour)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: from, NotAfter: until, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".crt", "CERTIFICATE", der)
		writeKey(name+".key", k)
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth)
	leaf("good", 10, x509.ExtKeyUsageClientAuth)
	leaf("revoked", 11, x509.ExtKeyUsageClientAuth)
	leaf("expired", 12, x509.ExtKeyUsageClientAuth)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(time.Hour), RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(11), RevocationTime: now}}}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.crl", "X509 CRL", crl)
	return dir
}

// TestCRLFile: with crlfile, a client certificate the CA revoked is
// refused at the TLS handshake; others still connect.
func TestCRLFile(t *testing.T) {
	pki := crlPKI(t)
	tls := "listener 0 127.0.0.1\nallow_anonymous true\ncertfile " + pki + "/server.crt\nkeyfile " + pki + "/server.key\n" +
		"cafile " + pki + "/ca.crt\nrequire_certificate true\n"
	port := startBroker(t, tls).ports["mqtt"][0]
	run := func(who string) (string, int) {
		return testkit.Run(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "--cafile", pki+"/ca.crt",
			"--cert", pki+"/"+who+".crt", "--key", pki+"/"+who+".key", "-t", "t", "-m", who)
	}
	testkit.RequireTool(t, "mosquitto_pub")
	if out, code := run("revoked"); code != 0 {
		t.Fatalf("without crlfile the certificate must be good: exit %d: %s", code, out)
	}
	port = startBroker(t, tls+"crlfile "+pki+"/ca.crl\n").ports["mqtt"][0]
	if out, code := run("good"); code != 0 {
		t.Fatalf("a valid certificate: exit %d: %s", code, out)
	}
	if out, code := run("revoked"); code == 0 {
		t.Fatalf("a revoked certificate connected: %s", out)
	}
}

// TestTLSCiphers: ciphers limits the TLS 1.2 suites a client may use
// (TLS 1.3's are not chosen, as in Mosquitto).
func TestTLSCiphers(t *testing.T) {
	pki := testkit.NewPKI(t)
	b := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\ncertfile "+pki.ServerCert+"\nkeyfile "+pki.ServerKey+
		"\nciphers ECDHE-ECDSA-AES128-GCM-SHA256\n")
	addr := "127.0.0.1:" + b.ports["mqtt"][0]
	dial := func(suite uint16) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
			RootCAs: pki.Pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Fatalf("the listed suite: %v", err)
	}
	if err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384); err == nil {
		t.Fatal("a suite not listed was let in")
	}
	pub(t, b.ports["mqtt"][0], "--cafile", pki.CAFile, "-t", "t", "-m", "TLS 1.3 is not limited")
}

// TestDisableClientCertDateChecks: an expired client certificate is
// refused, unless the listener has disable_client_cert_date_checks; a
// certificate of another CA is refused either way, and crlfile still
// applies.
func TestDisableClientCertDateChecks(t *testing.T) {
	pki := crlPKI(t)
	other := crlPKI(t)
	tls := "listener 0 127.0.0.1\nallow_anonymous true\ncertfile " + pki + "/server.crt\nkeyfile " + pki + "/server.key\n" +
		"cafile " + pki + "/ca.crt\nrequire_certificate true\n"
	testkit.RequireTool(t, "mosquitto_pub")
	run := func(port, dir, who string) int {
		_, code := testkit.Run(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "--cafile", pki+"/ca.crt",
			"--cert", dir+"/"+who+".crt", "--key", dir+"/"+who+".key", "-t", "t", "-m", who)
		return code
	}
	strict := startBroker(t, tls).ports["mqtt"][0]
	if run(strict, pki, "expired") == 0 {
		t.Fatal("an expired certificate was let in without disable_client_cert_date_checks")
	}
	lax := startBroker(t, tls+"disable_client_cert_date_checks true\ncrlfile "+pki+"/ca.crl\n").ports["mqtt"][0]
	for who, want := range map[string]bool{"expired": true, "good": true, "revoked": false} {
		if got := run(lax, pki, who) == 0; got != want {
			t.Errorf("%s: let in %v, want %v", who, got, want)
		}
	}
	if run(lax, other, "good") == 0 {
		t.Error("a certificate of another CA was let in")
	}
}
