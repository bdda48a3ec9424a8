package image

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The disk image's layout, shared with the on-box slots logic (package
// rootfs/slots) and documented in docs/FLASHING.md. Partitions are found by
// their GPT names, never by number.
const (
	ESPLabel   = "ESP"
	RootALabel = "rootA"
	RootBLabel = "rootB"
	DataLabel  = "data"

	// The ESP holds a kernel and an initramfs per slot: Debian's arm64
	// kernel is an uncompressed 32 MiB EFI application, so two of them
	// need more than 64 MiB.
	ESPSize  = 128 << 20
	RootSize = 128 << 20 // each slot; the root is a few MiB of squashfs today
	DataSize = 64 << 20  // grows to the end of the disk on first boot

	align   = 1 << 20 // every partition starts on a MiB
	gptTail = 1 << 20 // room for the backup GPT at the end
	sector  = 512
)

// DiskSize is the disk image's total size in bytes.
func DiskSize() int64 { return align + ESPSize + 2*RootSize + DataSize + gptTail }

// diskArch is what differs between the architectures' disk images.
type diskArch struct {
	triplet  string // Debian multiarch folder of the libraries
	efiBoot  string // the removable-media boot path UEFI firmware looks for
	sdboot   string // systemd-boot in systemd-boot-efi
	console  string // the serial console of the reference machine
	rootType string // sgdisk type code: Discoverable Partitions root for the arch
	modules  []string
	optional []string // loaded when the kernel has them
}

// Modules loaded by the initramfs: disks, filesystems and the network of
// a virtual machine and the common EFI boards (virtio, NVMe, USB mass
// storage), and what the root and data partitions need. Their
// dependencies come along.
var commonModules = []string{
	"virtio_pci", "virtio_blk", "virtio_net", "virtio_rng",
	"squashfs", "ext4", "crc32c_generic", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "efivarfs",
}

// Drivers of real machines' disks and wired NICs, loaded when this kernel
// has them (nothing probes hardware for modules at boot: no udev): NVMe,
// USB disks and USB Ethernet adapters, SD/eMMC, and the common NICs.
var boardModules = map[string][]string{
	"arm64": {"nvme", "xhci_pci", "xhci_plat_hcd", "usb_storage", "uas", "mmc_block", "sdhci_of_dwcmshc",
		"dw_mmc_rockchip", "dwmac_rk", "bcmgenet", "r8169", "r8152", "ax88179_178a", "cdc_ether"},
	"amd64": {"nvme", "ahci", "xhci_pci", "usb_storage", "uas", "sdhci_pci", "mmc_block",
		"e1000", "e1000e", "igb", "igc", "r8169", "r8152", "ax88179_178a", "cdc_ether"},
}

var diskArches = map[string]diskArch{
	"arm64": {
		triplet: "aarch64-linux-gnu", efiBoot: "EFI/BOOT/BOOTAA64.EFI",
		sdboot: "usr/lib/systemd/boot/efi/systemd-bootaa64.efi", console: "ttyAMA0", rootType: "8305",
		modules: commonModules, optional: boardModules["arm64"],
	},
	"amd64": {
		triplet: "x86_64-linux-gnu", efiBoot: "EFI/BOOT/BOOTX64.EFI",
		sdboot: "usr/lib/systemd/boot/efi/systemd-bootx64.efi", console: "ttyS0", rootType: "8304",
		modules: commonModules, optional: boardModules["amd64"],
	},
}

// DiskArches are the architectures that have a disk image.
func DiskArches() []string {
	var n []string
	for k := range diskArches {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// The box's own files (init scripts, network, accounts), see boxfs/.
//
//go:embed boxfs
var boxfs embed.FS

func boxFile(name string) []byte {
	b, err := boxfs.ReadFile("boxfs/" + name)
	if err != nil {
		panic(err) // embedded at build time: a missing one is a bug here
	}
	return b
}

// On the read-only root, what the owner changes is reached through these
// links into the data partition; rcS creates their targets.
var dataLinks = map[string]string{
	"etc/gateway":     "/data/etc/gateway",
	"etc/mosquitto":   "/data/etc/mosquitto",
	"etc/dropbear":    "/data/etc/dropbear",
	"var/log/gateway": "/data/log/gateway",
	"root":            "/data/root",
}

// Serial is the boot entries' version: higher is newer.
func Serial(epoch time.Time) string { return strconv.FormatInt(epoch.Unix(), 10) }

// diskInput is what one disk image is made from.
type diskInput struct {
	arch    Arch
	version string
	commit  string
	epoch   time.Time
	bins    map[string][]byte
	overlay string // rootfs/
	debDir  string
	work    string // an empty scratch folder
	out     string // the .img to write
	update  string // the .update to write
	key     ed25519.PrivateKey
}

// buildDisk writes a GPT disk image: ESP (systemd-boot, slot A's kernel
// and initramfs), rootA (squashfs), rootB (empty), data (ext4). It returns
// the file names of the Debian packages it used.
func buildDisk(ctx context.Context, in diskInput) ([]string, error) {
	da, ok := diskArches[in.arch.Name]
	if !ok {
		return nil, fmt.Errorf("no disk image for %s (only %s)", in.arch.Name, strings.Join(DiskArches(), ", "))
	}
	debs, err := filepath.Glob(filepath.Join(in.debDir, "*.deb"))
	if err != nil {
		return nil, err
	}
	for i, d := range debs {
		debs[i] = filepath.Base(d)
	}
	sys, err := extractDebs(ctx, in.debDir, filepath.Join(in.work, "debs"))
	if err != nil {
		return nil, err
	}
	kver, vmlinuz, err := sys.kernel()
	if err != nil {
		return nil, err
	}
	applets, err := sys.applets(ctx)
	if err != nil {
		return nil, err
	}

	// The initramfs.
	initrd, err := initramfs(sys, da, kver, applets, in.epoch)
	if err != nil {
		return nil, err
	}

	// The root slot.
	root, err := rootTree(sys, da, in, applets, kver)
	if err != nil {
		return nil, err
	}
	rootImg := filepath.Join(in.work, "root.squashfs")
	if err := WriteSquashfs(ctx, "", root.Entries(), rootImg, in.epoch); err != nil {
		return nil, err
	}
	if st, err := os.Stat(rootImg); err != nil {
		return nil, err
	} else if st.Size() > RootSize {
		return nil, fmt.Errorf("root filesystem is %d bytes, the slot %d", st.Size(), RootSize)
	}

	// The ESP.
	sdboot, err := sys.readFile(da.sdboot)
	if err != nil {
		return nil, fmt.Errorf("systemd-boot: %w", err)
	}
	espImg := filepath.Join(in.work, "esp.vfat")
	espFiles := []struct {
		path string
		data []byte
	}{
		{da.efiBoot, sdboot},
		{"loader/loader.conf", []byte(LoaderConf)},
		{"loader/entries/gateway-a.conf", []byte(BootEntry("a", in.version, in.epoch, da.console))},
		{"a/vmlinuz", vmlinuz},
		{"a/initrd.img", initrd},
	}
	if err := makeFAT(ctx, espImg, ESPSize, in.epoch, in.work, espFiles); err != nil {
		return nil, err
	}

	if err := writeUpdate(in.update, in, rootImg, vmlinuz, initrd); err != nil {
		return nil, err
	}

	// The data partition, empty: gatewayd seeds it on first start.
	dataImg := filepath.Join(in.work, "data.ext4")
	if err := makeExt4(ctx, dataImg, DataSize, in.epoch); err != nil {
		return nil, err
	}

	return debs, assemble(ctx, in.out, da, []part{
		{ESPLabel, "ef00", ESPSize, espImg},
		{RootALabel, da.rootType, RootSize, rootImg},
		{RootBLabel, da.rootType, RootSize, ""},
		{DataLabel, "8300", DataSize, dataImg},
	})
}

// LoaderConf is systemd-boot's loader.conf: no menu (hold a key to see it),
// the highest-versioned gateway entry with tries left, no kernel command
// line editing from the keyboard (it would give a root shell).
const LoaderConf = "timeout 0\ndefault gateway-*\neditor no\n"

// BootEntry is the boot loader entry of a slot ("a" or "b"). Entries sort
// by sort-key, then by version, highest first: the newest slot boots.
// panic=10 turns a kernel panic into a reboot, i.e. a failed try.
func BootEntry(slot, version string, epoch time.Time, console string) string {
	label := RootALabel
	if slot == "b" {
		label = RootBLabel
	}
	return fmt.Sprintf("title Gateway %s (slot %s)\nversion %s\nsort-key gateway\nlinux /%s/vmlinuz\ninitrd /%s/initrd.img\n"+
		"options root=PARTLABEL=%s gateway.slot=%s ro console=%s panic=10\n",
		version, strings.ToUpper(slot), Serial(epoch), slot, slot, label, slot, console)
}

// addBusybox adds busybox and a link per applet, absolute so that they
// resolve from any folder.
func addBusybox(t *Tree, sys *sysroot, applets []string) error {
	bb, err := sys.readFile("bin/busybox")
	if err != nil {
		return fmt.Errorf("busybox: %w", err)
	}
	if err := t.AddFile("bin/busybox", 0o755, bb); err != nil {
		return err
	}
	for _, a := range applets {
		if a == "linuxrc" || strings.Count(a, "/") == 0 {
			continue
		}
		if err := t.AddSymlink(a, "/bin/busybox"); err != nil {
			return err
		}
	}
	return nil
}

// initramfs is the gzipped cpio the boot loader hands the kernel.
func initramfs(sys *sysroot, da diskArch, kver string, applets []string, epoch time.Time) ([]byte, error) {
	modDir := filepath.Join(sys.dir, "lib/modules", kver)
	order, err := moduleOrder(modDir, da.modules, da.optional)
	if err != nil {
		return nil, err
	}
	t := NewTree()
	if err := addBusybox(t, sys, applets); err != nil {
		return nil, err
	}
	var names bytes.Buffer
	for _, rel := range order {
		data, err := os.ReadFile(filepath.Join(modDir, rel))
		if err != nil {
			return nil, err
		}
		name := modName(rel)
		if err := t.AddFile("lib/modules/"+name+".ko", 0o644, data); err != nil {
			return nil, err
		}
		names.WriteString(name + "\n")
	}
	if err := t.AddFile("lib/modules/order", 0o644, names.Bytes()); err != nil {
		return nil, err
	}
	if err := t.AddFile("init", 0o755, boxFile("init")); err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "newroot"} {
		if err := t.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	if err := WriteInitramfs(&b, t.Entries(), epoch); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// rootTree is a root slot's content: the box's files of the overlay image
// (BoxTree) with the owner's folders turned into links to /data, plus busybox as init, the init
// scripts, dropbear and the libraries it needs.
func rootTree(sys *sysroot, da diskArch, in diskInput, applets []string, kver string) (*Tree, error) {
	box, err := BoxTree(in.overlay, in.bins)
	if err != nil {
		return nil, err
	}
	t := NewTree()
	// The other init systems' files stay: gatewayd seeds whatever of its
	// overlay is missing, and the root cannot be written.
	skip := []string{"run/gateway"}
	for k := range dataLinks {
		skip = append(skip, k)
	}
	for _, e := range box.Entries() {
		if slices.ContainsFunc(skip, func(s string) bool { return e.Path == s || strings.HasPrefix(e.Path, s+"/") }) {
			continue
		}
		if err := t.add(e); err != nil {
			return nil, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(dataLinks)) {
		if err := t.AddSymlink(k, dataLinks[k]); err != nil {
			return nil, err
		}
	}
	if err := addBusybox(t, sys, applets); err != nil {
		return nil, err
	}
	if err := sys.addWithLibs(t, da.triplet, "usr/sbin/dropbear", "usr/bin/dropbearkey"); err != nil {
		return nil, fmt.Errorf("dropbear: %w", err)
	}
	files := []struct {
		path, src string
		mode      os.FileMode
	}{
		{"etc/inittab", "inittab", 0o644},
		{"etc/init.d/rcS", "rcS", 0o755},
		{"etc/init.d/rcK", "rcK", 0o755},
		{"etc/passwd", "passwd", 0o644},
		{"etc/group", "group", 0o644},
		{"etc/shells", "shells", 0o644},
		{"etc/hostname", "hostname", 0o644},
		{"usr/libexec/gateway/gatewayd-run", "gatewayd-run", 0o755},
		{"usr/libexec/gateway/net", "net", 0o755},
		{"usr/libexec/gateway/dhcp-event", "dhcp-event", 0o755},
	}
	for _, f := range files {
		if err := t.AddFile(f.path, f.mode, boxFile(f.src)); err != nil {
			return nil, err
		}
	}
	keyFile, pub, err := trustedKeyFile(in.key)
	if err != nil {
		return nil, err
	}
	if err := t.AddFile(keyFile, 0o644, pub); err != nil {
		return nil, err
	}
	osRelease := fmt.Sprintf("NAME=\"Gateway\"\nID=gateway\nPRETTY_NAME=\"Gateway %s\"\nVERSION_ID=%s\nIMAGE_ID=gateway\nIMAGE_VERSION=%s\nGATEWAY_SERIAL=%s\nGATEWAY_COMMIT=%s\nGATEWAY_KERNEL=%s\n",
		in.version, in.version, in.version, Serial(in.epoch), in.commit, kver)
	if err := t.AddFile("etc/os-release", 0o644, []byte(osRelease)); err != nil {
		return nil, err
	}
	if err := t.AddSymlink("etc/resolv.conf", "/run/resolv.conf"); err != nil {
		return nil, err
	}
	// Mount points: tmpfs on /run and /tmp set their own modes.
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "mnt", "data", "boot/efi"} {
		if err := t.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.AddSymlink("var/tmp", "/tmp"); err != nil {
		return nil, err
	}
	return t, nil
}

// run runs a tool, its output in the error.
func run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// makeFAT makes a FAT32 file system image holding files, without mounting:
// mkfs.vfat --invariant, mtools for the files (their times are
// SOURCE_DATE_EPOCH).
func makeFAT(ctx context.Context, img string, size int64, epoch time.Time, work string, files []struct {
	path string
	data []byte
}) error {
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(img, size); err != nil {
		return err
	}
	// --invariant: a fixed volume serial (1234-ABCD) and no time of today.
	if err := run(ctx, nil, "mkfs.vfat", "-F", "32", "-n", ESPLabel, "--invariant", img); err != nil {
		return err
	}
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(epoch.Unix(), 10), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null"}
	made := map[string]bool{}
	src := filepath.Join(work, "fatfile")
	for _, f := range files {
		var dirs []string
		for d := path.Dir(f.path); d != "."; d = path.Dir(d) {
			dirs = append([]string{d}, dirs...)
		}
		for _, d := range dirs {
			if !made[d] {
				if err := run(ctx, env, "mmd", "-i", img, "::/"+d); err != nil {
					return err
				}
				made[d] = true
			}
		}
		if err := os.WriteFile(src, f.data, 0o644); err != nil {
			return err
		}
		if err := run(ctx, env, "mcopy", "-i", img, src, "::/"+f.path); err != nil {
			return err
		}
	}
	return os.Remove(src)
}

// fixedUUID is a UUID that depends only on what it names: the same on
// every build, different per filesystem and partition.
func fixedUUID(what string) string {
	h := sha256.Sum256([]byte("homebox gateway disk image/" + what))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// makeExt4 makes the empty data file system: 4 KiB blocks and the default
// inode ratio whatever its small size, as it grows to the whole disk;
// fixed UUID, hash seed and time.
func makeExt4(ctx context.Context, img string, size int64, epoch time.Time) error {
	_ = os.Remove(img)
	env := []string{"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(epoch.Unix(), 10), "MKE2FS_CONFIG=/dev/null"}
	return run(ctx, env, "mkfs.ext4", "-q", "-F", "-L", "gateway-data", "-b", "4096", "-i", "16384", "-I", "256",
		"-O", "has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,sparse_super,large_file,huge_file,dir_nlink,extra_isize,metadata_csum",
		"-U", fixedUUID("data-fs"), "-E", "hash_seed="+fixedUUID("data-hash")+",root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0",
		img, strconv.FormatInt(size/1024, 10)+"k")
}

// part is one partition of the disk: its image file ("" for none).
type part struct {
	name, typ string
	size      int64
	img       string
}

// assemble writes the GPT (sgdisk, fixed GUIDs) and copies each
// partition's image at its offset. Runs of zeros are skipped, so the image
// file stays sparse.
func assemble(ctx context.Context, out string, da diskArch, parts []part) error {
	_ = os.Remove(out)
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(out, DiskSize()); err != nil {
		return err
	}
	args := []string{"--disk-guid=" + fixedUUID("disk")}
	off := int64(align)
	for i, p := range parts {
		n := strconv.Itoa(i + 1)
		args = append(args,
			"--new="+n+":"+strconv.FormatInt(off/sector, 10)+":"+strconv.FormatInt((off+p.size)/sector-1, 10),
			"--typecode="+n+":"+p.typ, "--change-name="+n+":"+p.name, "--partition-guid="+n+":"+fixedUUID("part-"+p.name))
		off += p.size
	}
	args = append(args, out)
	if err := run(ctx, nil, "sgdisk", args...); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	off = align
	for _, p := range parts {
		if p.img != "" {
			if err := copySparse(f, off, p.img, p.size); err != nil {
				return fmt.Errorf("partition %s: %w", p.name, err)
			}
		}
		off += p.size
	}
	return f.Close()
}

func copySparse(dst *os.File, off int64, src string, max int64) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	if st, err := s.Stat(); err != nil {
		return err
	} else if st.Size() > max {
		return fmt.Errorf("%s is %d bytes, the partition %d", src, st.Size(), max)
	}
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for pos := int64(0); ; {
		n, err := io.ReadFull(s, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
