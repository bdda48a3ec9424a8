package certuser

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// TestSubjectLikeOpenSSL: the username use_subject_as_username gives is
// what OpenSSL's RFC 2253 printing (Mosquitto's) gives for the same
// certificate, for ordinary and awkward subjects alike.
func TestSubjectLikeOpenSSL(t *testing.T) {
	testkit.RequireTool(t, "openssl")
	oid := func(s ...int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier(s) }
	var (
		cn, c, st, l, o, ou = oid(2, 5, 4, 3), oid(2, 5, 4, 6), oid(2, 5, 4, 8), oid(2, 5, 4, 7), oid(2, 5, 4, 10), oid(2, 5, 4, 11)
		email, uid, dc, sn  = oid(1, 2, 840, 113549, 1, 9, 1), oid(0, 9, 2342, 19200300, 100, 1, 1), oid(0, 9, 2342, 19200300, 100, 1, 25), oid(2, 5, 4, 5)
	)
	one := func(t asn1.ObjectIdentifier, v any) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{{Type: t, Value: v}}
	}
	raw := func(tag int, b []byte) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: b}
	}
	ia5 := func(s string) asn1.RawValue { return raw(asn1.TagIA5String, []byte(s)) }
	cases := map[string]pkix.RDNSequence{
		"man page": {one(c, "GB"), one(st, "Nottinghamshire"), one(l, "Nottingham"), one(o, "Server"), one(ou, "Production"), one(cn, "test client")},
		"escapes":  {one(o, "a,b+c\"d\\e<f>g;h"), one(cn, "#lead and trail ")},
		"space":    {one(cn, " x")},
		"utf8":     {one(o, "Zoë"), one(cn, "maison 🏠")},
		"names":    {one(dc, ia5("home")), one(dc, ia5("arpa")), one(uid, "u1"), one(sn, "0042"), one(email, ia5("a@b.example"))},
		"multi":    {one(o, "Home"), {{Type: cn, Value: "dev"}, {Type: uid, Value: "7"}}},
		"unknown":  {one(oid(1, 2, 3, 4), "x"), one(cn, "n")},
		"bmp t61":  {one(o, raw(asn1.TagBMPString, []byte{0, 'H', 0, 0xe9})), one(cn, raw(asn1.TagT61String, []byte{'c', 0xe9}))},
		"control":  {one(cn, "a\tb\x7fc")},
	}
	dir := t.TempDir()
	for name, rdns := range cases {
		t.Run(name, func(t *testing.T) {
			cert, path := selfSigned(t, dir, rdns)
			out, err := exec.Command("openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", path).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl: %v: %s", err, out)
			}
			want := strings.TrimPrefix(strings.TrimSpace(string(out)), "subject=")
			if got := SubjectString(cert); got != want {
				t.Fatalf("got  %q\nwant %q (openssl)", got, want)
			}
		})
	}
}

// selfSigned makes a certificate with exactly these RDNs as its subject.
func selfSigned(t *testing.T, dir string, rdns pkix.RDNSequence) (*x509.Certificate, string) {
	t.Helper()
	subject, err := asn1.Marshal(rdns)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		RawSubject:   subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "*.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		t.Fatal(err)
	}
	return cert, filepath.Clean(f.Name())
}
