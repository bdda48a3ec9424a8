package slots

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/rootfs/bundle"
)

// SpoolDir is where InstallReader keeps an uploaded bundle while it is
// checked and installed, relative to the root: on the data partition,
// which has room for it (RAM may not).
const SpoolDir = paths.UpdateSpool

// TrustedKeys are the update keys baked into the booted root
// (<root>/usr/share/gateway/update-keys/*.pub).
func (b *Box) TrustedKeys() ([]ed25519.PublicKey, error) {
	keys, _, err := bundle.LoadTrustedKeys(filepath.Join(b.Root, bundle.TrustedKeysDir))
	return keys, err
}

// InstallFile checks the bundle at path against the box's trusted keys
// and architecture (bundle.Open: nothing is written when that fails), then
// installs it (Install). It returns the bundle's manifest, for the answer.
func (b *Box) InstallFile(ctx context.Context, path string) (bundle.Manifest, error) {
	keys, err := b.TrustedKeys()
	if err != nil {
		return bundle.Manifest{}, &InstallError{Refused: true, Msg: "update keys", Err: err}
	}
	bd, f, err := bundle.OpenFile(path, keys, b.Arch)
	if err != nil {
		return bundle.Manifest{}, err
	}
	defer f.Close()
	return bd.Manifest, b.Install(ctx, bd)
}

// InstallReader spools a bundle from r (an HTTP request's body) to a file
// under SpoolDir, at most maxSize bytes, then installs it as InstallFile
// does; the spooled file is removed either way.
func (b *Box) InstallReader(ctx context.Context, r io.Reader, maxSize int64) (bundle.Manifest, error) {
	dir := filepath.Join(b.Root, SpoolDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return bundle.Manifest{}, &InstallError{Refused: true, Msg: "spooling the bundle", Err: err}
	}
	f, err := os.CreateTemp(dir, ".update-*.spool")
	if err != nil {
		return bundle.Manifest{}, &InstallError{Refused: true, Msg: "spooling the bundle", Err: err}
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, io.LimitReader(r, maxSize+1))
	if err := errors.Join(err, f.Close()); err != nil {
		return bundle.Manifest{}, &InstallError{Refused: true, Msg: "receiving the bundle", Err: err}
	}
	if n > maxSize {
		return bundle.Manifest{}, &InstallError{Refused: true, Msg: fmt.Sprintf("the bundle is larger than %d bytes", maxSize)}
	}
	return b.InstallFile(ctx, f.Name())
}
