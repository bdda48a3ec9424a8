package durable

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkQoS1Message is the store's work for one QoS 1 message of the
// broker's fan-in (8 publishers → 1 subscriber): the message queued for the
// subscriber, mochi's own ack of the publisher's copy, the subscriber's
// PUBACK; from 8 goroutines at once, as the publishers' readers do it.
func BenchmarkQoS1Message(b *testing.B) {
	opts, err := Options(filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	h := New()
	h.SetOpts(quiet(), nil)
	if err := h.Init(opts); err != nil {
		b.Fatal(err)
	}
	defer h.Stop()
	sub := &mqtt.Client{ID: "subscriber"}
	payload := make([]byte, 64)
	var ids atomic.Uint32
	b.SetParallelism(4) // 8 goroutines on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		pub := &mqtt.Client{ID: "publisher"}
		for pb.Next() {
			id := uint16(ids.Add(1)%65535 + 1)
			pk := packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
				TopicName:   "gwbench/qos1/3", Payload: payload, PacketID: id, Origin: pub.ID, Created: 1_790_000_000,
			}
			h.OnQosPublish(sub, pk, pk.Created, 0)
			h.OnQosComplete(pub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
			h.OnQosComplete(sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
		}
	})
	h.st.mu.Lock()
	b.ReportMetric(float64(h.st.records)/float64(max(1, h.st.writes)), "records/write")
	h.st.mu.Unlock()
}
