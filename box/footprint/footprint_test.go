package footprint

import (
	"os"
	"strconv"
	"testing"

	"github.com/homebox/gateway/bench/brokers"
)

const smapsText = `00400000-00b07000 r-xp 00000000 fe:00 9980289                            /usr/bin/gatewayd
Size:               7196 kB
Rss:                1792 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
01281000-01308000 rw-p 00e81000 fe:00 9980289                            /usr/bin/gatewayd
Rss:                 364 kB
Anonymous:           260 kB
7f3ebec10000-7f3ebef00000 rw-p 00000000 00:00 0 
Rss:                1300 kB
Anonymous:          1300 kB
`

func TestParseSmaps(t *testing.T) {
	got := parseSmaps([]byte(smapsText))
	if len(got) != 3 {
		t.Fatalf("%d mappings: %+v", len(got), got)
	}
	m := got[0]
	if m.start != 0x400000 || m.end != 0xb07000 || m.perms != "r-xp" || m.dev != mkdev(0xfe, 0) || m.inode != 9980289 || m.rssKB != 1792 || m.anonKB != 0 {
		t.Errorf("text mapping %+v", m)
	}
	if got[1].perms != "rw-p" || got[1].anonKB != 260 {
		t.Errorf("data mapping %+v", got[1])
	}
	if got[2].inode != 0 || got[2].rssKB != 1300 {
		t.Errorf("anonymous mapping %+v", got[2])
	}
}

// initialised is in the binary's writable data: DropBinaryPages must leave
// its value alone (dropping a written page of a private file mapping would
// bring back the file's bytes).
var initialised = []int{1, 2, 3}

func TestDropBinaryPagesKeepsTheProcessWhole(t *testing.T) {
	initialised[1] = 42 // the page now differs from the file
	before := rssFileKB(t)
	dropped, err := DropBinaryPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if dropped <= 0 || after >= before {
		t.Errorf("dropped %d KiB; RssFile %d -> %d KiB", dropped, before, after)
	}
	// Code and constants come back on use; written data was not touched.
	if initialised[0] != 1 || initialised[1] != 42 || strconv.Itoa(123) != "123" {
		t.Fatalf("data after the drop: %v", initialised)
	}
	if _, err := Settle(); err != nil {
		t.Fatal(err)
	}
}

func rssFileKB(t *testing.T) int64 {
	t.Helper()
	m, err := brokers.ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return m.RSSFile
}

func TestIdleTrimmer(t *testing.T) {
	var tr idleTrimmer
	steps := []struct {
		allocated uint64
		trim      bool
		why       string
	}{
		{100 << 10, false, "idle, but too little garbage yet"},
		{700 << 10, true, "idle with 700 KiB since the last trim"},
		{800 << 10, false, "idle, 100 KiB since the last trim"},
		{10 << 20, false, "busy: 9 MiB in one period"},
		{30 << 20, false, "still busy"},
		{30<<20 + 200<<10, true, "idle again, with the busy period's garbage"},
	}
	for _, s := range steps {
		if got := tr.tick(s.allocated); got != s.trim {
			t.Errorf("at %d KiB: trim %v, want %v (%s)", s.allocated>>10, got, s.trim, s.why)
		}
	}
}
