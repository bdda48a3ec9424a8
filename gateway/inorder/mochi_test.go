package inorder

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestMochiStillSortsQueuedBySixteenBitSeconds runs mochi's own Inflight,
// without our hook: GetAll sorts a session's queue by uint16(Created), so a
// message queued just after the 16-bit second counter wraps comes out
// before one queued just before it, and messages of one second come out in
// map order.
//
// When this fails, mochi orders its queue by arrival upstream (no upstream
// issue found; searched mochi-mqtt/server issues for "inflight resend order
// uint16", "GetAll sort Created", "offline messages out of order"): check
// the order in which it resends after a reconnect, then drop our mend,
// gateway/inorder.
func TestMochiStillSortsQueuedBySixteenBitSeconds(t *testing.T) {
	now := time.Now().Unix()
	wrap := now - now%65536 + 65535 // the last second before uint16 wraps
	in := mqtt.NewInflights()
	in.Set(packets.Packet{PacketID: 1, Created: wrap})
	in.Set(packets.Packet{PacketID: 2, Created: wrap + 1})
	got := in.GetAll(false)
	if len(got) != 2 || got[0].PacketID != 2 {
		t.Fatalf("mochi resent %v in order: the 16-bit wrap no longer reorders its queue; drop gateway/inorder if same-second order holds too", ids(got))
	}

	// Same second: map order. Ten fresh queues of 20 all in id order would
	// be a 1 in (20!)^10 chance, unless mochi keeps arrival order.
	for range 10 {
		in := mqtt.NewInflights()
		for id := uint16(1); id <= 20; id++ {
			in.Set(packets.Packet{PacketID: id, Created: now})
		}
		if !inIDOrder(in.GetAll(false)) {
			return // still map order within a second
		}
	}
	t.Fatal("mochi resent messages of one second in arrival order ten times in a row: it keeps order now")
}

func inIDOrder(pks []packets.Packet) bool {
	for i := 1; i < len(pks); i++ {
		if pks[i].PacketID < pks[i-1].PacketID {
			return false
		}
	}
	return true
}
