package slots

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/homebox/gateway/internal/testkit"
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
	src := os.Getenv("GATEWAY_DISK_IMAGE")
	if src == "" {
		// Build one, as `make image` does (about 30 s with the Debian
		// packages cached).
		root, err := testkit.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		cmd := exec.Command("go", "run", "./cmd/mkimage", "-out", out, "-arch", "arm64", "-disk", "arm64", "-version", "slotstest", "-commit", "test")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the disk image: %v\n%s", err, b)
		}
		src = filepath.Join(out, "gateway-slotstest-arm64.img")
	}
	qemu := testkit.RequireTool(t, "qemu-system-aarch64")
	for _, tool := range []string{"mcopy", "mdir", "mmd", "mdel", "mren", "cp"} {
		testkit.RequireTool(t, tool)
	}
	const firmware = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
	if _, err := os.Stat(firmware); err != nil {
		t.Fatalf("UEFI firmware: %v (apt-get install qemu-efi-aarch64)", err)
	}

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
	deadline := time.Now().Add(time.Duration(n) * 100 * time.Second)
	for {
		data, _ := os.ReadFile(log)
		slots = slots[:0]
		for _, m := range lineRE.FindAllStringSubmatch(string(data), -1) {
			slots = append(slots, m[1])
		}
		if len(slots) >= n {
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
			t.Fatalf("%d of %d boots within %s (%v):\n%s", len(slots), n, time.Duration(n)*100*time.Second, slots, tail(data))
		}
	}
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
