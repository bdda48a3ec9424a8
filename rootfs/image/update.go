package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/homebox/gateway/rootfs/bundle"
)

// The signed update bundle of a disk image's root slot
// (gateway-VERSION-ARCH.update), made from the same root squashfs, kernel
// and initramfs the image's slot A holds, with the signing key whose
// public half the root carries (rootfs/bundle.TrustedKeysDir), so that a
// box flashed with one build takes the bundles of the next.

// SigningKey is the key update bundles are signed with: the release key at
// path when one is given, else the development pair in DevKeyDir (made on
// the first build and reused, so images stay reproducible and a box of one
// development build takes the bundles of the next).
func SigningKey(path string) (ed25519.PrivateKey, error) {
	if path != "" {
		return bundle.LoadPrivateKey(path)
	}
	dir, err := DevKeyDir()
	if err != nil {
		return nil, err
	}
	key, _, err := bundle.EnsureDevKey(dir, rand.Reader)
	return key, err
}

// DevKeyDir is where the development signing key pair lives:
// $GATEWAY_KEYS, else the user's cache folder.
func DevKeyDir() (string, error) {
	if d := os.Getenv("GATEWAY_KEYS"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("development signing key: %w (set GATEWAY_KEYS)", err)
	}
	return filepath.Join(c, "gateway-image", "keys"), nil
}

// trustedKeyFile is the public key the root carries, under TrustedKeysDir.
func trustedKeyFile(key ed25519.PrivateKey) (string, []byte, error) {
	pub, err := bundle.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return "", nil, err
	}
	return bundle.TrustedKeysDir + "/" + bundle.KeyID(key.Public().(ed25519.PublicKey)) + ".pub", pub, nil
}

// writeUpdate writes the bundle of one root slot to out.
func writeUpdate(out string, in diskInput, rootImg string, vmlinuz, initrd []byte) error {
	root, f, err := bundle.FilePart(bundle.RootFS, rootImg)
	if err != nil {
		return err
	}
	defer f.Close()
	parts := []bundle.Part{
		root,
		{Name: bundle.Kernel, Size: int64(len(vmlinuz)), R: bytes.NewReader(vmlinuz)},
		{Name: bundle.Initrd, Size: int64(len(initrd)), R: bytes.NewReader(initrd)},
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	m := bundle.Manifest{Version: in.version, Serial: in.epoch.Unix(), Arch: in.arch.Name}
	if err := bundle.Write(w, m, parts, in.key); err != nil {
		w.Close()
		return fmt.Errorf("update bundle: %w", err)
	}
	return w.Close()
}
