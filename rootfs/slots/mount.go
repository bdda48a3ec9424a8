package slots

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// mountESP mounts the partition labelled ESP at b.ESP (vfat) unless
// something is mounted there already. It stays mounted: the next status or
// install needs it again, and every write to it is fsynced.
func mountESP(b *Box) error {
	dir, err := filepath.Abs(b.ESP)
	if err != nil {
		return err
	}
	if mounted, err := isMountPoint(dir); err != nil {
		return fmt.Errorf("the ESP: %w", err)
	} else if mounted {
		return nil
	}
	dev, err := b.Device("ESP")
	if err != nil {
		return fmt.Errorf("the ESP: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("the ESP: %w", err)
	}
	// nosuid, nodev, noexec: nothing on it runs under Linux.
	flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
	if err := syscall.Mount(dev, dir, "vfat", flags, ""); err != nil {
		return fmt.Errorf("the ESP: mount %s (vfat) at %s: %w", dev, dir, err)
	}
	return nil
}

// isMountPoint says whether dir is a mount point, from
// /proc/self/mountinfo.
func isMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Field 5 is the mount point, with spaces as \040.
		if len(fields) > 4 && strings.ReplaceAll(fields[4], `\040`, " ") == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}
