package registry

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Registry {
	t.Helper()
	r, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func ids(r *Registry) []string {
	var out []string
	for _, d := range r.Devices() {
		out = append(out, d.ID)
	}
	return out
}

func TestMergeSplitRemove(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "devices.json"))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.Apply("a", []Claim{{Source: "homeassistant", Keys: []string{"id:x"}, Name: "X", SeenAt: t0}})
	r.Apply("b", []Claim{{Source: "tasmota", MAC: "AA-BB-CC-DD-EE-FF", Name: "plug", SeenAt: t0.Add(time.Second)}})
	if got := ids(r); !slices.Equal(got, []string{"id-x", "mac-aabbccddeeff"}) {
		t.Fatalf("devices = %v", got)
	}
	// A claim naming both keys proves they are one device: merged, older id kept.
	r.Apply("c", []Claim{{Source: "mdns", Keys: []string{"id:x", "mac:aabbccddeeff"}, SeenAt: t0.Add(2 * time.Second)}})
	if got := ids(r); !slices.Equal(got, []string{"id-x"}) {
		t.Fatalf("after bridge claim devices = %v", got)
	}
	d, _ := r.Device("id-x")
	if !slices.Equal(d.Sources, []string{"homeassistant", "tasmota", "mdns"}) || d.Name != "X" || d.MAC != "aa:bb:cc:dd:ee:ff" {
		t.Errorf("merged device = %+v", d)
	}
	// The bridge goes: two devices again.
	r.Apply("c", nil)
	if got := ids(r); len(got) != 2 {
		t.Fatalf("after bridge removal devices = %v", got)
	}
	// Replacing a group keeps the device and its id.
	r.Apply("a", []Claim{{Source: "homeassistant", Keys: []string{"id:x"}, Name: "X2"}})
	if d, ok := r.Device("id-x"); !ok || d.Name != "X2" || !d.FirstSeen.Equal(t0) {
		t.Errorf("replaced device = %+v %v", d, ok)
	}
	r.Apply("a", nil)
	r.Apply("b", nil)
	if r.Len() != 0 {
		t.Errorf("devices left: %v", ids(r))
	}
}

func TestAvailabilityLatestWins(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "devices.json"))
	topics, _ := r.Apply("a", []Claim{{Source: "tasmota", Keys: []string{"id:p"}, Availability: []AvailabilityTopic{
		{Topic: "tele/p/LWT", Available: "Online", NotAvailable: "Offline"}, {Topic: "bridge/state"}}}})
	if !slices.Equal(topics, []string{"tele/p/LWT", "bridge/state"}) {
		t.Errorf("new topics = %v", topics)
	}
	if again, _ := r.Apply("a", []Claim{{Source: "tasmota", Keys: []string{"id:p"}, Availability: []AvailabilityTopic{{Topic: "tele/p/LWT", Available: "Online", NotAvailable: "Offline"}}}}); len(again) != 0 {
		t.Errorf("re-announce reported topics as new: %v", again)
	}
	now := time.Now()
	if d, _ := r.Device("id-p"); d.Availability != Unknown {
		t.Errorf("availability before any payload = %s", d.Availability)
	}
	r.SetAvailability("tele/p/LWT", "Online", now)
	if d, _ := r.Device("id-p"); d.Availability != Online {
		t.Errorf("after Online = %s", d.Availability)
	}
	r.SetAvailability("tele/p/LWT", "Offline", now.Add(time.Second))
	if d, _ := r.Device("id-p"); d.Availability != Offline {
		t.Errorf("after Offline = %s", d.Availability)
	}
}

func TestPersistAndCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "gateway", "devices.json")
	r, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Apply("t/1", []Claim{{Source: "gateway", Keys: []string{"id:one"}, Name: "One", Entities: []Entity{{ID: "e1", Component: "sensor", Source: "gateway"}}}})
	r.SetAvailability("one/status", "online", time.Now())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := open(t, path)
	d, ok := r2.Device("id-one")
	if !ok || d.Name != "One" || len(d.Entities) != 1 {
		t.Fatalf("reloaded = %+v %v", d, ok)
	}
	// The group survives too: an empty message after restart removes it.
	r2.Apply("t/1", nil)
	if r2.Len() != 0 {
		t.Error("group not restored from file")
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"devices":[{"id":""}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt registry error = %v, want one naming %s", err, path)
	}
}

func TestMAC(t *testing.T) {
	for in, want := range map[string]string{"AABBCCDDEEFF": "aa:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff": "aa:bb:cc:dd:ee:ff", "A0:B1:C2:A1:B2:C3": "a0:b1:c2:a1:b2:c3", "nope": "", "aabbcc": ""} {
		if got := FormatMAC(in); got != want {
			t.Errorf("FormatMAC(%q) = %q, want %q", in, got, want)
		}
	}
}
