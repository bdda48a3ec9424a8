package durable

import (
	"path/filepath"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestMochiStillStoresQueuedWithoutPacketID runs mochi's own bolt storage
// hook, without ours: a queued QoS 1 message is saved without its packet id
// (only the record's key has it), so after a restart every queued message
// of a session loads with id 0 and overwrites the others.
//
// When this fails, mochi saves the packet id upstream (no upstream issue
// found; searched mochi-mqtt/server issues for "bolt hook packet id",
// "inflight lost after restart", "storage key packet id zero"; #406 and
// PR #427 fixed which client restored messages go to, not their ids): the
// key read-back in gateway/durable can go; its log and group commit stay.
func TestMochiStillStoresQueuedWithoutPacketID(t *testing.T) {
	h := new(bolt.Hook)
	h.SetOpts(quiet(), nil)
	if err := h.Init(&bolt.Options{Path: filepath.Join(t.TempDir(), "mochi.db")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop() })
	cl := &mqtt.Client{ID: "ha"}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   "light/kitchen", Payload: []byte("on"), PacketID: 7,
	}
	h.OnQosPublish(cl, pk, 0, 0)
	msgs, err := h.StoredInflightMessages()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0].ID, ":7") {
		t.Fatalf("stored %+v, want one record keyed ...:7", msgs)
	}
	if msgs[0].PacketID != 0 || msgs[0].ToPacket().PacketID != 0 {
		t.Fatalf("mochi's bolt hook kept packet id %d: fixed upstream, drop the key read-back in gateway/durable", msgs[0].PacketID)
	}
}
