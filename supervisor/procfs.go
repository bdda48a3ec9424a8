package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// readProcStat reads /proc/PID/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(pid, b)
}

func parseProcStat(pid int, b []byte) (procStat, error) {
	// The command name is in parentheses and may itself hold ") ", so the
	// fields start after the last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 > len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[end+2:]))
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields, want at least 24", pid, len(f)+2)
	}
	num := func(i int) uint64 {
		n, _ := strconv.ParseUint(f[i], 10, 64)
		return n
	}
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	return procStat{
		PID:        pid,
		State:      f[0][0],
		PPID:       ppid,
		PGID:       pgid,
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
