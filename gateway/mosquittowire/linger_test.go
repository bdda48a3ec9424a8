package mosquittowire_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDisconnectReadableOverUnreadInput: a v5 client over Receive Maximum
// that keeps sending gets the DISCONNECT (0x93) and then EOF, not a reset
// that drops it. The broker stops reading at the DISCONNECT; closing with
// the rest unread would make the kernel reset the connection.
func TestDisconnectReadableOverUnreadInput(t *testing.T) {
	addr := startOurs(t, t.TempDir(), "allow_anonymous true\nmax_inflight_messages 1\n")
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		var burst []byte
		burst = append(burst, v5("a").bytes()...)
		burst = append(burst, publish(true, 2, "t", 1, "p")...)
		burst = append(burst, publish(true, 2, "t", 2, "p")...)
		for len(burst) < 512<<10 {
			burst = append(burst, publish(true, 0, "t", 0, string(make([]byte, 1000)))...)
		}
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			_, _ = c.Write(burst) // fails once the broker closes: expected
		}()
		<-wrote // all sent, or the broker closed: its answer waits unread
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reset after %x", got)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(got, []byte{0xe0, 0x01, 0x93}) {
			t.Fatalf("got %x, want the DISCONNECT 0x93 last", got)
		}
	}
}
