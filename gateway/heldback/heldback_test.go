package heldback_test

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/homebox/gateway/gateway/heldback"
	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"
)

// v5 frames, hand-built: the test needs exact control of Receive Maximum
// and of which delivery it acknowledges.

func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func frame(first byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(mqttwire.AppendLength([]byte{first}, len(body)), body...)
}

// connect: MQTT 5, session expiry 300 s, Receive Maximum 1.
func connect(id string, cleanStart bool) []byte {
	flags := byte(0)
	if cleanStart {
		flags = 0x02
	}
	props := []byte{0x11, 0, 0, 1, 0x2c, 0x21, 0, 1} // session expiry 300, receive maximum 1
	return frame(0x10, str("MQTT"), []byte{5, flags, 0, 60, byte(len(props))}, props, str(id))
}

type device struct {
	t *testing.T
	c net.Conn
	r *mqttwire.Reader
}

func dial(t *testing.T, addr, id string, cleanStart bool) *device {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	d := &device{t: t, c: c, r: mqttwire.NewReader(c, 4096, 1<<20)}
	d.send(connect(id, cleanStart))
	if p := d.next(5 * time.Second); p == nil || p.Type != mqttwire.CONNACK {
		t.Fatalf("no CONNACK: %+v", p)
	}
	return d
}

func (d *device) send(b []byte) {
	d.t.Helper()
	if _, err := d.c.Write(b); err != nil {
		d.t.Fatal(err)
	}
}

// next is the next packet within d, or nil when none came.
func (d *device) next(within time.Duration) *mqttwire.Packet {
	_ = d.c.SetReadDeadline(time.Now().Add(within))
	p, err := d.r.Next()
	if err != nil {
		return nil
	}
	return &p
}

// publish reads a PUBLISH and returns its packet id and payload.
func (d *device) publish(within time.Duration) (uint16, string, bool) {
	d.t.Helper()
	p := d.next(within)
	if p == nil {
		return 0, "", false
	}
	if p.Type != mqttwire.PUBLISH {
		d.t.Fatalf("want PUBLISH, got type %d", p.Type)
	}
	b := p.Body
	n := int(b[0])<<8 | int(b[1])
	b = b[2+n:]
	id := uint16(b[0])<<8 | uint16(b[1])
	b = b[2:]
	return id, string(b[1+int(b[0]):]), true // skip the property block (short here)
}

// lateDeliveryAfterReconnect: Receive Maximum 1, two QoS 1 messages; the
// second is held back, sent late once the first is acknowledged; the device
// goes away without acknowledging it and comes straight back (no wait: a
// dead connection is taken over). It reports whether the second came again.
func lateDeliveryAfterReconnect(t *testing.T, addr string, publish func(payload string)) bool {
	t.Helper()
	d := dial(t, addr, "lamp", true)
	d.send(frame(0x82, []byte{0, 1, 0}, str("t"), []byte{1})) // SUBSCRIBE id 1, no properties, QoS 1
	if p := d.next(5 * time.Second); p == nil || p.Type != mqttwire.SUBACK {
		t.Fatalf("no SUBACK: %+v", p)
	}
	publish("first")
	publish("second")
	id, m, ok := d.publish(5 * time.Second)
	if !ok || m != "first" {
		t.Fatalf("first delivery: %q %v", m, ok)
	}
	d.send(frame(0x40, []byte{byte(id >> 8), byte(id)})) // PUBACK
	if _, m, ok = d.publish(5 * time.Second); !ok || m != "second" {
		t.Fatalf("the held-back delivery after the PUBACK: %q %v", m, ok)
	}
	again := dial(t, addr, "lamp", false)
	d.c.Close()
	// 2 s: a resend comes at once after the CONNACK, on loopback.
	_, m, ok = again.publish(2 * time.Second)
	return ok && m == "second"
}

// bareMochi serves mochi with hooks; publish is its inline client's.
func bareMochi(t *testing.T, hooks ...func(*mqtt.Server) mqtt.Hook) (string, func(string)) {
	s := mqtt.New(&mqtt.Options{InlineClient: true})
	all := []mqtt.Hook{new(auth.AllowHook)}
	for _, h := range hooks {
		all = append(all, h(s))
	}
	addr := testkit.ServeMochi(t, s, all...)
	return addr, func(p string) {
		if err := s.Publish("t", []byte(p), false, 1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLateDeliveryIsResent(t *testing.T) {
	testkit.RequireTool(t, "mosquitto_pub")
	bin := testkit.Build(t, "./cmd/gatewayd")
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	port := testkit.FreePort(t)
	testkit.WriteFile(t, conf, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port))
	box := testkit.Start(t, bin, "broker", "--config", conf)
	box.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="broker running"`))
	boxPublish := func(p string) {
		if out, code := testkit.Run(t, 10*time.Second, "mosquitto_pub", "-p", fmt.Sprint(port), "-q", "1", "-t", "t", "-m", p); code != 0 {
			t.Fatalf("mosquitto_pub: %d %s", code, out)
		}
	}
	addr, publish := bareMochi(t, func(s *mqtt.Server) mqtt.Hook { return heldback.New(s) })
	for name, try := range map[string]func() bool{
		"mochi with the hook": func() bool { return lateDeliveryAfterReconnect(t, addr, publish) },
		"gatewayd broker":     func() bool { return lateDeliveryAfterReconnect(t, fmt.Sprintf("127.0.0.1:%d", port), boxPublish) },
	} {
		if !try() {
			t.Errorf("%s: the delivery sent late and not acknowledged was not sent again after the reconnect", name)
		}
	}
}

// mochi still deletes a held-back delivery as it sends it; when this fails,
// mochi keeps it in flight: drop gateway/heldback.
func TestMochiStillDeletesWhatItSendsLate(t *testing.T) {
	addr, publish := bareMochi(t)
	if lateDeliveryAfterReconnect(t, addr, publish) {
		t.Fatal("bare mochi resent the late delivery: remove gateway/heldback")
	}
}
