package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testVersion = "v0.0.0-imagetest"
	testCommit  = "abc1234"
)

var (
	distDir  string // made by TestMain, removed after the tests
	distOnce sync.Once
	distErr  error
	toolOnce sync.Once
	toolPath string
	toolErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fwimage-dist-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	distDir = dir
	// The update bundles' development key, made once for these tests.
	os.Setenv("GATEWAY_KEYS", filepath.Join(dir, "keys"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTools fails the test, naming the tool and its Debian package, when
// one is missing (`make test` installs them).
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	pkg := map[string]string{
		"mksquashfs": "squashfs-tools", "unsquashfs": "squashfs-tools",
		"qemu-aarch64": "qemu-user", "qemu-arm": "qemu-user",
		"mosquitto_pub": "mosquitto-clients", "mosquitto_sub": "mosquitto-clients",
		"tar": "tar", "sha256sum": "coreutils",
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (Debian package %s; `make test-deps` installs it): %v", tool, pkg[tool], err)
		}
	}
}

// mkimage runs cmd/mkimage, as `make image` does, into out. It is a child
// process built without the race detector, which would make compressing
// the images five times slower; Build's option checks are tested in
// process (TestBadOptionsWriteNothing).
func mkimage(t *testing.T, out string, arches ...string) error {
	t.Helper()
	return mkimageDisks(t, out, "", arches...)
}

// mkimageDisks is mkimage that also builds the disk images of disks
// (comma-separated arch names).
func mkimageDisks(t *testing.T, out, disks string, arches ...string) error {
	t.Helper()
	return mkimageVersion(t, out, testVersion, testEpoch, disks, arches...)
}

// mkimageVersion is mkimageDisks for another version and build time.
func mkimageVersion(t *testing.T, out, version string, epoch time.Time, disks string, arches ...string) error {
	t.Helper()
	needTools(t, "mksquashfs")
	toolOnce.Do(func() {
		toolPath = filepath.Join(distDir, "mkimage")
		b, err := exec.Command("go", "build", "-o", toolPath, "../../cmd/mkimage").CombinedOutput()
		if err != nil {
			toolErr = fmt.Errorf("go build ./cmd/mkimage: %w\n%s", err, b)
		}
	})
	if toolErr != nil {
		return toolErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolPath, "-module", "../..", "-out", out,
		"-version", version, "-commit", testCommit, "-arch", strings.Join(arches, ","), "-disk", disks)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch.Unix()))
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkimage -arch %s: %w\n%s", strings.Join(arches, ","), err, b)
	}
	return nil
}

// armDist is one build of the two ARM images, shared by the tests that
// look at them.
func armDist(t *testing.T) string {
	t.Helper()
	out := filepath.Join(distDir, "arm")
	distOnce.Do(func() { distErr = mkimage(t, out, "arm64", "armv7") })
	if distErr != nil {
		t.Fatalf("build the arm64 and armv7 images: %v", distErr)
	}
	return out
}

// imageOf is the paths of an arch's image under dist.
func imageOf(t *testing.T, dist, arch string) Image {
	t.Helper()
	a, err := LookupArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dist, BaseName(testVersion, arch))
	img := Image{Arch: a, Tarball: base + ".rootfs.tar.gz", Squashfs: base + ".squashfs", Manifest: base + ".manifest.json"}
	for _, p := range []string{img.Tarball, img.Squashfs, img.Manifest} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s image: %v", arch, err)
		}
	}
	return img
}

// TestReproducible builds the amd64 image twice into different folders
// with the same SOURCE_DATE_EPOCH: every file must be byte for byte the same.
func TestReproducible(t *testing.T) {
	needTools(t, "sha256sum")
	var dirs [2]string
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), fmt.Sprintf("dist%d", i))
		if err := mkimage(t, dirs[i], "amd64"); err != nil {
			t.Fatal(err)
		}
	}
	names := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	a, b := names(dirs[0]), names(dirs[1])
	base := BaseName(testVersion, "amd64")
	want := []string{"SHA256SUMS", base + ".manifest.json", base + ".rootfs.tar.gz", base + ".squashfs"}
	if !slices.Equal(a, want) || !slices.Equal(b, want) {
		t.Fatalf("outputs %v and %v, want %v (no temp files left)", a, b, want)
	}
	for _, n := range a {
		x, _ := os.ReadFile(filepath.Join(dirs[0], n))
		y, _ := os.ReadFile(filepath.Join(dirs[1], n))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds (%d and %d bytes)", n, len(x), len(y))
		}
	}
	// SHA256SUMS is what sha256sum -c checks.
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dirs[0]
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
}

// TestImageContent looks inside the ARM images: the binaries are static,
// stripped, for the right machine and stamped; the tarball and the squashfs
// hold the same tree, root-owned and dated SOURCE_DATE_EPOCH; the manifest
// lists it.
func TestImageContent(t *testing.T) {
	needTools(t, "unsquashfs")
	dist := armDist(t)
	for _, c := range []struct {
		arch    string
		machine elf.Machine
		setting string // a build setting the binary must carry
	}{{"arm64", elf.EM_AARCH64, "GOARM64=v8.0"}, {"armv7", elf.EM_ARM, "GOARM=7"}} {
		t.Run(c.arch, func(t *testing.T) {
			img := imageOf(t, dist, c.arch)
			tarList, files := readTarGz(t, img.Tarball)
			img.GatewaydSize = int64(len(files["usr/bin/gatewayd"]))
			for _, bin := range []string{"usr/bin/gatewayd", "usr/bin/gwctl"} {
				checkBinary(t, bin, files[bin], c.machine, c.setting)
			}
			if c.arch == "arm64" {
				t.Logf("arm64 gatewayd: %d bytes (%.1f MiB)", img.GatewaydSize, float64(img.GatewaydSize)/(1<<20))
				if img.GatewaydSize >= 20<<20 {
					t.Errorf("arm64 gatewayd is %d bytes, over the 20 MiB goal", img.GatewaydSize)
				}
			}

			sqList := listSquashfs(t, img.Squashfs)
			if !slices.Equal(tarList, sqList) {
				t.Errorf("tarball and squashfs differ:\n tar: %s\n sqfs: %s", strings.Join(tarList, "\n       "), strings.Join(sqList, "\n       "))
			}

			var m Manifest
			data, err := os.ReadFile(img.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			if m.Version != testVersion || m.Commit != testCommit || m.SourceDateEpoch != testEpoch.Unix() ||
				m.BuildTime != "2023-11-14T22:13:20Z" || m.Arch != c.arch || !strings.HasPrefix(m.Go, "go") {
				t.Errorf("manifest head %+v", m)
			}
			var listed []string
			for _, f := range m.Files {
				listed = append(listed, strings.TrimPrefix(f.Path, "/"))
				if f.Type == "file" && f.Size != int64(len(files[strings.TrimPrefix(f.Path, "/")])) {
					t.Errorf("manifest: %s size %d, the tarball has %d", f.Path, f.Size, len(files[f.Path[1:]]))
				}
			}
			var inTar []string
			for _, l := range tarList {
				p, _, _ := strings.Cut(strings.Fields(l)[2], "->")
				inTar = append(inTar, p)
			}
			if !slices.Equal(listed, inTar) {
				t.Errorf("manifest lists %v, tarball holds %v", listed, inTar)
			}
			if st, _ := os.Stat(img.Tarball); m.Tarball.Size != st.Size() {
				t.Errorf("manifest tarball size %d, file %d", m.Tarball.Size, st.Size())
			}
		})
	}
}

// readTarGz returns "type mode path[->target]" per entry and the files' content.
func readTarGz(t *testing.T, p string) ([]string, map[string][]byte) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var list []string
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(testEpoch) {
			t.Errorf("%s: owner %d:%d, mtime %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		name := strings.TrimSuffix(h.Name, "/")
		var kind string
		switch h.Typeflag {
		case tar.TypeDir:
			kind = "d"
		case tar.TypeReg:
			kind = "-"
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = data
		case tar.TypeSymlink:
			kind = "l"
			name += "->" + h.Linkname
		default:
			t.Errorf("%s: tar type %c", h.Name, h.Typeflag)
		}
		list = append(list, fmt.Sprintf("%s %04o %s", kind, h.Mode, name))
	}
	return list, files
}

// listSquashfs is readTarGz's list, from unsquashfs -lln, which also
// checks that every inode is 0/0 and dated the epoch.
func listSquashfs(t *testing.T, p string) []string {
	t.Helper()
	cmd := exec.Command("unsquashfs", "-lln", "-d", "R", p)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln %s: %v", p, err)
	}
	date := testEpoch.Format("2006-01-02 15:04")
	var list []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] == "R" {
			continue // the root folder itself
		}
		perm, owner, when, name := f[0], f[1], f[3]+" "+f[4], strings.TrimPrefix(f[5], "R/")
		if owner != "0/0" || when != date {
			t.Errorf("squashfs %s: owner %s, time %s (want 0/0, %s)", name, owner, when, date)
		}
		mode := 0
		for i, c := range perm[1:10] {
			if c != '-' {
				mode |= 1 << (8 - i)
			}
		}
		if len(f) == 8 && f[6] == "->" {
			name += "->" + f[7]
		}
		list = append(list, fmt.Sprintf("%c %04o %s", perm[0], mode, name))
	}
	return list
}

func checkBinary(t *testing.T, name string, data []byte, machine elf.Machine, setting string) {
	t.Helper()
	if len(data) == 0 {
		t.Errorf("%s missing", name)
		return
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer ef.Close()
	if ef.Machine != machine {
		t.Errorf("%s: machine %v, want %v", name, ef.Machine, machine)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: not static (%v)", name, p.Type)
		}
	}
	if ef.Section(".symtab") != nil {
		t.Errorf("%s: not stripped (.symtab present)", name)
	}
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s build info: %v", name, err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
		if strings.HasPrefix(s.Key, "vcs") {
			t.Errorf("%s carries %s=%s: the checkout's state must not reach the image", name, s.Key, s.Value)
		}
	}
	k, v, _ := strings.Cut(setting, "=")
	for key, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", k: v} {
		if settings[key] != want {
			t.Errorf("%s: build setting %s=%q, want %q", name, key, settings[key], want)
		}
	}
	// -trimpath keeps -ldflags out of the build info: look at the effects.
	for _, want := range []string{testVersion, testCommit} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("%s: %q not stamped in", name, want)
		}
	}
	f := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "tool", "buildid", f).Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("%s: build ID %q, %v; want none (-buildid=)", name, out, err)
	}
}
