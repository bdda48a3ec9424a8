package supervisor

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCrashToRestart measures the time from an app's crash (SIGKILL
// to its process) until its new process runs (exec done, pid published).
func BenchmarkCrashToRestart(b *testing.B) {
	s := newSup(b, func(o *Options) { o.SampleInterval = time.Hour })
	sp := child("bench")
	sp.Restart = RestartPolicy{Delay: 0, MinUptime: time.Millisecond, BackoffMax: time.Second}
	events, stop := s.Subscribe()
	defer stop()
	s.start(b, sp)
	st := s.waitReady(b, "bench")
	pid := st.PID
	var samples []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// Let the run outlast min_uptime, so every crash is a stable one.
		waitFor(b, 5*time.Second, "min_uptime", func() bool { return s.get(b, "bench").UptimeSeconds > 0.002 })
		for len(events) > 0 {
			<-events
		}
		b.StartTimer()
		t0 := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		for e := range events {
			if e.PID != 0 && e.PID != pid {
				pid = e.PID
				break
			}
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(samples[len(samples)*9/10].Microseconds())/1000, "ms-p90")
}
