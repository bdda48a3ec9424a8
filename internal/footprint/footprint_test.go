package footprint

import (
	"os"
	"strconv"
	"testing"
	"time"

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

func TestKeeperActsOnlyWhenIdle(t *testing.T) {
	var k keeper
	const kib = 1 << 10
	steps := []struct {
		age       time.Duration
		allocated uint64
		want      action
		why       string
	}{
		{5 * time.Second, 50 * kib, settle, "idle at 5 s: start-up is over"},
		{10 * time.Second, 500 * kib, none, "idle, too little garbage yet"},
		{12 * time.Second, 900 * kib, none, "idle, still too little"},
		{14 * time.Second, 1300 * kib, trim, "idle, 1250 KiB since the settle"},
		{20 * time.Second, 20 << 20, none, "busy: 19 MiB in one tick"},
		{25 * time.Second, 40 << 20, none, "still busy"},
		{30 * time.Second, 40<<20 + 100*kib, trim, "idle again, with the busy ticks' garbage"},
		{60 * time.Second, 60 << 20, none, "busy at 1 min: the second settle waits"},
		{65 * time.Second, 60<<20 + 10*kib, settle, "the first idle tick after 1 min"},
		{70 * time.Second, 60<<20 + 20*kib, none, "settled twice; nothing to trim"},
		{99 * time.Hour, 60<<20 + 30*kib, none, "never a third settle"},
	}
	for _, s := range steps {
		if got := k.tick(s.age, s.allocated); got != s.want {
			t.Errorf("at %s, %d KiB: %v, want %v (%s)", s.age, s.allocated/kib, got, s.want, s.why)
		}
	}
}

func TestABusyStartSettlesLater(t *testing.T) {
	var k keeper
	if got := k.tick(5*time.Second, 10<<20); got != none {
		t.Fatalf("busy at 5 s: %v", got)
	}
	if got := k.tick(10*time.Second, 10<<20+1); got != settle {
		t.Fatalf("first idle tick: %v", got)
	}
}
