package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStat is the part of /proc/PID/stat the supervisor reads.
type procStat struct {
	PID        int
	State      byte // R, S, D, Z, ...
	PPID       int
	PGID       int
	CPUTicks   uint64 // utime+stime+cutime+cstime, in clock ticks
	StartTicks uint64 // since boot, in clock ticks: with the pid, it names a process uniquely
	RSSBytes   uint64 // resident set, the same count as VmRSS in /proc/PID/status
}

// clockTicks is USER_HZ, 100 on every Linux architecture the box runs on
// (sysconf is out of reach without cgo).
const clockTicks = 100

var pageSize = uint64(os.Getpagesize())

// readProcStat reads /proc/PID/stat. The sampler reads every process's
// file once a second for as long as the box runs, so this allocates only
// the path: the file goes into a buffer on the stack and is parsed in place.
func readProcStat(pid int) (procStat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return procStat{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var buf [1024]byte // a stat line is ~300 bytes; the command name is at most 64
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return procStat{}, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return parseProcStat(pid, buf[:n])
}

func parseProcStat(pid int, b []byte) (procStat, error) {
	// The command name is in parentheses and may itself hold ") ", so the
	// fields start after the last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 > len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	// f[i] is field i+3 of proc(5); only the first 22 are needed.
	var f [22][]byte
	nf := 0
	for rest := b[end+2:]; nf < len(f); {
		rest = bytes.TrimLeft(rest, " \n")
		if len(rest) == 0 {
			break
		}
		i := bytes.IndexAny(rest, " \n")
		if i < 0 {
			i = len(rest)
		}
		f[nf], rest = rest[:i], rest[i:]
		nf++
	}
	if nf < len(f) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields, want at least 24", pid, nf+2)
	}
	num := func(i int) uint64 {
		var n uint64
		for _, c := range f[i] {
			if c < '0' || c > '9' {
				return 0
			}
			n = n*10 + uint64(c-'0')
		}
		return n
	}
	return procStat{
		PID:        pid,
		State:      f[0][0],
		PPID:       int(num(1)),
		PGID:       int(num(2)),
		CPUTicks:   num(11) + num(12) + num(13) + num(14),
		StartTicks: num(19),
		RSSBytes:   num(21) * pageSize,
	}, nil
}

// allProcs reads the stat of every process; processes that vanish while
// being read are skipped.
func allProcs() ([]procStat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading /proc: %w", err)
	}
	out := make([]procStat, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// groupMembers lists the live (non-zombie) processes of a process group.
func groupMembers(pgid int) []procStat {
	procs, _ := allProcs()
	var out []procStat
	for _, p := range procs {
		if p.PGID == pgid && p.State != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// bootID names the current boot, so records from before a reboot are not
// mistaken for live processes.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
