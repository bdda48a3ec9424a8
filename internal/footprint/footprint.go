// Package footprint keeps a long-running gatewayd process's resident memory
// small once its start-up is over: the box is an appliance with little RAM,
// and what a process touched only while starting should not stay charged
// to it for the weeks it then runs idle.
package footprint

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// Keep runs in the background for the life of the process: once start-up
// is over it settles the process (Settle), and while the process is idle it
// trims the heap (see keeper). It only ever acts when the process is idle,
// so a broker under load (or under benchmark) is left alone. A failure is
// written to warn: it costs memory, nothing else.
func Keep(warn io.Writer) {
	go keep(warn)
}

// Settle is for when start-up is over. It returns the Go heap's free
// pages to the kernel (the GC keeps them for reuse; at start-up they are
// the garbage of config parsing, the store's replay and such, which an idle
// process will not need again) and lets go of the pages of the binary that
// start-up mapped (see DropBinaryPages). It returns the KiB of the binary
// let go.
func Settle() (int64, error) {
	debug.FreeOSMemory()
	return DropBinaryPages()
}

// DropBinaryPages unmaps the pages of the process's own executable that no
// longer need to be mapped: the read-only mappings (code and constant data)
// that hold no private copy. Nothing is lost: the next use of such a page
// maps it again from the page cache (a minor fault), or reads it from the
// file if the kernel has since reclaimed it. What this changes is that the
// code run only at start-up (and everything the kernel's read-ahead mapped
// around it, which on current kernels is most of the binary) stops counting
// as this process's resident memory and becomes ordinary, reclaimable page
// cache. Writable mappings, and any mapping with an anonymous (copied)
// page, are left alone: dropping those would lose data.
func DropBinaryPages() (int64, error) {
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &self); err != nil {
		return 0, err
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	var dropped int64
	for _, m := range parseSmaps(data) {
		if m.dev != self.Dev || m.inode != self.Ino || strings.Contains(m.perms, "w") || m.anonKB != 0 {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED); errno != 0 {
			return dropped, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, errno)
		}
		dropped += m.rssKB
	}
	return dropped, nil
}

// mapping is one entry of /proc/self/smaps, with the fields used here.
type mapping struct {
	start, end    uintptr
	perms         string
	dev           uint64
	inode         uint64
	rssKB, anonKB int64
}

// parseSmaps reads the mappings of a /proc/PID/smaps text. A header line is
// "start-end perms offset major:minor inode [path]"; the "Name: N kB" lines
// that follow belong to it.
func parseSmaps(data []byte) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if strings.HasSuffix(f[0], ":") { // a field of the current mapping
			if len(out) == 0 || len(f) < 2 {
				continue
			}
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Rss:":
				out[len(out)-1].rssKB = n
			case "Anonymous:":
				out[len(out)-1].anonKB = n
			}
			continue
		}
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		maj, min, ok2 := strings.Cut(f[3], ":")
		if !ok || !ok2 {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		ma, err3 := strconv.ParseUint(maj, 16, 32)
		mi, err4 := strconv.ParseUint(min, 16, 32)
		ino, err5 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
			continue
		}
		out = append(out, mapping{start: uintptr(start), end: uintptr(end), perms: f[1], dev: mkdev(ma, mi), inode: ino})
	}
	return out
}

// mkdev is the kernel's encoding of a device number, as stat returns it.
func mkdev(major, minor uint64) uint64 {
	return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor &^ 0xff) << 12) | ((major &^ 0xfff) << 32)
}
