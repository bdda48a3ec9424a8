package topics

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkTree10kTopics records into a tree of 10,000 topics (the issue's
// figure) and reports the tree's heap once full; make bench runs it.
func BenchmarkTree10kTopics(b *testing.B) {
	topics := make([]string, 10000)
	for i := range topics {
		topics[i] = fmt.Sprintf("home/room%d/sensor%d/value", i/100, i%100)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := NewTree(0)
	at := time.Now()
	for i, t := range topics {
		tr.Record(Message{Topic: t, Payload: []byte(`{"temperature":` + strconv.Itoa(i%40) + `.5,"battery":97}`), At: at})
	}
	for range HistoryLen {
		for i, t := range topics {
			tr.Record(Message{Topic: t, Payload: []byte(strconv.Itoa(i % 40)), At: at})
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	b.ResetTimer()
	for i := range b.N {
		tr.Record(Message{Topic: topics[i%len(topics)], Payload: []byte("21.5"), At: at})
	}
	b.StopTimer()
	_ = tr.List("home", 1, at)
	b.ReportMetric(heap, "MiB-heap-10k-topics")
}
