package gateway

import (
	"errors"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// recorder reads packets and notes which it saw; it can reject them.
type recorder struct {
	mqtt.HookBase
	name   string
	seen   *[]string
	reject bool
	extra  byte // one more event it claims, 0: none
}

func (r *recorder) ID() string { return r.name }
func (r *recorder) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || (r.extra != 0 && b == r.extra)
}
func (r *recorder) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	*r.seen = append(*r.seen, r.name)
	if r.reject {
		return pk, packets.ErrRejectPacket
	}
	pk.TopicName += "+" + r.name
	return pk, nil
}

func TestHookGroup(t *testing.T) {
	var seen []string
	g := newHookGroup()
	if err := g.add(&recorder{name: "publish", seen: &seen, extra: mqtt.OnPublish}); err == nil {
		t.Fatal("a member handling OnPublish was taken: the group would never run it")
	}
	a, b := &recorder{name: "a", seen: &seen}, &recorder{name: "b", seen: &seen}
	if err := g.add(a); err != nil {
		t.Fatal(err)
	}
	g.addReader(b)
	cl := &mqtt.Client{}
	plain := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "lamp"}
	if pk, err := g.OnPacketRead(cl, plain); err != nil || pk.TopicName != "lamp" || len(seen) != 0 {
		t.Errorf("plain QoS 0 publish: %q %v, readers %v; want it through untouched", pk.TopicName, err, seen)
	}
	sys := plain
	sys.TopicName = "$SYS/broker/connection/x/state"
	if pk, err := g.OnPacketRead(cl, sys); err != nil || pk.TopicName != sys.TopicName+"+a+b" {
		t.Errorf("$ publish: %q %v; want both readers in order", pk.TopicName, err)
	}
	seen = nil
	a.reject = true
	qos1 := plain
	qos1.FixedHeader.Qos = 1
	if _, err := g.OnPacketRead(cl, qos1); !errors.Is(err, packets.ErrRejectPacket) || len(seen) != 1 {
		t.Errorf("rejected by the first reader: %v, readers %v; want the rejection and no later reader", err, seen)
	}
	if !g.Provides(mqtt.OnPacketRead) || g.Provides(mqtt.OnPublish) || g.Provides(mqtt.OnDisconnect) {
		t.Error("the group provides exactly what its members handle")
	}
}
