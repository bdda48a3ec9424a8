package rootfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/homebox/gateway/internal/atomicfile"
	"github.com/homebox/gateway/internal/paths"
)

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
		written, err := atomicfile.WriteNew(dst, data, 0o644)
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
	for _, d := range paths.Folders {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return wrote, fmt.Errorf("seed: %w", err)
		}
	}
	return wrote, nil
}
