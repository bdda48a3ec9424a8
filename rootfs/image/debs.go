package image

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// DepsScript fetches the Debian packages a disk image is made of into a
// cache and installs the host tools (scripts/image-deps.sh, relative to the
// module). It prints the cache folder, which holds one folder per arch.
const DepsScript = "scripts/image-deps.sh"

// fetchDebs runs DepsScript for arch and returns the folder of its .deb files.
func fetchDebs(ctx context.Context, moduleDir, arch string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(moduleDir, DepsScript), arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", DepsScript, arch, err, strings.TrimSpace(stderr.String()))
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), arch)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("%s %s: %w", DepsScript, arch, err)
	}
	return dir, nil
}

// sysroot is the target's Debian packages extracted into one folder
// (dpkg-deb -x: their maintainer scripts are never run, they could not
// run here anyway), and the build machine's busybox for the applet list.
type sysroot struct {
	dir     string // target packages
	hostBox string // a busybox that runs here
}

// extractDebs extracts every .deb of debDir into dst.
func extractDebs(ctx context.Context, debDir, dst string) (*sysroot, error) {
	debs, err := filepath.Glob(filepath.Join(debDir, "*.deb"))
	if err != nil {
		return nil, err
	}
	if len(debs) == 0 {
		return nil, fmt.Errorf("no .deb files in %s", debDir)
	}
	s := &sysroot{dir: filepath.Join(dst, "target")}
	hostDir := filepath.Join(dst, "host")
	for _, d := range []string{s.dir, hostDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	for _, deb := range debs {
		to := s.dir
		if strings.HasPrefix(filepath.Base(deb), "host-") {
			to = hostDir
		}
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, to).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, out)
		}
	}
	s.hostBox = filepath.Join(hostDir, "bin/busybox")
	if _, err := os.Stat(s.hostBox); err != nil {
		// The build machine is the target's arch: its busybox runs here.
		s.hostBox = filepath.Join(s.dir, "bin/busybox")
	}
	return s, nil
}

// readFile reads a file of the sysroot, following its symlinks inside it.
func (s *sysroot) readFile(p string) ([]byte, error) {
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	p = strings.TrimPrefix(p, "/")
	for range 16 {
		target, err := r.Readlink(p)
		if err != nil {
			break // not a link
		}
		if path.IsAbs(target) {
			p = strings.TrimPrefix(target, "/")
		} else {
			p = path.Join(path.Dir(p), target)
		}
	}
	return r.ReadFile(p)
}

// kernel finds the one kernel of the sysroot: its version and vmlinuz.
func (s *sysroot) kernel() (version string, vmlinuz []byte, err error) {
	ks, err := filepath.Glob(filepath.Join(s.dir, "boot", "vmlinuz-*"))
	if err != nil || len(ks) != 1 {
		return "", nil, fmt.Errorf("want one kernel in the packages, found %v %v", ks, err)
	}
	version = strings.TrimPrefix(filepath.Base(ks[0]), "vmlinuz-")
	vmlinuz, err = os.ReadFile(ks[0])
	return version, vmlinuz, err
}

// applets are busybox's applets with their install paths ("usr/bin/awk"),
// asked of a busybox that runs on the build machine: the target's cannot
// run here (no binfmt_misc). The same Debian version has the same applets
// on every arch; the caller checks the versions match.
func (s *sysroot) applets(ctx context.Context) ([]string, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("busybox applet list: needs a Linux build machine")
	}
	out, err := exec.CommandContext(ctx, s.hostBox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", s.hostBox, err)
	}
	var list []string
	for _, l := range strings.Fields(string(out)) {
		if strings.Contains(l, "/") && l != "bin/busybox" {
			list = append(list, l)
		}
	}
	if len(list) < 50 {
		return nil, fmt.Errorf("%s --list-full: only %d applets", s.hostBox, len(list))
	}
	return list, nil
}

// libDirs are where Debian's packages put shared libraries.
var libDirs = []string{"lib/%s", "usr/lib/%s", "lib", "usr/lib"}

// addWithLibs adds the ELF executables of the sysroot (paths relative to
// it) to t, with the shared libraries they need, transitively, and their
// program interpreter. A static executable comes alone.
func (s *sysroot) addWithLibs(t *Tree, triplet string, exes ...string) error {
	queue := slices.Clone(exes)
	done := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if done[p] {
			continue
		}
		done[p] = true
		data, err := s.readFile(p)
		if err != nil {
			return err
		}
		if err := t.AddFile(p, 0o755, data); err != nil {
			return err
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b := make([]byte, prog.Filesz)
				if _, err := prog.ReadAt(b, 0); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				queue = append(queue, strings.TrimPrefix(string(bytes.TrimRight(b, "\x00")), "/"))
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, lib := range libs {
			found := ""
			for _, d := range libDirs {
				c := path.Join(strings.ReplaceAll(d, "%s", triplet), lib)
				if _, err := fs.Stat(os.DirFS(s.dir), c); err == nil {
					found = c
					break
				}
				if _, err := os.Lstat(filepath.Join(s.dir, c)); err == nil {
					found = c
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, which no extracted package holds (add its package to %s)", p, lib, DepsScript)
			}
			queue = append(queue, found)
		}
	}
	return nil
}
