package bridge

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/internal/testkit"
)

// benchOut publishes b.N messages to the local broker at addr through a
// real client and measures how many per second reach the remote one.
func benchOut(b *testing.B, localAddr, remoteAddr string, qos byte) {
	var n atomic.Int64
	sub := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + remoteAddr).SetClientID("bench-sub").
		SetDefaultPublishHandler(func(paho3.Client, paho3.Message) { n.Add(1) }))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("up/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	pub := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + localAddr).SetClientID("bench-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	payload := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	var last paho3.Token
	for i := 0; i < b.N; i++ {
		last = pub.Publish("bench/x", qos, false, payload)
		if qos == 0 && i%200 == 199 {
			last.Wait() // keep QoS 0 from outrunning every buffer
		}
	}
	last.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for n.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	got := n.Load()
	b.ReportMetric(float64(got)/el.Seconds(), "fwd_msgs/s")
	b.ReportMetric(float64(got)/float64(b.N), "delivered")
}

// BenchmarkOut is the gateway bridge forwarding out, mochi -> mosquitto.
func BenchmarkOut(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			remote := startMosquitto(b, "max_queued_messages 0")
			local, localAddr := newMochi(b, false)
			m := startManager(b, local, "", conn("bench", remote.addr(), topic("bench/#", "out", qos, "", "up/")))
			testkit.WaitFor(b, 10*time.Second, "bridge up", func() bool { return m.Stats()[0].State == "up" })
			benchOut(b, localAddr, remote.addr(), qos)
		})
	}
}

// BenchmarkMosquittoOut is the same bridge run by Debian's mosquitto,
// mosquitto -> mosquitto, for comparison.
func BenchmarkMosquittoOut(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			remote := startMosquitto(b, "max_queued_messages 0")
			local := startMosquitto(b, fmt.Sprintf("max_queued_messages 0\nconnection bench\naddress %s\nrestart_timeout 1\ntopic bench/# out %d \"\" up/\n", remote.addr(), qos))
			_, atRemote := client(b, remote.addr(), "probe", "up/#")
			probe, _ := client(b, local.addr(), "probe-pub", "")
			testkit.WaitFor(b, 15*time.Second, "mosquitto bridge up", func() bool {
				publish(b, probe, "bench/probe", 1, false, "p")
				return atRemote.count("up/bench/probe", "") > 0
			})
			benchOut(b, local.addr(), remote.addr(), qos)
		})
	}
}
