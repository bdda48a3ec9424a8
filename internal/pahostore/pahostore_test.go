package pahostore

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The store never shares a PUBLISH with paho: what it is given may be
// written by paho's writer afterwards, and what it hands out may be written
// by paho's resume (the Dup flag), so neither may be the stored packet.
func TestPublishPacketsAreNeverShared(t *testing.T) {
	s := New()
	s.Open()
	defer s.Close()
	given := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	given.Qos, given.MessageID, given.TopicName, given.Payload = 1, 7, "a/b", []byte("on")
	s.Put("o.7", given)
	given.Dup, given.RemainingLength = true, 99 // what paho's writer and resume do to theirs

	first := s.Get("o.7").(*packets.PublishPacket)
	if first == given || first.Dup || first.RemainingLength == 99 {
		t.Fatalf("the store kept the packet it was given: %+v", first)
	}
	first.Dup = true
	second := s.Get("o.7").(*packets.PublishPacket)
	if second == first || second.Dup {
		t.Fatalf("the store handed out its own packet: %+v", second)
	}
	if second.MessageID != 7 || second.TopicName != "a/b" || string(second.Payload) != "on" || second.Qos != 1 {
		t.Fatalf("copy lost fields: %+v", second)
	}
	sub := packets.NewControlPacket(packets.Subscribe)
	s.Put("o.8", sub)
	if s.Get("o.8") != sub {
		t.Fatal("other packets are kept as they are")
	}
}
