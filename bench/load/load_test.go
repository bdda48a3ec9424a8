package load

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/mqttwire"
)

// tcpPair is a real loopback connection: the test plays the broker on one
// end.
func tcpPair(t *testing.T) (broker net.Conn, c *client) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		a, _ := l.Accept()
		accepted <- a
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	broker = <-accepted
	t.Cleanup(func() { nc.Close(); broker.Close() })
	return broker, &client{id: "test", conn: nc.(*net.TCPConn), r: mqttwire.NewReader(nc, 256, 1<<16)}
}

func publishFrame(b []byte, index int, seq uint64, qos byte, id uint16) []byte {
	p := newPayload(index)
	stampPayload(p, seq, time.Now().UnixNano())
	return mqttwire.AppendPublish(b, "t/x", qos, id, p)
}

func TestSubscriberCountsGapsDuplicatesAndStrangers(t *testing.T) {
	broker, c := tcpPair(t)
	s := &Spec{Publishers: 2, PerPub: 4}
	sc := &subConn{c: c, expect: 8, next: make([]uint64, 2)}

	var frames []byte
	// Publisher 0: 0 1 3 2 (3 jumps over 2: a gap; 2 then comes backwards)
	// Publisher 1: 0 1 2 3, with a repeat of 1; one message from index 7.
	for _, seq := range []uint64{0, 1, 3, 2} {
		frames = publishFrame(frames, 0, seq, 1, uint16(seq+1))
	}
	for _, seq := range []uint64{0, 1, 1, 2, 3} {
		frames = publishFrame(frames, 1, seq, 0, 0)
	}
	frames = publishFrame(frames, 7, 0, 0, 0)
	frames = mqttwire.AppendPingreq(frames) // not a PUBLISH: ignored
	if _, err := broker.Write(frames); err != nil {
		t.Fatal(err)
	}
	// The broker side closes after sending: the reader must end.
	acks := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 16) // four PUBACKs, in however many writes
		n, _ := io.ReadFull(broker, buf)
		acks <- buf[:n]
		broker.(*net.TCPConn).CloseWrite()
	}()
	sc.read(s)

	if sc.received != 7 || sc.gaps != 1 || sc.dups != 2 || sc.foreign != 1 {
		t.Fatalf("received %d gaps %d dups %d foreign %d; want 7, 1, 2, 1", sc.received, sc.gaps, sc.dups, sc.foreign)
	}
	// Every QoS 1 message is acknowledged.
	got := <-acks
	want := mqttwire.AppendPuback(mqttwire.AppendPuback(mqttwire.AppendPuback(mqttwire.AppendPuback(nil, 1), 2), 4), 3)
	if string(got) != string(want) {
		t.Fatalf("PUBACKs %x, want %x", got, want)
	}
	if sc.first == 0 || sc.last.Load() < sc.first {
		t.Fatalf("arrival times first %d last %d", sc.first, sc.last.Load())
	}
}

func TestLatencyAndPercentiles(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(i + 1)
	}
	if p := percentile(v, 0.5); p != 50 {
		t.Fatalf("p50 %g", p)
	}
	if p := percentile(v, 0.99); p != 99 {
		t.Fatalf("p99 %g", p)
	}
	if p := percentile(v[:1], 0.99); p != 1 {
		t.Fatalf("p99 of one %g", p)
	}
}

func TestSpecValidationNamesWhatIsWrong(t *testing.T) {
	s := Spec{Role: "flood", Conns: 0, QoS: 2}
	err := s.Validate()
	if err == nil {
		t.Fatal("bad spec accepted")
	}
	for _, want := range []string{`role "flood"`, "addr is empty", "conns 0", "qos 2", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	sub := Spec{Role: RoleSub, Addr: "x", Conns: 1, Timeout: time.Second}
	if err := sub.Validate(); err == nil || !strings.Contains(err.Error(), "sub: topic filter is empty") {
		t.Fatalf("sub without topic: %v", err)
	}
}

func TestServeRefusesABadSpecWithAnError(t *testing.T) {
	var out strings.Builder
	err := Serve(context.Background(), strings.NewReader(`{"role":"pub"}`+"\n"), &out)
	if err == nil || !strings.Contains(out.String(), `"error"`) {
		t.Fatalf("Serve: %v, output %q", err, out.String())
	}
}
