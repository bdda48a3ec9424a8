package brokers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory is a process's resident memory, in KiB, as the kernel counts it.
// RSS counts every page the process maps, so two processes that map the
// same binary (gatewayd run and its gatewayd broker child) each count its
// text in full; PSS splits each shared page between the processes that map
// it, so PSS adds up across processes and RSS does not.
type Memory struct {
	RSS, RSSAnon, RSSFile int64 // /proc/PID/status: VmRSS, RssAnon, RssFile
	PSS, PSSAnon, PSSFile int64 // /proc/PID/smaps_rollup: Pss, Pss_Anon, Pss_File
}

// ReadMemory reads a process's Memory from /proc.
func ReadMemory(pid int) (Memory, error) {
	st, err := kbFields(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", "RssAnon", "RssFile")
	if err != nil {
		return Memory{}, err
	}
	sm, err := kbFields(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss", "Pss_Anon", "Pss_File")
	if err != nil {
		return Memory{}, err
	}
	return Memory{
		RSS: st["VmRSS"], RSSAnon: st["RssAnon"], RSSFile: st["RssFile"],
		PSS: sm["Pss"], PSSAnon: sm["Pss_Anon"], PSSFile: sm["Pss_File"],
	}, nil
}

// kbFields reads the "Name:   N kB" lines named by keys from a /proc file
// (status and smaps_rollup share that form); every key must be there.
func kbFields(path string, keys ...string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	got := map[string]int64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || !want[name] {
			continue
		}
		f := strings.Fields(v)
		if len(f) < 1 {
			return nil, fmt.Errorf("%s: %q has no value", path, name)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		got[name] = n
	}
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			return nil, fmt.Errorf("%s: no %s line", path, k)
		}
	}
	return got, nil
}
