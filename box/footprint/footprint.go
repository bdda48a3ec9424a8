// Package footprint keeps a long-running gatewayd process's resident memory
// small once its start-up is over: the box is an appliance with little RAM,
// and what a process touched only while starting should not stay charged
// to it for the weeks it then runs idle.
package footprint

import "runtime/debug"

// Keep runs in the background for the life of the process: once start-up
// is over it settles the process (Settle), and while the process is idle it
// trims the heap (see keeper). It only ever acts when the process is idle,
// so a broker under load (or under benchmark) is left alone.
func Keep() {
	go keep()
}

// Settle is for when start-up is over: it returns the Go heap's free pages
// to the kernel (the GC keeps them for reuse; at start-up they are the
// garbage of config parsing, the store's replay and such, which an idle
// process will not need again).
//
// The binary's own pages are deliberately left alone: they are shared,
// clean page cache that the kernel reclaims under pressure, and the runtime
// touches most of them again at the next forced GC (every 2 minutes), so
// unmapping them only lowered RSS for a while.
func Settle() { debug.FreeOSMemory() }
