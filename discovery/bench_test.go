package discovery

import (
	"fmt"
	"testing"
	"time"

	mqttsrv "github.com/mochi-mqtt/server/v2"

	"github.com/homebox/gateway/discovery/registry"
)

// BenchmarkRetainedLoad: 10,000 retained announces on the broker, discovery
// starts and reads them all (ready), then one new announce is published and
// polled for through Devices().
func BenchmarkRetainedLoad(b *testing.B) {
	const n = 10000
	srv, addr := startBroker(b, func(o *mqttsrv.Options) {
		// mochi drops what does not fit a client's write queue; the retained
		// burst of one subscription must fit.
		o.Capabilities = mqttsrv.NewDefaultServerCapabilities()
		o.Capabilities.MaximumClientWritesPending = 4 * n
	})
	for i := range n {
		id := fmt.Sprintf("dev-%05d", i)
		payload := fmt.Sprintf(`{"id":%q,"name":"Device %d","model":"bench","firmware":"1.0","address":"192.0.2.%d","availability_topic":"bench/%s/status"}`, id, i, i%250+1, id)
		if err := srv.Publish("gateway/announce/"+id, []byte(payload), true, 0); err != nil {
			b.Fatal(err)
		}
	}
	var ready, visible time.Duration
	for i := 0; b.Loop(); i++ {
		root := b.TempDir()
		t0 := time.Now()
		// More devices than the default cap: this measures reading speed.
		s := startServiceWith(b, root, addr, nil, Limits{Registry: registry.Limits{MaxDevices: 2 * n}})
		<-s.Ready()
		ready += time.Since(t0)
		if got := len(s.Devices()); got < n {
			b.Fatalf("ready with %d devices, want %d", got, n)
		}
		id := fmt.Sprintf("new-%d", i)
		t1 := time.Now()
		if err := srv.Publish("gateway/announce/"+id, []byte(`{"id":"`+id+`","name":"New"}`), false, 0); err != nil {
			b.Fatal(err)
		}
		for {
			if _, ok := deviceWhere(s, func(d Device) bool { return d.ID == "id-"+id }); ok {
				break
			}
			if time.Since(t1) > 10*time.Second {
				b.Fatal("new announce never visible")
			}
		}
		visible += time.Since(t1)
		s.Close()
	}
	b.ReportMetric(float64(ready.Milliseconds())/float64(b.N), "ms/ready")
	b.ReportMetric(float64(visible.Microseconds())/1000/float64(b.N), "ms/visible")
}
