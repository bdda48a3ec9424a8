package inorder

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func msg(created int64, id uint16) packets.Packet {
	return packets.Packet{Created: created, PacketID: id, FixedHeader: packets.FixedHeader{Type: packets.Publish}}
}

func ids(ms []packets.Packet) []uint16 {
	out := make([]uint16, len(ms))
	for i, m := range ms {
		out[i] = m.PacketID
	}
	return out
}

func TestSortQueued(t *testing.T) {
	cases := []struct {
		name string
		in   []packets.Packet
		want []uint16
	}{
		{"one second, shuffled", []packets.Packet{msg(5, 3), msg(5, 1), msg(5, 2)}, []uint16{1, 2, 3}},
		{"seconds first", []packets.Packet{msg(6, 1), msg(5, 9), msg(5, 8)}, []uint16{8, 9, 1}},
		{"wrap inside one second", []packets.Packet{msg(7, 2), msg(7, 65534), msg(7, 1), msg(7, 65535)}, []uint16{65534, 65535, 1, 2}},
		{"16-bit created wrap does not matter", []packets.Packet{msg(65536+1, 1), msg(65535, 2)}, []uint16{2, 1}},
		{"single", []packets.Packet{msg(1, 42)}, []uint16{42}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			SortQueued(c.in)
			got := ids(c.in)
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}
