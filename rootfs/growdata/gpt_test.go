package growdata

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/homebox/gateway/internal/testkit"
)

// newDisk makes a disk image file of size MiB with sgdisk: a 2 MiB
// partition "boot" and a 3 MiB partition named last after it, as the
// image's data partition sits after the others.
func newDisk(t *testing.T, mib int64, last string) string {
	t.Helper()
	sgdisk := testkit.RequireTool(t, "sgdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, mib<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sgdisk, "-n", "1:2048:+2M", "-c", "1:boot", "-n", "2:0:+3M", "-c", "2:"+last, p).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	return p
}

// grow runs GrowGPT on the file as it is now.
func grow(t *testing.T, p, name string) (Result, error) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return GrowGPT(f, f, st.Size(), 512, name)
}

// sgdiskCheck has sgdisk verify both GPTs and returns partition 2's last sector.
func sgdiskCheck(t *testing.T, p string) uint64 {
	t.Helper()
	out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
	if err != nil || !regexp.MustCompile(`No problems found`).Match(out) {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
	out, err = exec.Command("sgdisk", "-i", "2", p).CombinedOutput()
	m := regexp.MustCompile(`Last sector: (\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("sgdisk -i 2: %v\n%s", err, out)
	}
	n, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return n
}

// TestGrowGPT: the image (8 MiB) written to a bigger disk (64 MiB): the
// data partition ends on the last MiB boundary before the backup GPT,
// both GPTs check with sgdisk, and a second run changes nothing.
func TestGrowGPT(t *testing.T) {
	p := newDisk(t, 8, "data")
	before := sgdiskCheck(t, p)
	if err := os.Truncate(p, 64<<20); err != nil { // flashed to a bigger disk
		t.Fatal(err)
	}
	res, err := grow(t, p, "data")
	if err != nil {
		t.Fatal(err)
	}
	// 64 MiB = 131072 sectors; the backup GPT takes the last 33, so the
	// last whole MiB ends at sector 129023.
	if !res.Grown() || res.Partition != 2 || res.OldEnd != before || res.NewEnd != 129023 {
		t.Errorf("GrowGPT: %+v; want partition 2 grown from %d to 129023", res, before)
	}
	if got := sgdiskCheck(t, p); got != 129023 {
		t.Errorf("sgdisk says partition 2 ends at %d, want 129023", got)
	}
	again, err := grow(t, p, "data")
	if err != nil || again.Grown() || again.NewEnd != 129023 {
		t.Errorf("second GrowGPT: %+v %v; want nothing changed", again, err)
	}
}

// TestGrowGPTRefuses: a disk whose last partition is not the data
// partition, or a file with no GPT, is left alone with a clear error.
func TestGrowGPTRefuses(t *testing.T) {
	p := newDisk(t, 8, "rootB")
	if err := os.Truncate(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := grow(t, p, "data"); err == nil || !regexp.MustCompile(`last partition is "rootB", not "data"`).MatchString(err.Error()) {
		t.Errorf("GrowGPT on a disk ending with rootB: %v", err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Error("GrowGPT refused but changed the disk")
	}

	blank := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(blank, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := grow(t, blank, "data"); err == nil || !regexp.MustCompile(`no GPT header`).MatchString(err.Error()) {
		t.Errorf("GrowGPT on a blank disk: %v", err)
	}
}
