package footprint

import (
	"fmt"
	"io"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go runtime collects when the heap has doubled, and never below a
// 4 MiB heap goal: an idle process with ~1.5 MiB live keeps allocating a
// little (the broker's $SYS topics and store, gatewayd's sampler) and so
// carries up to ~2.5 MiB of garbage, resident, between collections that may
// be minutes apart. While a process is idle a collection costs ~1 ms, so it
// is run (and the freed pages returned) as soon as there is something worth
// returning. Under load nothing changes: the runtime's own pacing (GOGC)
// decides, so throughput is untouched.
const (
	Tick = 2 * time.Second
	// IdleBelow: a process that allocated less than this over the last
	// Tick is idle (a broker moving a thousand messages a second allocates
	// more; one publishing $SYS every second to the console, less).
	IdleBelow = 1 << 20
	// WorthTrimming: what must have been allocated since the last trim
	// (so could be garbage) before another is worth its collection.
	WorthTrimming = 1 << 20
)

// SettleAfter are the ages at which the process is settled, at its first
// idle tick from then on: the box's start (broker ready, discovery and the
// console's stats client connected) takes well under a second on the
// development machine, so at 5 s start-up is normally over; at 1 min a slow
// start (a large store to replay, Home Assistant's burst of retained
// configs when it starts) is over too.
var SettleAfter = []time.Duration{5 * time.Second, time.Minute}

type action int

const (
	none   action = iota
	trim          // collect and return the freed pages
	settle        // trim, and unmap the binary's start-up pages
)

// keeper decides, at each Tick, from the process's age and running total of
// allocated bytes.
type keeper struct {
	lastTick, lastTrim uint64
	settled            int // how many of SettleAfter are done
}

func (k *keeper) tick(age time.Duration, allocated uint64) action {
	recent := allocated - k.lastTick
	k.lastTick = allocated
	if recent >= IdleBelow {
		return none
	}
	if k.settled < len(SettleAfter) && age >= SettleAfter[k.settled] {
		for k.settled < len(SettleAfter) && age >= SettleAfter[k.settled] {
			k.settled++
		}
		k.lastTrim = allocated
		return settle
	}
	if allocated-k.lastTrim < WorthTrimming {
		return none
	}
	k.lastTrim = allocated
	return trim
}

func keep(warn io.Writer) {
	start := time.Now()
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	k := keeper{lastTick: s[0].Value.Uint64(), lastTrim: s[0].Value.Uint64()}
	for range time.Tick(Tick) {
		metrics.Read(s)
		switch k.tick(time.Since(start), s[0].Value.Uint64()) {
		case trim:
			debug.FreeOSMemory()
		case settle:
			if _, err := Settle(); err != nil {
				fmt.Fprintln(warn, "warning: returning start-up memory:", err)
			}
		}
	}
}
