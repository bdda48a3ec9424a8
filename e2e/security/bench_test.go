package security

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/bench/brokers"
	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"
)

// BenchmarkAttack is issue 14's side-by-side figure: each broker, fresh for
// each attack, on loopback with the benchmark's common conf (bench/brokers:
// password logins, persistence), under
//
//	claims-6, claims-60: that many logged-in clients each send a PUBLISH
//	  header claiming 268,435,455 bytes, then 1 KB, and hold the connection;
//	silent-1000: 1,000 sockets that never send CONNECT.
//
// Reported: peak-rss-MiB (VmRSS sampled every 20 ms for holdFor), pid-changed
// (1 when the broker process died or was replaced), cut-off (connections the
// broker closed within holdFor; for silent-1000 within the CONNECT deadline
// and 2 s). Run with `make bench`; GW_SECURITY_GATEWAYD_BEFORE names an older
// gatewayd for a third column. It is a benchmark, not a test: nothing is
// asserted.
func BenchmarkAttack(b *testing.B) {
	specs := []brokers.Spec{{Name: "gatewayd", Kind: brokers.Gatewayd, Bin: testkit.Build(b, "./cmd/gatewayd")}}
	if old := os.Getenv("GW_SECURITY_GATEWAYD_BEFORE"); old != "" {
		specs = append(specs, brokers.Spec{Name: "gatewayd-before", Kind: brokers.Gatewayd, Bin: old})
	}
	if bin, err := brokers.MosquittoBin(); err == nil {
		specs = append(specs, brokers.Spec{Name: "mosquitto", Kind: brokers.Mosquitto, Bin: bin})
	} else {
		b.Logf("mosquitto not installed (make test-deps): %v", err)
	}
	attacks := []struct {
		name string
		run  func(*brokers.Broker, brokers.Credentials) []net.Conn
		hold time.Duration
	}{
		{"claims-6", func(br *brokers.Broker, c brokers.Credentials) []net.Conn { return claims(b, br, c, 6) }, 3 * time.Second},
		{"claims-60", func(br *brokers.Broker, c brokers.Credentials) []net.Conn { return claims(b, br, c, 60) }, 3 * time.Second},
		{"silent-1000", func(br *brokers.Broker, _ brokers.Credentials) []net.Conn { return silent(b, br, 1000) }, 10*time.Second + 2*time.Second},
	}
	cred := brokers.Credentials{Username: "bench", Password: "bench-secret"}
	for _, a := range attacks {
		for _, spec := range specs {
			b.Run(a.name+"/"+spec.Name, func(b *testing.B) {
				for b.Loop() {
					br, err := brokers.Start(context.Background(), spec, b.TempDir(), cred, nil)
					if err != nil {
						b.Fatal(err)
					}
					pid := br.PID()
					before, _ := br.RSSKB()
					conns := a.run(br, cred)
					peak, cut := watch(br, conns, a.hold)
					changed := 0.0
					if !br.Alive() || br.PID() != pid {
						changed = 1
					}
					for _, c := range conns {
						_ = c.Close()
					}
					_ = br.Stop()
					b.ReportMetric(float64(before)/1024, "idle-rss-MiB")
					b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
					b.ReportMetric(changed, "pid-changed")
					b.ReportMetric(float64(cut), "cut-off")
					b.ReportMetric(float64(len(conns)), "conns")
				}
			})
		}
	}
}

// claims logs n clients in and has each send a 268,435,455-byte claim
// and 1 KB.
func claims(b *testing.B, br *brokers.Broker, cred brokers.Credentials, n int) []net.Conn {
	var out []net.Conn
	for i := range n {
		c, err := net.DialTimeout("tcp", br.Addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		pkt := mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: fmt.Sprintf("claim-%d", i), Username: cred.Username, Password: cred.Password, KeepAlive: 60, CleanSession: true})
		_, _ = c.Write(pkt)
		ack := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(ack); err != nil || ack[0] != 0x20 {
			b.Fatalf("claim client %d: no CONNACK: % x %v", i, ack, err)
		}
		_ = c.SetReadDeadline(time.Time{})
		_, _ = c.Write(claim(268435455))
		out = append(out, c)
	}
	return out
}

// silent opens n sockets that send nothing.
func silent(b *testing.B, br *brokers.Broker, n int) []net.Conn {
	var out []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", br.Addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// watch samples the broker's VmRSS for d and counts the connections it
// closed meanwhile.
func watch(br *brokers.Broker, conns []net.Conn, d time.Duration) (peakKB int64, cut int) {
	end := time.Now().Add(d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if closedWithin(c, time.Until(end)) {
				mu.Lock()
				cut++
				mu.Unlock()
			}
		}()
	}
	for time.Now().Before(end) {
		if kb, err := br.RSSKB(); err == nil {
			peakKB = max(peakKB, kb)
		}
		time.Sleep(20 * time.Millisecond) // a sampling period, not a wait for a state
	}
	wg.Wait()
	return peakKB, cut
}
