package slots

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homebox/gateway/rootfs/bundle"
)

const (
	partSize = 4 << 20
	options  = "root=PARTLABEL=rootA gateway.slot=a ro console=ttyAMA0 quiet panic=10"
)

var key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// fixture is a box in a folder: partitions are regular files, the ESP a
// plain folder, as a fresh image has them (slot A only).
type fixture struct {
	*Box
	dir     string
	reboots atomic.Int32
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir}
	f.Box = &Box{
		Root:     filepath.Join(dir, "root"),
		ESP:      filepath.Join(dir, "esp"),
		Cmdline:  filepath.Join(dir, "cmdline"),
		SysBlock: filepath.Join(dir, "sys/class/block"),
		DevDir:   filepath.Join(dir, "dev"),
		Arch:     "arm64",
		Reboot:   func() error { f.reboots.Add(1); return nil },
		Now:      func() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) },
	}
	mkdir(t, f.Root, f.DevDir, filepath.Join(f.ESP, EntriesDir), filepath.Join(f.ESP, "a"), filepath.Join(f.Root, "data/lost+found"))
	write(t, filepath.Join(f.SysBlock, "vda/uevent"), "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
	for i, label := range []string{"ESP", "rootA", "rootB", "data"} {
		dev := "vda" + string(rune('1'+i))
		write(t, filepath.Join(f.SysBlock, dev, "uevent"), "MAJOR=254\nMINOR=1\nDEVNAME="+dev+"\nDEVTYPE=partition\nPARTN=1\nPARTNAME="+label+"\n")
		if err := os.WriteFile(filepath.Join(f.DevDir, dev), bytes.Repeat([]byte{0xee}, partSize), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(f.ESP, LoaderConf), LoaderConfText)
	write(t, filepath.Join(f.ESP, "a/vmlinuz"), "kernel 1.0.0")
	write(t, filepath.Join(f.ESP, "a/initrd.img"), "initrd 1.0.0")
	a := Entry{Slot: A, Version: "1.0.0", Serial: 100, Options: options}
	write(t, filepath.Join(f.ESP, EntriesDir, a.Name()), string(a.Marshal()))
	pub, err := bundle.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.Root, bundle.TrustedKeysDir, "dev.pub"), string(pub))
	f.boot(t)
	return f
}

func mkdir(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// boot does what systemd-boot does at power-on (boot_entry_compare in
// systemd's src/boot/boot.c; the Boot Loader Specification): entries with
// no tries left last, then by sort-key, then version highest first, then
// id highest first; the first one the default glob matches boots; a
// counted entry loses a try (renamed) before it boots. The kernel
// command line becomes the entry's options.
func (f *fixture) boot(t *testing.T) Slot {
	t.Helper()
	dir := filepath.Join(f.ESP, EntriesDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".conf") {
			continue
		}
		e, err := ParseEntry(de.Name(), []byte(read(t, filepath.Join(dir, de.Name()))))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(read(t, filepath.Join(dir, de.Name())), "sort-key "+SortKey+"\n") {
			t.Fatalf("%s has no sort-key", de.Name())
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if ab, bb := a.Counting && a.Left == 0, b.Counting && b.Left == 0; ab != bb {
			return bb
		}
		if a.Serial != b.Serial {
			return a.Serial > b.Serial
		}
		return a.Slot > b.Slot
	})
	conf := read(t, filepath.Join(f.ESP, LoaderConf))
	pattern := strings.TrimSpace(strings.SplitN(strings.SplitN(conf, "default ", 2)[1], "\n", 2)[0])
	for _, e := range entries {
		id := strings.TrimSuffix(e.Name(), ".conf")
		if ok, _ := path.Match(pattern, id); !ok {
			continue
		}
		for _, p := range []string{"vmlinuz", "initrd.img"} {
			if _, err := os.Stat(filepath.Join(f.ESP, string(e.Slot), p)); err != nil {
				t.Fatalf("entry %s boots a missing %s: %v", e.Name(), p, err)
			}
		}
		if e.Counting && e.Left > 0 {
			n := e
			n.Left, n.Done = e.Left-1, e.Done+1
			if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(dir, n.Name())); err != nil {
				t.Fatal(err)
			}
		}
		write(t, f.Cmdline, "BOOT_IMAGE=/"+string(e.Slot)+"/vmlinuz "+e.Options+"\n")
		return e.Slot
	}
	t.Fatalf("no entry matches %q: %v", pattern, entries)
	return ""
}

type parts struct{ rootfs, kernel, initrd []byte }

func partsOf(version string, rootfsSize int) parts {
	r := bytes.Repeat([]byte("hsqs"+version), rootfsSize/(4+len(version))+1)[:rootfsSize]
	return parts{r, []byte("kernel " + version), []byte("initrd " + version)}
}

func makeBundle(t *testing.T, version string, serial int64, arch string, p parts) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := bundle.Write(&buf, bundle.Manifest{Version: version, Serial: serial, Arch: arch}, []bundle.Part{
		{Name: bundle.RootFS, Size: int64(len(p.rootfs)), R: bytes.NewReader(p.rootfs)},
		{Name: bundle.Kernel, Size: int64(len(p.kernel)), R: bytes.NewReader(p.kernel)},
		{Name: bundle.Initrd, Size: int64(len(p.initrd)), R: bytes.NewReader(p.initrd)},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openBundle(t *testing.T, data []byte) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Open(bytes.NewReader(data), int64(len(data)), []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) status(t *testing.T) Status {
	t.Helper()
	st, err := f.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *fixture) entryNames(t *testing.T) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(f.ESP, EntriesDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func (f *fixture) wantEntries(t *testing.T, want ...string) {
	t.Helper()
	if got := strings.Join(f.entryNames(t), " "); got != strings.Join(want, " ") {
		t.Fatalf("entries %q, want %q", got, strings.Join(want, " "))
	}
}

func (f *fixture) slotBytes(t *testing.T, s Slot, n int) []byte {
	t.Helper()
	dev, err := f.Device(s.PartLabel())
	if err != nil {
		t.Fatal(err)
	}
	return []byte(read(t, dev))[:n]
}

// The whole life of two updates: A boots; B is installed, tried, marked
// good and stays the default; the next update goes into A over its old
// entry.
func TestUpdateCycle(t *testing.T) {
	f := newFixture(t)
	st := f.status(t)
	if st.Booted != (SlotInfo{Slot: A, Version: "1.0.0", Serial: 100, State: "good"}) || st.Other.State != "empty" || st.LastUpdate != nil {
		t.Fatalf("fresh box: %+v", st)
	}
	p2 := partsOf("2.0.0", 100<<10)
	if err := f.Install(context.Background(), openBundle(t, makeBundle(t, "2.0.0", 200, "arm64", p2))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.slotBytes(t, B, len(p2.rootfs)), p2.rootfs) {
		t.Fatal("slot B does not hold the new root filesystem")
	}
	if got := read(t, filepath.Join(f.ESP, "b/vmlinuz")); got != "kernel 2.0.0" {
		t.Fatalf("b/vmlinuz %q", got)
	}
	if got := read(t, filepath.Join(f.ESP, "b/initrd.img")); got != "initrd 2.0.0" {
		t.Fatalf("b/initrd.img %q", got)
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b+3.conf")
	wantEntry := "title Gateway 2.0.0 (slot B)\nversion 200\nsort-key gateway\nlinux /b/vmlinuz\ninitrd /b/initrd.img\n" +
		"options root=PARTLABEL=rootB gateway.slot=b ro console=ttyAMA0 quiet panic=10\n"
	if got := read(t, filepath.Join(f.ESP, EntriesDir, "gateway-b+3.conf")); got != wantEntry {
		t.Fatalf("entry:\n%s\nwant:\n%s", got, wantEntry)
	}
	if got := read(t, filepath.Join(f.ESP, "a/vmlinuz")); got != "kernel 1.0.0" {
		t.Fatalf("slot A's kernel changed: %q", got)
	}
	st = f.status(t)
	if st.Other != (SlotInfo{Slot: B, Version: "2.0.0", Serial: 200, State: "trial", TriesLeft: 3}) || st.LastUpdate.State != StateInstalled || st.LastUpdate.Slot != B {
		t.Fatalf("after install: %+v %+v", st, st.LastUpdate)
	}

	if s := f.boot(t); s != B {
		t.Fatalf("booted %s after the install, want b", s)
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b+2-1.conf")
	st = f.status(t)
	if st.Booted.State != "trial" || st.Booted.TriesLeft != 2 || st.LastUpdate.State != StateTrial {
		t.Fatalf("on trial: %+v %+v", st.Booted, st.LastUpdate)
	}
	if changed, err := f.MarkGood(); err != nil || !changed {
		t.Fatalf("mark good: %v %v", changed, err)
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b.conf")
	if changed, err := f.MarkGood(); err != nil || changed {
		t.Fatalf("mark good again: %v %v", changed, err)
	}
	st = f.status(t)
	if st.Booted != (SlotInfo{Slot: B, Version: "2.0.0", Serial: 200, State: "good"}) || st.Other.Version != "1.0.0" || st.LastUpdate.State != StateGood {
		t.Fatalf("marked good: %+v", st)
	}
	if last := read(t, filepath.Join(f.Root, ResultFile)); !strings.Contains(last, `"state": "good"`) {
		t.Fatalf("update.json: %s", last)
	}
	for range 3 {
		if s := f.boot(t); s != B {
			t.Fatalf("a good B must stay the default, booted %s", s)
		}
	}

	// The next update: into A, now inactive, over its old entry.
	p3 := partsOf("3.0.0", 120<<10)
	if err := f.Install(context.Background(), openBundle(t, makeBundle(t, "3.0.0", 300, "arm64", p3))); err != nil {
		t.Fatal(err)
	}
	f.wantEntries(t, "gateway-a+3.conf", "gateway-b.conf")
	if !strings.Contains(read(t, filepath.Join(f.ESP, EntriesDir, "gateway-a+3.conf")), "options root=PARTLABEL=rootA gateway.slot=a ro console=ttyAMA0 quiet panic=10\n") {
		t.Fatal("options not carried over from B's entry")
	}
	if !bytes.Equal(f.slotBytes(t, A, len(p3.rootfs)), p3.rootfs) || read(t, filepath.Join(f.ESP, "a/vmlinuz")) != "kernel 3.0.0" {
		t.Fatal("slot A not rewritten")
	}
	if !bytes.Equal(f.slotBytes(t, B, len(p2.rootfs)), p2.rootfs) {
		t.Fatal("the booted slot B was touched")
	}
	if s := f.boot(t); s != A {
		t.Fatalf("booted %s, want the new a", s)
	}
	if _, err := f.MarkGood(); err != nil {
		t.Fatal(err)
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b.conf")
	if s := f.boot(t); s != A {
		t.Fatalf("booted %s", s)
	}
}

// A slot that never comes up runs out of its three tries and the old one
// boots by itself.
func TestFallbackAfterThreeTries(t *testing.T) {
	f := newFixture(t)
	if err := f.Install(context.Background(), openBundle(t, makeBundle(t, "2.0.0", 200, "arm64", partsOf("2.0.0", 1000)))); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if s := f.boot(t); s != B {
			t.Fatalf("try %d booted %s", i+1, s)
		}
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b+0-3.conf")
	if s := f.boot(t); s != A {
		t.Fatalf("after three failed tries booted %s, want a", s)
	}
	st := f.status(t)
	if st.Booted.Slot != A || st.Other.State != "bad" || st.LastUpdate.State != StateRolledBack ||
		st.LastUpdate.Message != "2.0.0 did not come up in slot B: slot A runs again" {
		t.Fatalf("after fallback: %+v %+v", st, st.LastUpdate)
	}
	if changed, err := f.MarkGood(); err != nil || changed {
		t.Fatalf("mark good on the old slot: %v %v", changed, err)
	}
	// The next try replaces the bad entry.
	if err := f.Install(context.Background(), openBundle(t, makeBundle(t, "2.0.1", 210, "arm64", partsOf("2.0.1", 1000)))); err != nil {
		t.Fatal(err)
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b+3.conf")
	if s := f.boot(t); s != B {
		t.Fatalf("booted %s", s)
	}
}

func TestGuard(t *testing.T) {
	ctx := context.Background()
	t.Run("works", func(t *testing.T) {
		f := newFixture(t)
		if err := f.Install(ctx, openBundle(t, makeBundle(t, "2.0.0", 200, "arm64", partsOf("2.0.0", 1000)))); err != nil {
			t.Fatal(err)
		}
		f.boot(t)
		var calls atomic.Int32
		check := func(context.Context) error {
			if calls.Add(1) < 3 {
				return errors.New("broker not accepting yet")
			}
			return nil
		}
		if err := f.Guard(ctx, GuardOptions{Check: check, Timeout: time.Minute, Interval: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		f.wantEntries(t, "gateway-a.conf", "gateway-b.conf")
		if calls.Load() != 3 || f.reboots.Load() != 0 {
			t.Fatalf("%d checks, %d reboots", calls.Load(), f.reboots.Load())
		}
		// A good slot: nothing to guard, no check.
		if err := f.Guard(ctx, GuardOptions{Check: check, Timeout: time.Minute}); err != nil || calls.Load() != 3 {
			t.Fatalf("guard of a good slot: %v, %d checks", err, calls.Load())
		}
	})
	t.Run("never works", func(t *testing.T) {
		f := newFixture(t)
		if err := f.Install(ctx, openBundle(t, makeBundle(t, "2.0.0", 200, "arm64", partsOf("2.0.0", 1000)))); err != nil {
			t.Fatal(err)
		}
		f.boot(t)
		check := func(context.Context) error { return errors.New("dial tcp 127.0.0.1:1883: connection refused") }
		if err := f.Guard(ctx, GuardOptions{Check: check, Timeout: 50 * time.Millisecond, Interval: 5 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if f.reboots.Load() != 1 {
			t.Fatalf("%d reboots", f.reboots.Load())
		}
		f.wantEntries(t, "gateway-a.conf", "gateway-b+0-1.conf")
		if s := f.boot(t); s != A {
			t.Fatalf("booted %s after the guard gave up", s)
		}
		last := f.status(t).LastUpdate
		if last.State != StateRolledBack || !strings.Contains(last.Message, "2.0.0 did not work within 50ms after boot: dial tcp 127.0.0.1:1883: connection refused") {
			t.Fatalf("last update %+v", last)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		f := newFixture(t)
		if err := f.Install(ctx, openBundle(t, makeBundle(t, "2.0.0", 200, "arm64", partsOf("2.0.0", 1000)))); err != nil {
			t.Fatal(err)
		}
		f.boot(t)
		cctx, cancel := context.WithCancel(ctx)
		check := func(context.Context) error { cancel(); return errors.New("not yet") }
		if err := f.Guard(cctx, GuardOptions{Check: check, Timeout: time.Minute}); !errors.Is(err, context.Canceled) {
			t.Fatalf("guard: %v", err)
		}
		f.wantEntries(t, "gateway-a.conf", "gateway-b+2-1.conf")
	})
}

func TestRollbackByHand(t *testing.T) {
	f := newFixture(t)
	if err := f.Rollback(); err == nil || !strings.Contains(err.Error(), "slot B has no bootable entry to fall back to") {
		t.Fatalf("rollback with one slot: %v", err)
	}
	f.wantEntries(t, "gateway-a.conf")
	if err := f.Install(context.Background(), openBundle(t, makeBundle(t, "2.0.0", 200, "arm64", partsOf("2.0.0", 1000)))); err != nil {
		t.Fatal(err)
	}
	f.boot(t)
	if _, err := f.MarkGood(); err != nil {
		t.Fatal(err)
	}
	if err := f.Rollback(); err != nil {
		t.Fatal(err)
	}
	f.wantEntries(t, "gateway-a.conf", "gateway-b+0.conf")
	if s := f.boot(t); s != A {
		t.Fatalf("booted %s after a rollback", s)
	}
	if st := f.status(t); st.LastUpdate.State != StateRolledBack || st.LastUpdate.Message != "rolled back by hand" || st.Other.State != "bad" {
		t.Fatalf("%+v %+v", st, st.LastUpdate)
	}
}

// snapshot hashes every file of the fixture but the kernel command line.
func (f *fixture) snapshot(t *testing.T) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, f.dir)] = sha256.Sum256(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) unchanged(t *testing.T, before map[string][32]byte) {
	t.Helper()
	after := f.snapshot(t)
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// A bundle that is refused changes no byte of a slot, the ESP or the data
// partition, whether bundle.Open or Install refuses it.
func TestRefusedChangesNothing(t *testing.T) {
	f := newFixture(t)
	good := makeBundle(t, "2.0.0", 200, "arm64", partsOf("2.0.0", 1000))
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	var badSig bytes.Buffer
	p := partsOf("2.0.0", 1000)
	bundle.Write(&badSig, bundle.Manifest{Version: "2.0.0", Serial: 200, Arch: "arm64"}, []bundle.Part{
		{Name: bundle.RootFS, Size: int64(len(p.rootfs)), R: bytes.NewReader(p.rootfs)},
		{Name: bundle.Kernel, Size: int64(len(p.kernel)), R: bytes.NewReader(p.kernel)},
		{Name: bundle.Initrd, Size: int64(len(p.initrd)), R: bytes.NewReader(p.initrd)},
	}, otherKey)
	flipped := append([]byte{}, good...)
	flipped[len(flipped)-100] ^= 4 // in the root filesystem (kernel and initrd are 13 bytes each)

	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"bad signature", badSig.Bytes(), "update bundle refused: bad signature: not signed by any of the 1 update key(s) this gateway trusts"},
		{"other arch", makeBundle(t, "2.0.0", 200, "amd64", partsOf("2.0.0", 1000)), "update bundle refused: bundle 2.0.0 is for amd64, this gateway is arm64"},
		{"truncated", good[:len(good)-100], "update bundle refused: truncated:"},
		{"damaged", flipped, "update bundle refused: part rootfs.squashfs"},
		{"not newer", makeBundle(t, "0.9.0", 90, "arm64", partsOf("0.9.0", 1000)), "install: bundle 0.9.0 (serial 90) is not newer than the running 1.0.0 (serial 100)"},
		{"same", makeBundle(t, "1.0.0", 100, "arm64", partsOf("1.0.0", 1000)), "is not newer than the running 1.0.0"},
		{"not a squashfs", makeBundle(t, "2.0.0", 200, "arm64", parts{[]byte("PK\x03\x04 a zip"), []byte("k"), []byte("i")}), `install: rootfs.squashfs in bundle 2.0.0 is not a squashfs (no "hsqs" at its start)`},
		{"too big", makeBundle(t, "2.0.0", 200, "arm64", partsOf("2.0.0", partSize+1)), "install: the root filesystem is 4194305 bytes, slot B's partition"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.snapshot(t)
			upload := filepath.Join(t.TempDir(), "x.update")
			write(t, upload, string(tc.data))
			_, err := f.InstallFile(context.Background(), upload)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %q", err, tc.msg)
			}
			f.unchanged(t, before)
			var ie *InstallError
			var be *bundle.Error
			if !errors.As(err, &be) && !(errors.As(err, &ie) && ie.Refused) {
				t.Fatalf("%T %v is neither a bundle.Error nor a refused InstallError", err, err)
			}
		})
	}
	t.Run("upload too big", func(t *testing.T) {
		before := f.snapshot(t)
		_, err := f.InstallReader(context.Background(), bytes.NewReader(good), int64(len(good)-1))
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("error %v", err)
		}
		f.unchanged(t, before)
	})
	t.Run("upload refused", func(t *testing.T) {
		before := f.snapshot(t)
		_, err := f.InstallReader(context.Background(), bytes.NewReader(badSig.Bytes()), 1<<20)
		if err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Fatalf("error %v", err)
		}
		f.unchanged(t, before)
	})
	t.Run("not an image", func(t *testing.T) {
		write(t, f.Cmdline, "console=ttyS0 root=/dev/sda2\n")
		defer f.boot(t)
		before := f.snapshot(t)
		_, err := f.InstallFile(context.Background(), writeTemp(t, good))
		if err == nil || !strings.Contains(err.Error(), "no gateway.slot= in") || !strings.Contains(err.Error(), "was not started from the gateway's disk image") {
			t.Fatalf("error %v", err)
		}
		f.unchanged(t, before)
	})
	if m, err := f.InstallReader(context.Background(), bytes.NewReader(good), 1<<20); err != nil || m.Version != "2.0.0" {
		t.Fatalf("the good bundle after all that: %v %v", m, err)
	}
	if s := f.boot(t); s != B {
		t.Fatalf("booted %s", s)
	}
	// B on trial: A is its way back, so nothing may overwrite A yet.
	before := f.snapshot(t)
	err := f.Install(context.Background(), openBundle(t, makeBundle(t, "3.0.0", 300, "arm64", partsOf("3.0.0", 1000))))
	if err == nil || !strings.Contains(err.Error(), "install: the running slot B (2.0.0) is still on trial") {
		t.Fatalf("install during a trial: %v", err)
	}
	f.unchanged(t, before)
}

// cutReader hands out a bundle's bytes and cancels the install (the power
// cut, as far as the files are concerned) once a given offset is read.
type cutReader struct {
	r      io.ReaderAt
	at     int64
	cancel context.CancelFunc
}

func (c *cutReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > c.at && c.cancel != nil {
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}

// An install stopped at any point leaves A booting; so does one whose
// bundle file changed after it was checked.
func TestInterruptedInstall(t *testing.T) {
	p := partsOf("2.0.0", 3<<20) // several 1 MiB chunks
	data := makeBundle(t, "2.0.0", 200, "arm64", p)
	hdr := int64(len(data) - len(p.rootfs) - len(p.kernel) - len(p.initrd))
	cuts := map[string]int64{
		"in the root filesystem": hdr + 1<<20 + 5,
		"in the kernel":          hdr + int64(len(p.rootfs)) + 2,
		"in the initrd":          hdr + int64(len(p.rootfs)+len(p.kernel)) + 2,
	}
	for name, at := range cuts {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			// A B entry from an earlier install must not survive either.
			old := Entry{Slot: B, Version: "0.5.0", Serial: 50, Options: options}
			write(t, filepath.Join(f.ESP, EntriesDir, old.Name()), string(old.Marshal()))
			cr := &cutReader{r: bytes.NewReader(data), at: int64(len(data))}
			bd, err := bundle.Open(cr, int64(len(data)), []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, "arm64")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cr.at, cr.cancel = at, cancel
			err = f.Install(ctx, bd)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("install: %v", err)
			}
			f.wantEntries(t, "gateway-a.conf")
			if s := f.boot(t); s != A {
				t.Fatalf("booted %s", s)
			}
			if last := f.status(t).LastUpdate; last.State != StateFailed || !strings.Contains(last.Message, "context canceled") {
				t.Fatalf("last update %+v", last)
			}
		})
	}
	t.Run("changed after the check", func(t *testing.T) {
		f := newFixture(t)
		buf := append([]byte{}, data...)
		bd := openBundle(t, buf)
		buf[len(buf)-1] ^= 1 // the initrd's last byte
		err := f.Install(context.Background(), bd)
		if err == nil || !strings.Contains(err.Error(), "install: writing initrd.img to the ESP: initrd.img changed since it was checked") ||
			!strings.Contains(err.Error(), "not switching to it") {
			t.Fatalf("install: %v", err)
		}
		f.wantEntries(t, "gateway-a.conf")
		if s := f.boot(t); s != A {
			t.Fatalf("booted %s", s)
		}
	})
}

func writeTemp(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "b.update")
	write(t, p, string(data))
	return p
}

// A power cut during an install leaves "installing" on the data
// partition; after the reboot it reads as failed, and Guard records that.
func TestPowerCutRecord(t *testing.T) {
	f := newFixture(t)
	write(t, filepath.Join(f.Root, ResultFile), `{"version":"2.0.0","serial":200,"slot":"b","state":"installing","time":"2026-12-04T11:00:00Z"}`)
	last := f.status(t).LastUpdate
	if last.State != StateFailed || last.Message != "interrupted (power cut or restart) while installing 2.0.0 into slot B; slot A runs on: install it again" {
		t.Fatalf("%+v", last)
	}
	if err := f.Guard(context.Background(), GuardOptions{Check: func(context.Context) error { return nil }, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(f.Root, ResultFile)); !strings.Contains(got, `"state": "failed"`) {
		t.Fatalf("update.json %s", got)
	}
}
