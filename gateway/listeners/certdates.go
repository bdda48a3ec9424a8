package listeners

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// IgnoreClientCertDates makes cfg accept client certificates outside
// their validity dates (disable_client_cert_date_checks, Mosquitto 2.1):
// the chain is still verified against the listener's CAs, at a moment
// inside the client certificate's own validity, since Go's verifier has
// no switch to skip the dates. cfg must have ClientCAs.
func IgnoreClientCertDates(cfg *tls.Config) {
	roots := cfg.ClientCAs
	required := cfg.ClientAuth == tls.RequireAndVerifyClientCert
	cfg.ClientAuth = tls.RequestClientCert
	if required {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	cfg.VerifyPeerCertificate = chainVerify(cfg.VerifyPeerCertificate, func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return nil // no certificate offered: ClientAuth decided already
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		leaf := certs[0]
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return errors.Join(errors.New("client certificate not signed by the listener's CAs"), err)
		}
		return nil
	})
}

// chainVerify runs first, then then, as one VerifyPeerCertificate.
func chainVerify(first, then func([][]byte, [][]*x509.Certificate) error) func([][]byte, [][]*x509.Certificate) error {
	if first == nil {
		return then
	}
	return func(raw [][]byte, chains [][]*x509.Certificate) error {
		if err := first(raw, chains); err != nil {
			return err
		}
		return then(raw, chains)
	}
}
