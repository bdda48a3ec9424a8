package slots

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/rootfs/bundle"
)

// TestBootCountingUnderQemu checks, with the real systemd-boot of the arm64
// disk image under qemu, the order this package counts on, through two
// updates: an entry written by Entry.Marshal with a higher version boots
// first and loses a try per boot (gateway-b+3.conf → gateway-b+2-1.conf);
// without its counter (MarkGood) it stays the default; the next update
// goes into the other slot over its entry and boots; once that one has no
// tries left, the good slot boots again by itself.
//
// Slot B is made from slot A (partition, kernel, initrd), so its boots are
// real ones; a slot is broken by replacing its initrd with junk (the
// kernel panics, panic=1 reboots). The disk image is GATEWAY_DISK_IMAGE
// when set (make test can pass the one it built), else built here.
func TestBootCountingUnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a disk image and boots it under qemu (TCG): about a minute")
	}
	qemu, firmware, src := qemuTools(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	run(t, "cp", "--sparse=always", src, disk)
	parts := gptPartitions(t, disk)
	esp := fmt.Sprintf("%s@@%d", disk, parts["ESP"].start)

	// Slot B = slot A, with a higher version and three tries.
	a := parts["rootA"]
	copyRange(t, disk, a.start, parts["rootB"].start, a.size)
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		run(t, "mcopy", "-i", esp, "::/a/"+f, filepath.Join(dir, f))
	}
	run(t, "mmd", "-D", "s", "-i", esp, "::/b")
	run(t, "mcopy", "-D", "o", "-i", esp, filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img"), "::/b/")
	run(t, "mcopy", "-i", esp, "::/loader/entries/gateway-a.conf", filepath.Join(dir, "gateway-a.conf"))
	entryA, err := ParseEntry("gateway-a.conf", []byte(read(t, filepath.Join(dir, "gateway-a.conf"))))
	if err != nil {
		t.Fatal(err)
	}
	opts := regexp.MustCompile(`\bpanic=\S+`).ReplaceAllString(entryA.Options, "") + " panic=1"
	put := func(e Entry) {
		write(t, filepath.Join(dir, e.Name()), string(e.Marshal()))
		run(t, "mcopy", "-D", "o", "-i", esp, filepath.Join(dir, e.Name()), "::/loader/entries/")
	}
	entries := func() string {
		out, err := exec.Command("mdir", "-b", "-i", esp, "::/loader/entries").CombinedOutput()
		if err != nil {
			t.Fatalf("mdir: %v\n%s", err, out)
		}
		var names []string
		for _, l := range strings.Fields(string(out)) {
			names = append(names, filepath.Base(l))
		}
		sort.Strings(names)
		return strings.Join(names, " ")
	}
	want := func(step, got, want string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: %s, want %s", step, got, want)
		}
	}
	junk := filepath.Join(dir, "junk")
	write(t, junk, strings.Repeat("not an initrd\n", 100))

	// 1. An update into B: its entry has a higher version and three tries,
	// it boots first and the boot loader takes a try.
	put(Entry{Slot: B, Version: "2", Serial: entryA.Serial + 1, Options: opts, Counting: true, Left: Tries})
	want("update into B boots", strings.Join(boot(t, qemu, firmware, disk, 1), " "), "b")
	want("entries after B's first try", entries(), "gateway-a.conf gateway-b+2-1.conf")
	// 2. MarkGood's rename: B stays the default, no more counting.
	run(t, "mren", "-i", esp, "::/loader/entries/gateway-b+2-1.conf", "::/loader/entries/gateway-b.conf")
	want("good B boots", strings.Join(boot(t, qemu, firmware, disk, 1), " "), "b")
	want("entries of a good B", entries(), "gateway-a.conf gateway-b.conf")
	// 3. The next update goes into A, over its entry: A boots.
	run(t, "mdel", "-i", esp, "::/loader/entries/gateway-a.conf")
	put(Entry{Slot: A, Version: "3", Serial: entryA.Serial + 2, Options: opts, Counting: true, Left: Tries})
	want("update into A boots", strings.Join(boot(t, qemu, firmware, disk, 1), " "), "a")
	want("entries after A's first try", entries(), "gateway-a+2-1.conf gateway-b.conf")
	// 4. A breaks: its last two tries panic (panic=1 reboots), then the
	// good B boots again by itself.
	run(t, "mcopy", "-D", "o", "-i", esp, junk, "::/a/initrd.img")
	want("boots of a broken A", strings.Join(boot(t, qemu, firmware, disk, 3), " "), "a a b")
	want("entries after the fallback", entries(), "gateway-a+0-3.conf gateway-b.conf")
	if e, _ := ParseEntryName("gateway-a+0-3.conf"); e.State() != "bad" {
		t.Fatalf("state %s", e.State())
	}
}

var image struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// qemuTools finds qemu and the UEFI firmware, and the arm64 disk image:
// GATEWAY_DISK_IMAGE when set (make test can pass the one it built), else
// one built here once for all tests, as `make image` does (about 30 s with
// the Debian packages cached).
func qemuTools(t *testing.T) (qemu, firmware, img string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a disk image and boots it under qemu (TCG)")
	}
	qemu = testkit.RequireTool(t, "qemu-system-aarch64")
	for _, tool := range []string{"mcopy", "mdir", "mmd", "mdel", "mren", "cp"} {
		testkit.RequireTool(t, tool)
	}
	firmware = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
	if _, err := os.Stat(firmware); err != nil {
		t.Fatalf("UEFI firmware: %v (apt-get install qemu-efi-aarch64)", err)
	}
	if img = os.Getenv("GATEWAY_DISK_IMAGE"); img != "" {
		return qemu, firmware, img
	}
	image.once.Do(func() {
		root, err := testkit.ModuleRoot()
		if err != nil {
			image.err = err
			return
		}
		if image.dir, err = os.MkdirTemp("", "slots-image-"); err != nil {
			image.err = err
			return
		}
		cmd := exec.Command("go", "run", "./cmd/mkimage", "-out", image.dir, "-arch", "arm64", "-disk", "arm64", "-version", "slotstest", "-commit", "test")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			image.err = fmt.Errorf("building the disk image: %v\n%s", err, out)
		}
		image.path = filepath.Join(image.dir, "gateway-slotstest-arm64.img")
	})
	if image.err != nil {
		t.Fatal(image.err)
	}
	return qemu, firmware, image.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if image.dir != "" {
		os.RemoveAll(image.dir)
	}
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "SOURCE_DATE_EPOCH=1764806400")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

type gptPart struct{ start, size int64 }

// gptPartitions reads the disk's GPT: partition name → byte range.
func gptPartitions(t *testing.T, disk string) map[string]gptPart {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 92)
	if _, err := f.ReadAt(hdr, 512); err != nil || string(hdr[:8]) != "EFI PART" {
		t.Fatalf("%s: no GPT header at LBA 1 (%v)", disk, err)
	}
	lba := int64(binary.LittleEndian.Uint64(hdr[72:]))
	n := int(binary.LittleEndian.Uint32(hdr[80:]))
	size := int(binary.LittleEndian.Uint32(hdr[84:]))
	table := make([]byte, n*size)
	if _, err := f.ReadAt(table, lba*512); err != nil {
		t.Fatal(err)
	}
	out := map[string]gptPart{}
	for i := range n {
		e := table[i*size : (i+1)*size]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := int64(binary.LittleEndian.Uint64(e[32:])), int64(binary.LittleEndian.Uint64(e[40:]))
		u := make([]uint16, 36)
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		name := strings.TrimRight(string(utf16.Decode(u)), "\x00")
		out[name] = gptPart{start: first * 512, size: (last - first + 1) * 512}
	}
	for _, want := range []string{"ESP", "rootA", "rootB", "data"} {
		if _, ok := out[want]; !ok {
			t.Fatalf("%s: no partition %s in %v", disk, want, out)
		}
	}
	return out
}

func copyRange(t *testing.T, disk string, from, to, n int64) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(buf)) {
		k := min(int64(len(buf)), n-off)
		if _, err := f.ReadAt(buf[:k], from+off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(buf[:k], to+off); err != nil {
			t.Fatal(err)
		}
	}
}

// boot starts qemu on disk and returns the slot of each of the first n
// kernels it boots (a panic reboots into the next), read from the kernel
// command lines on the serial console; then stops qemu.
func boot(t *testing.T, qemu, firmware, disk string, n int) []string {
	t.Helper()
	return bootUntil(t, qemu, firmware, disk, n, "")
}

// bootUntil is boot that also waits, after the nth kernel, for marker on
// the console (the root's init running, say).
func bootUntil(t *testing.T, qemu, firmware, disk string, n int, marker string) []string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "console.log")
	cmd := exec.Command(qemu, "-M", "virt", "-cpu", "cortex-a53", "-smp", "1", "-m", "1024",
		"-bios", firmware, "-boot", "menu=on,splash-time=0",
		"-drive", "if=none,id=d,format=raw,file="+disk, "-device", "virtio-blk-pci,drive=d",
		"-nic", "none", "-display", "none", "-monitor", "none", "-serial", "file:"+log)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	lineRE := regexp.MustCompile(`Kernel command line: .*\bgateway\.slot=([ab])\b`)
	var slots []string
	limit := time.Duration(n+1) * 100 * time.Second
	deadline := time.Now().Add(limit)
	for {
		data, _ := os.ReadFile(log)
		slots = slots[:0]
		for _, m := range lineRE.FindAllStringSubmatch(string(data), -1) {
			slots = append(slots, m[1])
		}
		idx := lineRE.FindAllIndex(data, -1)
		if len(slots) >= n && (marker == "" || bytes.Contains(data[idx[n-1][1]:], []byte(marker))) {
			// The last kernel is up: the boot loader has renamed its
			// entry before starting it.
			stop()
			t.Logf("boots %v in %s, %d kernel panics", slots[:n], time.Since(start).Round(time.Second), bytes.Count(data, []byte("Kernel panic")))
			return slots[:n]
		}
		select {
		case err := <-exited:
			t.Fatalf("qemu exited (%v) after %d boots %v:\n%s", err, len(slots), slots, tail(data))
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("%d of %d boots (and %q) within %s (%v):\n%s", len(slots), n, marker, limit, slots, tail(data))
		}
	}
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// TestInstallBootsUnderQemu runs Install and MarkGood on the host against
// the disk image's own ESP (copied out with mtools) and a file standing in
// for slot B's partition, with a real signed bundle made from the image's
// slot A; writes the result back into the disk; and boots it under qemu:
// systemd-boot must start slot B, whose root (written by Install) must come
// up to its init, count a try, and after MarkGood stay the default.
func TestInstallBootsUnderQemu(t *testing.T) {
	qemu, firmware, src := qemuTools(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	run(t, "cp", "--sparse=always", src, disk)
	parts := gptPartitions(t, disk)
	esp := fmt.Sprintf("%s@@%d", disk, parts["ESP"].start)

	// The box, on the host: the ESP's loader/ and a/ copied out.
	f := &fixture{dir: dir}
	f.Box = &Box{
		Root:     filepath.Join(dir, "root"),
		ESP:      filepath.Join(dir, "esp"),
		Cmdline:  filepath.Join(dir, "cmdline"),
		SysBlock: filepath.Join(dir, "sys"),
		DevDir:   filepath.Join(dir, "dev"),
		Arch:     "arm64",
	}
	mkdir(t, f.ESP, f.DevDir, filepath.Join(f.Root, "data"))
	run(t, "mcopy", "-s", "-n", "-i", esp, "::/loader", "::/a", f.ESP)
	write(t, filepath.Join(f.SysBlock, "vda3/uevent"), "DEVNAME=vda3\nDEVTYPE=partition\nPARTNAME=rootB\n")
	rootB := filepath.Join(f.DevDir, "vda3")
	if err := os.WriteFile(rootB, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(rootB, parts["rootB"].size); err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.Root, bundle.TrustedKeysDir, "test.pub"), string(pub))
	f.boot(t) // the kernel command line of slot A's entry

	st := f.status(t)
	if st.Booted.Slot != A || st.Other.State != "empty" {
		t.Fatalf("the image as built: %+v", st)
	}

	// Version B: slot A's squashfs, kernel and initrd, signed.
	sq := make([]byte, 48)
	df, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	if _, err := df.ReadAt(sq, parts["rootA"].start); err != nil || string(sq[:4]) != "hsqs" {
		t.Fatalf("slot A is not a squashfs: %q %v", sq[:4], err)
	}
	used := int64(binary.LittleEndian.Uint64(sq[40:])) // bytes_used in the superblock
	rootfs := io.NewSectionReader(df, parts["rootA"].start, (used+4095)/4096*4096)
	kernel, kf, err := bundle.FilePart(bundle.Kernel, filepath.Join(f.ESP, "a/vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	initrd, inf, err := bundle.FilePart(bundle.Initrd, filepath.Join(f.ESP, "a/initrd.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer inf.Close()
	upd := filepath.Join(dir, "gateway-2-arm64.update")
	out, err := os.Create(upd)
	if err != nil {
		t.Fatal(err)
	}
	err = bundle.Write(out, bundle.Manifest{Version: "2", Serial: st.Booted.Serial + 1, Arch: "arm64"},
		[]bundle.Part{{Name: bundle.RootFS, Size: rootfs.Size(), R: rootfs}, kernel, initrd}, key)
	if err := errors.Join(err, out.Close()); err != nil {
		t.Fatal(err)
	}

	if _, err := f.InstallFile(context.Background(), upd); err != nil {
		t.Fatal(err)
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b+3.conf")

	// Back into the disk: slot B's partition and the ESP's new files.
	copyFile(t, rootB, rootfs.Size(), disk, parts["rootB"].start)
	run(t, "mmd", "-D", "s", "-i", esp, "::/b")
	run(t, "mcopy", "-D", "o", "-i", esp, filepath.Join(f.ESP, "b/vmlinuz"), filepath.Join(f.ESP, "b/initrd.img"), "::/b/")
	run(t, "mcopy", "-D", "o", "-i", esp, filepath.Join(f.ESP, EntriesDir, "gateway-b+3.conf"), "::/loader/entries/")

	syncEntries := func() {
		os.RemoveAll(filepath.Join(f.ESP, EntriesDir))
		run(t, "mcopy", "-s", "-n", "-i", esp, "::/loader/entries", filepath.Join(f.ESP, "loader"))
	}
	const up = "rcS: up"
	if got := bootUntil(t, qemu, firmware, disk, 1, up); got[0] != "b" {
		t.Fatalf("booted %s after the install, want b", got[0])
	}
	syncEntries()
	f.wantEntries(t, "gateway-a.conf", "gateway-b+2-1.conf")
	write(t, f.Cmdline, "console=ttyAMA0 root=PARTLABEL=rootB gateway.slot=b ro\n")
	if st := f.status(t); st.Booted.Slot != B || st.Booted.State != "trial" || st.LastUpdate.State != StateTrial {
		t.Fatalf("on trial: %+v %+v", st, st.LastUpdate)
	}
	if changed, err := f.MarkGood(); err != nil || !changed {
		t.Fatalf("mark good: %v %v", changed, err)
	}
	run(t, "mdel", "-i", esp, "::/loader/entries/gateway-b+2-1.conf")
	run(t, "mcopy", "-D", "o", "-i", esp, filepath.Join(f.ESP, EntriesDir, "gateway-b.conf"), "::/loader/entries/")
	if got := bootUntil(t, qemu, firmware, disk, 1, up); got[0] != "b" {
		t.Fatalf("booted %s after mark good, want b", got[0])
	}
	syncEntries()
	f.wantEntries(t, "gateway-a.conf", "gateway-b.conf")
	if st := f.status(t); st.Booted != (SlotInfo{Slot: B, Version: "2", Serial: st.Booted.Serial, State: "good"}) || st.LastUpdate.State != StateGood {
		t.Fatalf("after mark good: %+v %+v", st, st.LastUpdate)
	}
}

// copyFile writes the first n bytes of the file src into dst at offset off.
func copyFile(t *testing.T, src string, n int64, dst string, off int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.CopyN(io.NewOffsetWriter(out, off), in, n); err != nil {
		t.Fatal(err)
	}
}
