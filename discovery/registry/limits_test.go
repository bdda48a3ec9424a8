package registry

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func openLimited(t *testing.T, path string, lim Limits) *Registry {
	t.Helper()
	r, err := OpenWithLimits(path, nil, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func named(id string) Claim {
	return Claim{Source: "gateway", Keys: []string{"id:" + id}, Name: id}
}

// At the device cap new devices are refused and counted; known devices are
// kept and still updated, and a message that names both applies the known
// ones first.
func TestDeviceCapRefusesNewKeepsKnown(t *testing.T) {
	r := openLimited(t, filepath.Join(t.TempDir(), "devices.json"), Limits{MaxDevices: 3})
	for _, id := range []string{"a", "b", "c"} {
		if _, d := r.Apply("t/"+id, []Claim{named(id)}); !d.Zero() {
			t.Fatalf("%s dropped under the cap: %+v", id, d)
		}
	}
	if _, d := r.Apply("t/d", []Claim{named("d")}); d.Devices != 1 {
		t.Errorf("new device at the cap: dropped %+v, want 1 device", d)
	}
	if _, ok := r.Device("id-d"); ok {
		t.Error("a device past the cap was stored")
	}
	upd := named("a")
	upd.Name = "A renamed"
	if _, d := r.Apply("t/a", []Claim{upd}); !d.Zero() {
		t.Errorf("update of a known device at the cap dropped %+v", d)
	}
	if d, _ := r.Device("id-a"); d.Name != "A renamed" {
		t.Errorf("known device not updated at the cap: %+v", d)
	}
	// One list (zigbee2mqtt style) naming a new device before a known one:
	// the known one stays, whatever the order.
	if _, d := r.Apply("t/b", []Claim{named("e"), named("b")}); d.Devices != 1 {
		t.Errorf("list at the cap dropped %+v, want 1 device", d)
	}
	if got := ids(r); !slices.Equal(got, []string{"id-a", "id-b", "id-c"}) {
		t.Errorf("devices = %v", got)
	}
	// Room again once a device goes.
	r.Apply("t/c", nil)
	if _, d := r.Apply("t/d", []Claim{named("d")}); !d.Zero() {
		t.Errorf("new device after a removal dropped %+v", d)
	}
	if got := r.Drops(); got.Devices != 2 {
		t.Errorf("Drops = %+v, want 2 devices", got)
	}
}

func entities(n int) []Entity {
	out := make([]Entity, n)
	for i := range out {
		out[i] = Entity{ID: fmt.Sprintf("e%d", i), Component: "sensor", Source: "homeassistant"}
	}
	return out
}

// A device holds at most MaxEntitiesPerDevice entities and announces; the
// registry at most MaxEntities.
func TestEntityCaps(t *testing.T) {
	r := openLimited(t, filepath.Join(t.TempDir(), "devices.json"), Limits{MaxEntitiesPerDevice: 4, MaxEntities: 6})
	c := named("x")
	c.Entities = entities(6)
	if _, d := r.Apply("t/x/1", []Claim{c}); d.Entities != 2 {
		t.Errorf("6 entities on a device capped at 4: dropped %+v", d)
	}
	if d, _ := r.Device("id-x"); len(d.Entities) != 4 {
		t.Errorf("device holds %d entities, want 4", len(d.Entities))
	}
	// The device is full: another announce about it (Home Assistant sends one
	// per entity) is refused whole, counted as its entity.
	c2 := named("x")
	c2.Entities = entities(1)
	if _, d := r.Apply("t/x/2", []Claim{c2}); d.Entities != 1 {
		t.Errorf("announce about a full device: dropped %+v", d)
	}
	// The registry has 2 left of 6.
	y := named("y")
	y.Entities = entities(3)
	if _, d := r.Apply("t/y", []Claim{y}); d.Entities != 1 {
		t.Errorf("registry cap: dropped %+v, want 1 entity", d)
	}
	if _, n := r.Usage(); n != 6 {
		t.Errorf("entities held = %d, want 6", n)
	}
	// Replacing a group frees what it held first.
	c.Entities = entities(2)
	r.Apply("t/x/1", []Claim{c})
	y.Entities = entities(4)
	if _, d := r.Apply("t/y", []Claim{y}); !d.Zero() {
		t.Errorf("after x shrank, y's 4 entities dropped %+v", d)
	}
}

// Free text is cut at a UTF-8 boundary; ids and topics too long are refused,
// never cut (a cut id could merge two devices, a cut topic is another topic).
func TestFieldLimits(t *testing.T) {
	r := openLimited(t, filepath.Join(t.TempDir(), "devices.json"), Limits{MaxText: 16, MaxID: 32, MaxTopic: 40, MaxList: 3})
	c := named("long")
	c.Name = strings.Repeat("é", 100) // 2 bytes each: a cut at 16 must not split one
	c.Model = strings.Repeat("m", 1<<20)
	c.Identifiers = []string{"long", "a", "b", "c", "d"}
	c.Availability = []AvailabilityTopic{{Topic: "ok/avail"}, {Topic: "x/" + strings.Repeat("t", 100)}}
	c.Entities = []Entity{
		{ID: "fine", Component: "sensor", StateTopic: "ok/state"},
		{ID: strings.Repeat("i", 100), Component: "sensor"},
		{ID: "toolong-topic", Component: "sensor", StateTopic: strings.Repeat("s", 100)},
	}
	_, d := r.Apply("t/long", []Claim{c})
	dev, ok := r.Device("id-long")
	if !ok {
		t.Fatalf("device refused: %+v", d)
	}
	if len(dev.Name) > 16 || !utf8.ValidString(dev.Name) || dev.Name != strings.Repeat("é", 8) {
		t.Errorf("name = %q (%d bytes)", dev.Name, len(dev.Name))
	}
	if len(dev.Model) != 16 {
		t.Errorf("model kept %d bytes", len(dev.Model))
	}
	if !slices.Equal(dev.Identifiers, []string{"long", "a", "b"}) {
		t.Errorf("identifiers = %v", dev.Identifiers)
	}
	if !slices.Equal(dev.AvailabilityTopics, []string{"ok/avail"}) {
		t.Errorf("availability topics = %v", dev.AvailabilityTopics)
	}
	if len(dev.Entities) != 1 || dev.Entities[0].ID != "fine" {
		t.Errorf("entities = %+v", dev.Entities)
	}
	// name, model, 2 identifiers, 1 topic, 2 entities
	if d.Fields != 7 {
		t.Errorf("fields dropped = %d, want 7", d.Fields)
	}
	// An identity too long: the claim is refused whole.
	bad := named(strings.Repeat("k", 200))
	if _, d := r.Apply("t/bad", []Claim{bad}); d.Fields != 1 || r.Len() != 1 {
		t.Errorf("overlong key: dropped %+v, devices %v", d, ids(r))
	}
	// Availability payloads: only for topics a claim names, and short.
	r.SetAvailability("nobody/names/this", "online", time.Now())
	r.SetAvailability("ok/avail", strings.Repeat("o", 1000), time.Now())
	if dev, _ := r.Device("id-long"); dev.Availability != Unknown {
		t.Errorf("availability = %s after an overlong payload", dev.Availability)
	}
	r.SetAvailability("ok/avail", "online", time.Now())
	if dev, _ := r.Device("id-long"); dev.Availability != Online {
		t.Errorf("availability = %s", dev.Availability)
	}
	r.mu.Lock()
	_, unnamed := r.avail["nobody/names/this"]
	r.mu.Unlock()
	if unnamed {
		t.Error("state of a topic no claim names was kept")
	}
}

// A devices.json over the limits (written before there were any) loads
// oldest devices first, up to the limits, and is written back within them.
func TestLoadOverLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.json")
	r, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		c := named(fmt.Sprintf("d%d", i))
		c.SeenAt = t0.Add(time.Duration(5-i) * time.Hour) // d4 is the oldest
		r.Apply(fmt.Sprintf("t/%d", i), []Claim{c})
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := OpenWithLimits(path, nil, Limits{MaxDevices: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(r2); !slices.Equal(got, []string{"id-d3", "id-d4"}) {
		t.Errorf("loaded %v, want the two oldest", got)
	}
	if d := r2.Drops(); d.Devices != 3 {
		t.Errorf("Drops = %+v, want 3 devices", d)
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	r3 := open(t, path)
	if r3.Len() != 2 {
		t.Errorf("file not written back within the limits: %d devices", r3.Len())
	}
}
