package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SquashfsBlockSize and SquashfsComp are fixed so that the image does not
// depend on mksquashfs's defaults of the day. gzip because every kernel
// that mounts squashfs reads it.
const (
	SquashfsBlockSize = 131072
	SquashfsComp      = "gzip"
)

// Materialize writes entries under dir (which must exist and be empty) with
// exactly their modes, whatever the umask. mksquashfs reads the result.
func Materialize(dir string, entries []Entry) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		switch e.Kind {
		case Dir:
			if err := os.Mkdir(p, e.Mode); err != nil {
				return fmt.Errorf("stage %s: %w", e.Path, err)
			}
		case File:
			if err := os.WriteFile(p, e.Data, e.Mode); err != nil {
				return fmt.Errorf("stage %s: %w", e.Path, err)
			}
		case Symlink:
			if err := os.Symlink(e.Target, p); err != nil {
				return fmt.Errorf("stage %s: %w", e.Path, err)
			}
			continue
		default:
			return fmt.Errorf("stage %s: unknown kind %v", e.Path, e.Kind)
		}
		if err := os.Chmod(p, e.Mode); err != nil { // the umask trimmed the create mode
			return fmt.Errorf("stage %s: %w", e.Path, err)
		}
	}
	return nil
}

// MksquashfsArgs are the arguments that make mksquashfs's output depend on
// the staged tree and the epoch only: root-owned, every time and the
// superblock's time set to the epoch, no xattrs of the build machine,
// fixed compression and block size, a fresh file rather than an append.
func MksquashfsArgs(src, out string, epoch time.Time) []string {
	sec := strconv.FormatInt(epoch.Unix(), 10)
	return []string{src, out,
		"-noappend", "-reproducible", "-all-root", "-no-xattrs",
		"-all-time", sec, "-mkfs-time", sec,
		"-comp", SquashfsComp, "-b", strconv.Itoa(SquashfsBlockSize),
		"-quiet", "-no-progress",
	}
}

// WriteSquashfs stages entries in a temp folder next to out and runs
// mksquashfs on it.
func WriteSquashfs(ctx context.Context, mksquashfs string, entries []Entry, out string, epoch time.Time) error {
	if mksquashfs == "" {
		mksquashfs = "mksquashfs"
	}
	bin, err := exec.LookPath(mksquashfs)
	if err != nil {
		return fmt.Errorf("squashfs: %s not found (Debian package squashfs-tools): %w", mksquashfs, err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(out), ".squashfs-stage-")
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := Materialize(stage, entries); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, MksquashfsArgs(stage, out, epoch)...)
	// mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time: the
	// flags say the same thing, explicitly.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") })
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("squashfs: %s: %w: %s", bin, err, strings.TrimSpace(outb.String()))
	}
	return nil
}
