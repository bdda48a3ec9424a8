package bundle

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/homebox/gateway/internal/paths"
)

// Keys are PEM files, the ones openssl writes, so a release key can be
// made and kept with the usual tools:
//
//	openssl genpkey -algorithm ed25519 -out release.key      # "PRIVATE KEY", PKCS #8
//	openssl pkey -in release.key -pubout -out release.pub    # "PUBLIC KEY", PKIX
//
// The public keys a gateway trusts sit in its read-only root under
// TrustedKeysDir, one <name>.pub each, baked in when the image is built.

// TrustedKeysDir holds the public keys an image trusts, relative to the
// box's root.
const TrustedKeysDir = paths.UpdateKeys

// LoadPrivateKey reads an ed25519 private key from a PEM file
// ("PRIVATE KEY", PKCS #8).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	der, err := pemBlock(path, data, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T, want ed25519 (openssl genpkey -algorithm ed25519)", path, k)
	}
	return priv, nil
}

// LoadPublicKey reads an ed25519 public key from a PEM file ("PUBLIC KEY",
// PKIX).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("update key: %w", err)
	}
	return ParsePublicKey(path, data)
}

// ParsePublicKey parses a PEM public key; where names it in errors.
func ParsePublicKey(where string, data []byte) (ed25519.PublicKey, error) {
	der, err := pemBlock(where, data, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("update key %s: %w", where, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("update key %s: a %T, want ed25519", where, k)
	}
	return pub, nil
}

func pemBlock(where string, data []byte, typ string) ([]byte, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("key %s: not PEM (want a %q block, as openssl writes)", where, typ)
	}
	if b.Type != typ {
		return nil, fmt.Errorf("key %s: a %q PEM block, want %q", where, b.Type, typ)
	}
	return b.Bytes, nil
}

// MarshalPublicKey is pub as a PEM "PUBLIC KEY" file.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// LoadTrustedKeys reads every *.pub in dir, in name order, with their
// paths. No key at all is an error: such an image could never update.
func LoadTrustedKeys(dir string) ([]ed25519.PublicKey, []string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	var keys []ed25519.PublicKey
	for _, n := range names {
		k, err := LoadPublicKey(n)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("no update keys (*.pub) in %s: this image cannot check an update's signature", dir)
	}
	return keys, names, nil
}

// EnsureDevKey makes the development signing key pair dir/dev.key (0600)
// and dir/dev.pub, unless they are there already, and returns the private
// key and whether it made it. Builds keep reusing one key, so two builds
// with the same SOURCE_DATE_EPOCH bake the same public key into the same
// image bytes; a release build passes its own key instead.
func EnsureDevKey(dir string, random io.Reader) (ed25519.PrivateKey, bool, error) {
	keyPath, pubPath := filepath.Join(dir, "dev.key"), filepath.Join(dir, "dev.pub")
	if priv, err := LoadPrivateKey(keyPath); err == nil {
		pub, err := LoadPublicKey(pubPath)
		if err != nil {
			return nil, false, err
		}
		if !pub.Equal(priv.Public()) {
			return nil, false, fmt.Errorf("%s is not the public key of %s: remove both to make a new pair", pubPath, keyPath)
		}
		return priv, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, false, fmt.Errorf("development key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, err
	}
	pubPEM, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("development key: %w", err)
	}
	// The public half first: a key without its .pub is never left behind
	// looking complete.
	if err := os.WriteFile(pubPath, pubPEM, 0o644); err != nil {
		return nil, false, fmt.Errorf("development key: %w", err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(keyPath, privPEM, 0o600); err != nil {
		return nil, false, fmt.Errorf("development key: %w", err)
	}
	return priv, true, nil
}

// KeyID is a short, printable name for a public key (its first 8 bytes in
// hex), for logs and error messages.
func KeyID(pub ed25519.PublicKey) string {
	return strings.ToLower(fmt.Sprintf("%x", []byte(pub)[:min(8, len(pub))]))
}
