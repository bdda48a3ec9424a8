package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Dirs are the folders a box needs besides the overlay's: state, logs and
// sockets. Seed creates them when missing.
var Dirs = []string{"data", "var/log/gateway", "run/gateway"}

// Seed writes the overlay under root without overwriting anything that is
// already there: an owner's edited config always wins over the shipped
// default. It returns the paths it wrote, so the caller can say so.
func Seed(root string) ([]string, error) {
	var wrote []string
	err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(root, filepath.FromSlash(p))
		if d.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("seed %s: %w", dst, err)
			}
			return nil
		}
		data, err := FS.ReadFile(p)
		if err != nil {
			return err
		}
		written, err := writeNew(dst, data)
		if err != nil {
			return fmt.Errorf("seed %s: %w", dst, err)
		}
		if written {
			wrote = append(wrote, dst)
		}
		return nil
	})
	if err != nil {
		return wrote, err
	}
	for _, d := range Dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return wrote, fmt.Errorf("seed: %w", err)
		}
	}
	return wrote, nil
}

// writeNew writes data to path only if nothing is there. O_EXCL makes the
// check and the create one step, so two seeds never clobber each other; the
// temp-and-link dance keeps a power cut from leaving a half-written default
// that a later seed would then take for the owner's.
func writeNew(path string, data []byte) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seed-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// link fails when path exists, unlike rename: never overwrite.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
