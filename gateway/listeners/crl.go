package listeners

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// AddCRL makes cfg refuse client certificates revoked by the list in path
// (crlfile; PEM or DER), as Mosquitto does with OpenSSL's CRL check. The
// list is read once, at start, as Mosquitto reads it.
func AddCRL(cfg *tls.Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("crlfile: %w", err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return fmt.Errorf("crlfile %s: %w", path, err)
	}
	revoked := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		revoked[e.SerialNumber.String()] = true
	}
	// The leaf is read from the raw certificates: with
	// disable_client_cert_date_checks Go hands over no verified chains.
	cfg.VerifyPeerCertificate = chainVerify(cfg.VerifyPeerCertificate, func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return nil
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		if bytes.Equal(leaf.RawIssuer, crl.RawIssuer) && revoked[leaf.SerialNumber.String()] {
			return errors.New("client certificate revoked (crlfile)")
		}
		return nil
	})
	return nil
}
