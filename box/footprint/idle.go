package footprint

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Idle trimming. The Go runtime collects when the heap has doubled, and
// never below a 4 MiB heap goal: an idle process with ~1.5 MiB live keeps
// allocating a little (the broker's $SYS topics and store, gatewayd's
// sampler) and so carries up to ~2.5 MiB of garbage, resident, between
// collections that may be minutes apart. While a process is idle, a
// collection costs ~1 ms, so it is run (and the freed pages returned) as
// soon as there is something worth returning. Under load nothing changes:
// the runtime's own pacing (GOGC) decides, so throughput is untouched.
const (
	TrimEvery = 10 * time.Second
	// IdleBelow: a process that allocated less than this over the last
	// TrimEvery is idle (a broker moving even a few hundred messages a
	// second allocates more).
	IdleBelow = 1 << 20
	// WorthTrimming: what must have been allocated since the last trim
	// (so could be garbage) before another is worth its collection.
	WorthTrimming = 512 << 10
)

// idleTrimmer decides from the process's running total of allocated bytes.
type idleTrimmer struct {
	lastTick, lastTrim uint64
}

// tick is called every TrimEvery with the allocation total so far and
// reports whether to trim now.
func (t *idleTrimmer) tick(allocated uint64) bool {
	recent := allocated - t.lastTick
	t.lastTick = allocated
	if recent >= IdleBelow || allocated-t.lastTrim < WorthTrimming {
		return false
	}
	t.lastTrim = allocated
	return true
}

// trimWhenIdle runs forever, trimming the heap at each TrimEvery tick on
// which the process is idle and has garbage worth returning.
func trimWhenIdle() {
	var t idleTrimmer
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	t.lastTick, t.lastTrim = s[0].Value.Uint64(), s[0].Value.Uint64()
	for range time.Tick(TrimEvery) {
		metrics.Read(s)
		if t.tick(s[0].Value.Uint64()) {
			debug.FreeOSMemory()
		}
	}
}
