// Package image builds what owners flash: for arm64 (and amd64) a whole
// bootable GPT disk image (systemd-boot, A/B read-only squashfs root slots
// with busybox init, a data partition: see disk.go and docs/FLASHING.md),
// and for each architecture a rootfs tarball and a read-only squashfs
// holding gatewayd, gwctl, the shipped overlay (rootfs/), the init files
// and the empty folders the box expects, for owners who bring their own
// OS; plus a manifest per image and SHA256SUMS.
//
// The build is reproducible: the output depends only on the sources, the
// Go toolchain, the version strings and SOURCE_DATE_EPOCH. Nothing of the
// build machine leaks in: not the time, the user, the umask, the checkout
// folder (-trimpath), the environment's GOFLAGS, nor the order a folder
// happens to be read in. The tree is assembled once in memory (Tree) and
// every format is written from the same sorted list.
package image

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/homebox/gateway/internal/paths"
)

// Arch is a target the image is built for.
type Arch struct {
	Name   string   // in file names: arm64, armv7, amd64
	GOARCH string   //
	Env    []string // GO* variables that pin the instruction set, so the host's defaults cannot change it
}

// Target is the Go platform, e.g. "linux/arm/v7".
func (a Arch) Target() string {
	t := "linux/" + a.GOARCH
	for _, kv := range a.Env {
		if v, ok := strings.CutPrefix(kv, "GOARM="); ok {
			t += "/v" + v
		}
	}
	return t
}

// Arches are the targets `make image` builds, in that order.
var Arches = []Arch{
	{Name: "arm64", GOARCH: "arm64", Env: []string{"GOARM64=v8.0"}},
	{Name: "armv7", GOARCH: "arm", Env: []string{"GOARM=7"}},
	{Name: "amd64", GOARCH: "amd64", Env: []string{"GOAMD64=v1"}},
}

// LookupArch returns the Arch of that name.
func LookupArch(name string) (Arch, error) {
	var names []string
	for _, a := range Arches {
		if a.Name == name {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return Arch{}, fmt.Errorf("unknown architecture %q (known: %s)", name, strings.Join(names, ", "))
}

// Binaries are the commands built into usr/bin, as packages of the module.
var Binaries = []string{"./cmd/gatewayd", "./cmd/gwctl"}

// VersionPkg is where -X stamps Version and Commit.
const VersionPkg = "github.com/homebox/gateway/internal/version"

// Options say what to build and where.
type Options struct {
	ModuleDir  string    // the module's root (go.mod, rootfs/); default "."
	OutDir     string    // where the images go; default "dist"
	Version    string    // in file names and stamped into the binaries
	Commit     string    // stamped into the binaries and the manifest
	Epoch      time.Time // SOURCE_DATE_EPOCH: every time in the output; required
	Arches     []Arch    // default Arches
	Go         string    // the go command; default "go"
	Mksquashfs string    // default "mksquashfs"
	// Disks are the architectures that also get a bootable disk image
	// (a subset of Arches and of DiskArches). Their Debian packages come
	// from DebsDir/<arch>, else from DepsScript's cache.
	Disks   []string
	DebsDir string
	// SigningKey signs the disk images' update bundles; its public half
	// goes into their roots (see SigningKey). Required with Disks.
	SigningKey ed25519.PrivateKey
	Logger     *slog.Logger
}

// Image is one architecture's output.
type Image struct {
	Arch     Arch
	Tarball  string // paths under OutDir
	Squashfs string
	Manifest string
	Disk     string // the .img, when built
	Update   string // its root slot's signed update bundle
	// GatewaydSize is the size of usr/bin/gatewayd in bytes.
	GatewaydSize int64
}

// Result is what Build wrote.
type Result struct {
	Images []Image
	Sums   string // the SHA256SUMS path
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// check validates the options and fills the defaults. It touches nothing.
func (o *Options) check() error {
	var errs []error
	if o.ModuleDir == "" {
		o.ModuleDir = "."
	}
	if o.OutDir == "" {
		o.OutDir = "dist"
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Mksquashfs == "" {
		o.Mksquashfs = "mksquashfs"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Arches) == 0 {
		o.Arches = Arches
	}
	if !nameRE.MatchString(o.Version) {
		errs = append(errs, fmt.Errorf("version %q: must be letters, digits and . _ + - (it goes into file names)", o.Version))
	}
	if !nameRE.MatchString(o.Commit) {
		errs = append(errs, fmt.Errorf("commit %q: must be letters, digits and . _ + -", o.Commit))
	}
	// squashfs keeps times as unsigned 32-bit seconds.
	if o.Epoch.IsZero() {
		errs = append(errs, errors.New("no build time: set SOURCE_DATE_EPOCH (seconds since 1970)"))
	} else if s := o.Epoch.Unix(); s < 0 || s > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH %d: must be between 0 and %d", s, uint64(math.MaxUint32)))
	}
	seen := map[string]bool{}
	if len(o.Disks) > 0 && len(o.SigningKey) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("disk images need a signing key for their update bundles (image.SigningKey)"))
	}
	for _, d := range o.Disks {
		if _, ok := diskArches[d]; !ok {
			errs = append(errs, fmt.Errorf("no disk image for %s (only %s)", d, strings.Join(DiskArches(), ", ")))
		} else if !slices.ContainsFunc(o.Arches, func(a Arch) bool { return a.Name == d }) {
			errs = append(errs, fmt.Errorf("disk image for %s, which is not among the architectures built", d))
		}
	}
	for _, a := range o.Arches {
		if _, err := LookupArch(a.Name); err != nil {
			errs = append(errs, err)
		}
		if seen[a.Name] {
			errs = append(errs, fmt.Errorf("architecture %s given twice", a.Name))
		}
		seen[a.Name] = true
	}
	for _, f := range []string{"go.mod", "rootfs"} {
		if _, err := os.Stat(filepath.Join(o.ModuleDir, f)); err != nil {
			errs = append(errs, fmt.Errorf("module folder %s: no %s: %w", o.ModuleDir, f, err))
		}
	}
	for _, tool := range []struct{ cmd, pkg string }{{o.Go, "the Go toolchain"}, {o.Mksquashfs, "Debian package squashfs-tools"}} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			errs = append(errs, fmt.Errorf("%s not found (%s): %w", tool.cmd, tool.pkg, err))
		}
	}
	return errors.Join(errs...)
}

// Build builds the images. Options are checked first and nothing is
// written when any is wrong; the outputs are made in a temp folder inside
// OutDir and moved in place only when every one of them is done.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	log := o.Logger
	goVersion, err := goEnv(ctx, o, "GOVERSION")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	stage, err := os.MkdirTemp(o.OutDir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(stage)

	res := &Result{}
	var outputs []string // names in stage, moved to OutDir at the end
	for _, arch := range o.Arches {
		img, names, err := buildArch(ctx, o, arch, stage, goVersion)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", arch.Name, err)
		}
		log.Info("image built", "arch", arch.Name, "tarball", img.Tarball, "squashfs", img.Squashfs, "gatewayd_bytes", img.GatewaydSize)
		res.Images = append(res.Images, img)
		outputs = append(outputs, names...)
	}
	slices.Sort(outputs)
	sums, err := sha256Sums(stage, outputs)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(stage, "SHA256SUMS"), sums, 0o644); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	for _, n := range append(outputs, "SHA256SUMS") {
		if err := os.Rename(filepath.Join(stage, n), filepath.Join(o.OutDir, n)); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	}
	res.Sums = filepath.Join(o.OutDir, "SHA256SUMS")
	for i := range res.Images {
		img := &res.Images[i]
		img.Tarball = filepath.Join(o.OutDir, img.Tarball)
		img.Squashfs = filepath.Join(o.OutDir, img.Squashfs)
		img.Manifest = filepath.Join(o.OutDir, img.Manifest)
		if img.Disk != "" {
			img.Disk = filepath.Join(o.OutDir, img.Disk)
			img.Update = filepath.Join(o.OutDir, img.Update)
		}
	}
	return res, nil
}

// BaseName is the image files' common name, e.g. gateway-v1.2.0-arm64.
func BaseName(version, arch string) string { return "gateway-" + version + "-" + arch }

// buildArch writes one architecture's tarball, squashfs and manifest into
// stage and returns their names.
func buildArch(ctx context.Context, o Options, arch Arch, stage, goVersion string) (Image, []string, error) {
	bins, err := goBuild(ctx, o, arch, stage)
	if err != nil {
		return Image{}, nil, err
	}
	tree, err := BoxTree(filepath.Join(o.ModuleDir, "rootfs"), bins)
	if err != nil {
		return Image{}, nil, err
	}
	entries := tree.Entries()
	base := BaseName(o.Version, arch.Name)
	img := Image{
		Arch:         arch,
		Tarball:      base + ".rootfs.tar.gz",
		Squashfs:     base + ".squashfs",
		Manifest:     base + ".manifest.json",
		GatewaydSize: int64(len(bins["gatewayd"])),
	}

	var tgz bytes.Buffer
	if err := WriteTarGz(&tgz, entries, o.Epoch); err != nil {
		return Image{}, nil, err
	}
	if err := os.WriteFile(filepath.Join(stage, img.Tarball), tgz.Bytes(), 0o644); err != nil {
		return Image{}, nil, err
	}
	sq := filepath.Join(stage, img.Squashfs)
	if err := WriteSquashfs(ctx, o.Mksquashfs, entries, sq, o.Epoch); err != nil {
		return Image{}, nil, err
	}
	if err := os.Chmod(sq, 0o644); err != nil {
		return Image{}, nil, err
	}
	m := NewManifest(o.Version, o.Commit, o.Epoch, arch, goVersion, entries)
	names := []string{img.Tarball, img.Squashfs, img.Manifest}
	var debs []string
	if slices.Contains(o.Disks, arch.Name) {
		start := time.Now()
		debDir := filepath.Join(o.DebsDir, arch.Name)
		if o.DebsDir == "" {
			if debDir, err = fetchDebs(ctx, o.ModuleDir, arch.Name); err != nil {
				return Image{}, nil, err
			}
		}
		work, err := os.MkdirTemp(stage, "disk-"+arch.Name+"-")
		if err != nil {
			return Image{}, nil, err
		}
		defer os.RemoveAll(work)
		img.Disk = base + ".img"
		img.Update = base + ".update"
		if debs, err = buildDisk(ctx, diskInput{
			update: filepath.Join(stage, img.Update), key: o.SigningKey,
			arch: arch, version: o.Version, commit: o.Commit, epoch: o.Epoch, bins: bins,
			overlay: filepath.Join(o.ModuleDir, "rootfs"), debDir: debDir, work: work,
			out: filepath.Join(stage, img.Disk),
		}); err != nil {
			return Image{}, nil, fmt.Errorf("disk image: %w", err)
		}
		disk, err := artifactOf(stage, img.Disk)
		if err != nil {
			return Image{}, nil, err
		}
		m.Disk = &disk
		o.Logger.Info("disk image built", "arch", arch.Name, "took", time.Since(start).Round(time.Millisecond))
	}
	if img.Disk != "" {
		names = append(names, img.Disk, img.Update)
		m.DebianPackages = debs
	}
	if m.Tarball, err = artifactOf(stage, img.Tarball); err != nil {
		return Image{}, nil, err
	}
	if m.Squashfs, err = artifactOf(stage, img.Squashfs); err != nil {
		return Image{}, nil, err
	}
	data, err := m.Marshal()
	if err != nil {
		return Image{}, nil, err
	}
	if err := os.WriteFile(filepath.Join(stage, img.Manifest), data, 0o644); err != nil {
		return Image{}, nil, err
	}
	return img, names, nil
}

// Enablement links: what `systemctl enable` and `update-rc.d` would make,
// made at build time so that a flashed box starts gatewayd without anyone
// logging in.
var (
	systemdUnit  = "etc/systemd/system/gatewayd.service"
	systemdWants = "etc/systemd/system/multi-user.target.wants/gatewayd.service"
	sysvScript   = "etc/init.d/gatewayd"
	sysvStart    = []string{"etc/rc2.d", "etc/rc3.d", "etc/rc4.d", "etc/rc5.d"}
	sysvStop     = []string{"etc/rc0.d", "etc/rc1.d", "etc/rc6.d"}
)

// BoxTree is the image's content: the overlay under overlayDir, the
// binaries (name -> ELF) in usr/bin, the box's empty folders and the links
// that enable the init files.
func BoxTree(overlayDir string, bins map[string][]byte) (*Tree, error) {
	t := NewTree()
	if err := t.AddOverlay(overlayDir); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(bins)) {
		if err := t.AddFile(path.Join("usr/bin", name), 0o755, bins[name]); err != nil {
			return nil, err
		}
	}
	for _, d := range paths.Folders {
		if err := t.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	for _, need := range []string{systemdUnit, sysvScript, "etc/gateway/gateway.yaml", "etc/mosquitto/mosquitto.conf"} {
		if e, ok := t.entries[need]; !ok || e.Kind != File {
			return nil, fmt.Errorf("overlay %s: no %s, which the image must hold", overlayDir, need)
		}
	}
	if err := t.AddSymlink(systemdWants, "../gatewayd.service"); err != nil {
		return nil, err
	}
	for _, d := range sysvStart {
		if err := t.AddSymlink(d+"/S02gatewayd", "../init.d/gatewayd"); err != nil {
			return nil, err
		}
	}
	for _, d := range sysvStop {
		if err := t.AddSymlink(d+"/K01gatewayd", "../init.d/gatewayd"); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// LDFlags are the linker flags: stripped, no build ID, version stamped.
func LDFlags(version, commit string) string {
	return "-s -w -buildid= -X " + VersionPkg + ".Version=" + version + " -X " + VersionPkg + ".Commit=" + commit
}

// buildEnv is the environment of `go build`: the caller's, minus whatever
// could change the output behind the flags' back.
func buildEnv(arch Arch) []string {
	drop := []string{"GOFLAGS=", "GOOS=", "GOARCH=", "GOARM=", "GOARM64=", "GOAMD64=", "GO386=", "CGO_ENABLED=", "GOEXPERIMENT="}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(kv, p) })
	})
	env = append(env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.GOARCH)
	return append(env, arch.Env...)
}

// goBuild builds Binaries for arch and returns them by name.
func goBuild(ctx context.Context, o Options, arch Arch, stage string) (map[string][]byte, error) {
	dir, err := os.MkdirTemp(stage, "bin-"+arch.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + LDFlags(o.Version, o.Commit),
		"-o", absDir + string(filepath.Separator)}
	args = append(args, Binaries...)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.ModuleDir
	cmd.Env = buildEnv(arch)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build for %s: %w\n%s", arch.Target(), err, strings.TrimSpace(out.String()))
	}
	bins := map[string][]byte{}
	for _, pkg := range Binaries {
		name := path.Base(pkg)
		data, err := os.ReadFile(filepath.Join(absDir, name))
		if err != nil {
			return nil, fmt.Errorf("go build for %s: %w", arch.Target(), err)
		}
		bins[name] = data
	}
	return bins, nil
}

func goEnv(ctx context.Context, o Options, key string) (string, error) {
	cmd := exec.CommandContext(ctx, o.Go, "env", key)
	cmd.Dir = o.ModuleDir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("image: go env %s: %w", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func fileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// sha256Sums is SHA256SUMS in sha256sum's format, so that
// `sha256sum -c SHA256SUMS` checks a download.
func sha256Sums(dir string, names []string) ([]byte, error) {
	var b bytes.Buffer
	for _, n := range names {
		sum, _, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	return b.Bytes(), nil
}
