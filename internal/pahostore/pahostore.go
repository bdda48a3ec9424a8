// Package pahostore is the message store for the box's own paho clients
// (discovery, the console's stats). It mends a data race in paho.mqtt.golang
// v1.5.1 (upstream issue #703) from outside, through paho's Store hook.
//
// paho keeps in its store the very PUBLISH packets it hands to its writer
// goroutine, and the writer writes into them as it encodes them. On
// reconnect paho resends what the store holds and marks each PUBLISH as a
// duplicate (its Dup flag) while the writer may be encoding that same
// packet (an OnConnect handler that publishes at QoS 1 puts it in the store
// and on the wire at once). This store keeps a copy of each PUBLISH it is
// given and hands out copies, so the writer's packets and the store's never
// share memory.
package pahostore

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// New returns paho's memory store, holding and handing out copies of
// PUBLISH packets.
func New() mqtt.Store { return copying{mqtt.NewMemoryStore()} }

type copying struct{ *mqtt.MemoryStore }

// Put stores a copy of a PUBLISH (taken before paho gives the packet to its
// writer), anything else as it is.
func (s copying) Put(key string, pk packets.ControlPacket) {
	s.MemoryStore.Put(key, copyPublish(pk))
}

// Get returns a copy of a stored PUBLISH, anything else as stored.
func (s copying) Get(key string) packets.ControlPacket {
	return copyPublish(s.MemoryStore.Get(key))
}

// copyPublish copies a PUBLISH's header and fields; the payload is shared,
// as nobody writes into it.
func copyPublish(pk packets.ControlPacket) packets.ControlPacket {
	if p, ok := pk.(*packets.PublishPacket); ok {
		c := *p
		return &c
	}
	return pk
}
