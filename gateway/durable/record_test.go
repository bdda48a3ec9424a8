package durable

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// fullMessage has every field of storage.Message set.
func fullMessage() storage.Message {
	return storage.Message{
		T: storage.InflightKey, ID: "IFM_sub:7", Client: "sub", Origin: "pub", TopicName: "home/light/1",
		Payload:     []byte("on"),
		FixedHeader: packets.FixedHeader{Remaining: 21, Type: packets.Publish, Qos: 1, Dup: true, Retain: true},
		Created:     1_790_000_000, Sent: -5, PacketID: 7,
		Properties: storage.MessageProperties{
			CorrelationData:        []byte{0, 1, 2},
			SubscriptionIdentifier: []int{3, 300000},
			User:                   []packets.UserProperty{{Key: "k", Val: "v"}, {Key: "", Val: "é"}},
			ContentType:            "text/plain", ResponseTopic: "reply/here",
			MessageExpiryInterval: 3600, TopicAlias: 9, PayloadFormat: 1, PayloadFormatFlag: true,
		},
	}
}

func TestMessageRecordRoundTrips(t *testing.T) {
	for _, m := range []storage.Message{fullMessage(), {}, {TopicName: "t", Payload: []byte{0}}} {
		got, err := decodeMessage(encodeMessage(&m))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestMochiJSONMessageRecordsStillRead(t *testing.T) {
	m := fullMessage()
	old, err := m.MarshalBinary() // what mochi's bolt hook and this hook used to write
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMessage(old)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("JSON record:\n got %+v\nwant %+v", got, m)
	}
}

func TestCutOrGarbledMessageRecordIsAnErrorNotAPanic(t *testing.T) {
	m := fullMessage()
	b := encodeMessage(&m)
	for n := range len(b) {
		if _, err := decodeMessage(b[:n]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded without error", n, len(b))
		}
	}
	if _, err := decodeMessage(append(b, 0)); err == nil {
		t.Fatal("a record with a byte too many decoded without error")
	}
	for i := range b {
		g := append([]byte(nil), b...)
		g[i] ^= 0xff
		_, _ = decodeMessage(g) // may decode to something else; must not panic
	}
}

// TestOldLogAndTornNewRecordLoadThroughTheHook replays, through the hook, a
// log as the previous version wrote it (mochi's JSON messages) followed by
// a message in the new form and a torn one at the tail.
func TestOldLogAndTornNewRecordLoadThroughTheHook(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.db")
	var log []byte
	for _, id := range []uint16{1, 2} {
		m := fullMessage()
		m.ID, m.PacketID = inflightKey("sub", id), 0 // mochi's record leaves the id out
		old, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		log = appendRecord(log, opPut, m.ID, old)
	}
	m3 := fullMessage()
	m3.ID, m3.PacketID = inflightKey("sub", 3), 0
	log = appendRecord(log, opPut, m3.ID, encodeMessage(&m3))
	m4 := fullMessage()
	m4.ID = inflightKey("sub", 4)
	torn := appendRecord(nil, opPut, m4.ID, encodeMessage(&m4))
	log = append(log, torn[:len(torn)-5]...)
	if err := os.WriteFile(path+".wal.0", log, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := Options(path)
	if err != nil {
		t.Fatal(err)
	}
	h := New()
	h.SetOpts(quiet(), nil)
	if err := h.Init(opts); err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	msgs, err := h.StoredInflightMessages()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages loaded, want 3 (ids 1, 2 in JSON, 3 in the new form; 4 torn)", len(msgs))
	}
	for i, m := range msgs {
		if m.PacketID != uint16(i+1) || string(m.Payload) != "on" || m.TopicName != "home/light/1" || m.Properties.User[0].Val != "v" {
			t.Fatalf("message %d loaded as %+v", i+1, m)
		}
	}
	// The hook knows the loaded messages: completing one deletes it.
	h.OnQosComplete(clientNamed("sub"), packets.Packet{PacketID: 2})
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	h2 := New()
	h2.SetOpts(quiet(), nil)
	if err := h2.Init(opts); err != nil {
		t.Fatal(err)
	}
	defer h2.Stop()
	msgs, _ = h2.StoredInflightMessages()
	if len(msgs) != 2 || msgs[0].PacketID != 1 || msgs[1].PacketID != 3 {
		t.Fatalf("after completing id 2: %+v", msgs)
	}
}

func clientNamed(id string) *mqtt.Client { return &mqtt.Client{ID: id} }
