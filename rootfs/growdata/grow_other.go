//go:build !linux

package growdata

import (
	"errors"
	"log/slog"
)

// Grow needs Linux's block device and ext4 calls.
func Grow(dir, name string, log *slog.Logger) error {
	return errors.New("growing the data partition needs Linux")
}
