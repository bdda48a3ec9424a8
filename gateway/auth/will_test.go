package auth

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/internal/testkit"
)

// connectWithWill connects as alice with a will on topic, checks the
// CONNACK says yes, and drops the connection without DISCONNECT, which
// publishes the will if the broker kept it.
func connectWithWill(t *testing.T, addr string, version byte, id, topic string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30,
			ClientIdentifier: id, UsernameFlag: true, Username: []byte("alice"),
			PasswordFlag: true, Password: []byte("alice-pw"),
			WillFlag: true, WillTopic: topic, WillPayload: []byte("gone"),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	// CONNACK: type, length, flags, code (v5: properties follow).
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("v%d will on %s: CONNACK % x (%v), want accepted", version, topic, ack, err)
	}
}

// TestDeniedWillDropped: a will on a topic the ACL does not let the client
// write does not keep it out (as in Mosquitto 2.0, checked with Debian's
// 2.0.11) and is never published; an allowed one is.
func TestDeniedWillDropped(t *testing.T) {
	s, addr, _ := aclBroker(t)
	var mu sync.Mutex
	var got []string
	if err := s.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		mu.Lock()
		got = append(got, pk.TopicName)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []byte{4, 5} {
		// The denied will goes first: once its client is gone, mochi has
		// passed the point where it publishes a will.
		connectWithWill(t, addr, v, "denied", "denied/will")
		testkit.WaitFor(t, 5*time.Second, "the denied client gone", func() bool {
			_, ok := s.Clients.Get("denied")
			return !ok
		})
		connectWithWill(t, addr, v, "allowed", "allowed/will")
		testkit.WaitFor(t, 5*time.Second, "the allowed will", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) > 0
		})
		mu.Lock()
		if len(got) != 1 || got[0] != "allowed/will" {
			t.Errorf("v%d: wills published %q, want only allowed/will", v, got)
		}
		got = nil
		mu.Unlock()
	}
}
