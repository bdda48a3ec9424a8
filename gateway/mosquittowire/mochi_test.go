package mosquittowire_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/homebox/gateway/internal/testkit"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The TestMochiStill tests run mochi alone (its own TCP listener, no hook
// of ours) and pass while it still answers the way the hook mends. When one
// fails, mochi changed: check, and drop that part of the mend.

// bareMochi starts mochi with caps changed by set, letting everyone in
// unless refuse.
func bareMochi(t *testing.T, refuse bool, set func(*mqtt.Capabilities)) string {
	t.Helper()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.ReceiveMaximum = 20
	if set != nil {
		set(caps)
	}
	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var allow mqtt.Hook = new(auth.AllowHook)
	if refuse {
		allow = new(refuseAll)
	}
	return testkit.ServeMochi(t, s, allow)
}

type refuseAll struct{ mqtt.HookBase }

func (refuseAll) ID() string                                              { return "refuse" }
func (refuseAll) Provides(b byte) bool                                    { return b == mqtt.OnConnectAuthenticate }
func (refuseAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return false }

func wantMochi(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("mochi alone answers\n  %s\nnow, not\n  %s\n(mochi changed: check the mend in gateway/mosquittowire)", got, want)
	}
}

// mochi answers an unknown protocol level 0x82 with no 3.x mapping; Mosquitto 0x01.
func TestMochiStillRefusesUnknownLevelWith0x82(t *testing.T) {
	a := bareMochi(t, false, nil)
	wantMochi(t, exchange(t, a, false, withName(v311("a"), "MQTT", 6).bytes()), "20020082 | closed")
	wantMochi(t, exchange(t, a, false, withName(v311("a"), "MQIsdp", 4).bytes()), "20020082 | closed")
}

// mochi refuses a 3.1.1 empty id with clean session 0 with 0x80; Mosquitto 0x02.
func TestMochiStillRefusesEmptyIDCleanSession0With0x80(t *testing.T) {
	a := bareMochi(t, false, nil)
	wantMochi(t, exchange(t, a, false, cleanFalse(v311("")).bytes()), "20020080 | closed")
}

// mochi refuses a login with v5 0x86 and a reason string; Mosquitto 0x87, none.
func TestMochiStillRefusesLoginWith0x86AndReasonString(t *testing.T) {
	a := bareMochi(t, true, nil)
	wantMochi(t, exchange(t, a, false, withUser(v5("a"), "u", "x").bytes()),
		"202100861e1f001862616420757365726e616d65206f722070617373776f7264210014 | closed")
}

// mochi leaves Topic Alias Maximum out of the CONNACK (and orders the
// properties by id); Mosquitto starts with it.
func TestMochiStillLeavesTopicAliasMaximumOut(t *testing.T) {
	a := bareMochi(t, false, func(c *mqtt.Capabilities) { c.TopicAliasMaximum = 10; c.MaximumQos = 1 })
	wantMochi(t, exchange(t, a, true, v5("a").bytes()), "20080000052100142401 | open")
}

// mochi drops a client's QoS 1 PUBLISH to $SYS without a PUBACK.
func TestMochiStillDropsSysPublishWithoutAck(t *testing.T) {
	a := bareMochi(t, false, nil)
	wantMochi(t, exchange(t, a, true, v5("a").bytes(), publish(true, 1, "$SYS/x", 1, "p")), "2006000003210014 | open")
}

// mochi answers an invalid filter with a SUBACK failure; Mosquitto
// disconnects.
func TestMochiStillAcksInvalidFilter(t *testing.T) {
	a := bareMochi(t, false, nil)
	wantMochi(t, exchange(t, a, true, v5("a").bytes(), subscribe(true, 1, sub{"a/#/b", 0})), "2006000003210014 90040001008f | open")
}

// mochi refuses a shared subscription with No Local; Mosquitto grants it.
func TestMochiStillRefusesSharedNoLocal(t *testing.T) {
	a := bareMochi(t, false, nil)
	wantMochi(t, exchange(t, a, true, v5("a").bytes(), subscribe(true, 1, sub{"$share/g/t", 0x04})), "2006000003210014 900400010082 | open")
}

// mochi acknowledges a QoS 2 PUBLISH above Maximum QoS 1; Mosquitto
// disconnects (v5 0x9B).
func TestMochiStillTakesQoSAboveMaximum(t *testing.T) {
	a := bareMochi(t, false, func(c *mqtt.Capabilities) { c.MaximumQos = 1 })
	wantMochi(t, exchange(t, a, true, v5("a").bytes(), publish(true, 2, "t", 1, "p")), "20080000052100142401 40020001 | open")
}

// mochi's DISCONNECT carries a reason string and an empty property block
// is always written; Mosquitto writes e0 01 93.
func TestMochiStillDisconnectsWithReasonString(t *testing.T) {
	a := bareMochi(t, false, func(c *mqtt.Capabilities) { c.ReceiveMaximum = 1 })
	got := exchange(t, a, false, v5("a").bytes(), publish(true, 2, "t", 1, "p"), publish(true, 2, "t", 2, "p"))
	wantMochi(t, got, "2006000003210001 50020001 e01d931b1f001872656365697665206d6178696d756d206578636565646564 | closed")
}
