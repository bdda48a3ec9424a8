package discovery

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// floodDevices is zigbee2mqtt's retained bridge/devices list as the attack of
// issue 14 sent it: n minimal entries (about 85 bytes each, 1.7 MB for
// 20,000).
func floodDevices(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"ieee_address":"0x%016x","type":"EndDevice","friendly_name":"flood_%05d"}`, 0xf1000000+i, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// procStatusKiB reads one "VmXxx:   123 kB" line of /proc/self/status.
func procStatusKiB(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// heapAfterGC is the live Go heap once a full collection ran.
func heapAfterGC() (live, totalAlloc uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.TotalAlloc
}

// peakHeap samples the heap's object bytes until stop is called and returns
// the largest value seen (runtime/metrics does not stop the world).
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

// BenchmarkRetainedFlood: one retained zigbee2mqtt/bridge/devices list of
// 20,000 entries (1.7 MB) is on the broker; discovery starts, reads it
// (Ready) and saves the registry. Reported: the live heap it leaves (after
// GC, relative to before start; the in-process broker's own copy of the
// message is in both), the peak heap while it ran, bytes allocated, peak RSS
// of the process (VmHWM, reset before each start where the kernel allows) and
// devices kept.
func BenchmarkRetainedFlood(b *testing.B) {
	const n = 20000
	payload := floodDevices(n)
	srv, addr := startBroker(b, nil)
	if err := srv.Publish("zigbee2mqtt/bridge/devices", payload, true, 0); err != nil {
		b.Fatal(err)
	}
	var live, peak, alloc, hwm, devs float64
	for b.Loop() {
		root := b.TempDir()
		base, total0 := heapAfterGC()
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
		stop := peakHeap()
		s := startService(b, root, addr, nil)
		<-s.Ready()
		if err := s.reg.Flush(); err != nil {
			b.Fatal(err)
		}
		p := stop()
		after, total1 := heapAfterGC()
		live += float64(int64(after)-int64(base)) / (1 << 20)
		peak += float64(int64(p)-int64(base)) / (1 << 20)
		alloc += float64(total1-total0) / (1 << 20)
		hwm += float64(procStatusKiB("VmHWM")) / 1024
		devs += float64(s.reg.Len())
		s.Close()
	}
	N := float64(b.N)
	b.ReportMetric(live/N, "MiB-live-heap")
	b.ReportMetric(peak/N, "MiB-peak-heap")
	b.ReportMetric(alloc/N, "MiB-allocated")
	b.ReportMetric(hwm/N, "MiB-peak-RSS")
	b.ReportMetric(devs/N, "devices")
	b.ReportMetric(float64(len(payload))/(1<<20), "MiB-payload")
}
