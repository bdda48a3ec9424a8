package discovery

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// A device as an owner sees it: its entities' current values, live; last
// seen that a restart does not fake; stale when silent; forgotten on
// request, its retained announce cleared so it stays gone.
func TestDeviceLiveValuesLastSeenStaleAndForget(t *testing.T) {
	_, addr := startBroker(t, nil)
	root := t.TempDir()
	s := startService(t, root, addr, nil)
	ready(t, s)
	const cfgTopic = "homeassistant/sensor/th1/temperature/config"
	pub(t, addr, cfgTopic, []byte(`{"name":"Temperature","unique_id":"th1_t","state_topic":"home/th1/state",
		"value_template":"{{ value_json.temperature | round(1) }}","unit_of_measurement":"°C","device":{"identifiers":["th1"],"name":"Thermo"}}`), true)
	var d Device
	testkit.WaitFor(t, 10*time.Second, "the announced device", func() bool {
		var ok bool
		d, ok = deviceWhere(s, func(d Device) bool { return d.Name == "Thermo" })
		return ok
	})
	if d.LastSeen.IsZero() {
		t.Fatal("an announce heard live left last_seen empty")
	}
	// Its value, live, through the value template.
	pub(t, addr, "home/th1/state", []byte(`{"temperature":21.4,"humidity":40}`), false)
	testkit.WaitFor(t, 10*time.Second, "the entity's value", func() bool {
		d = mustDevice(t, s, d.ID)
		return len(d.Entities) == 1 && d.Entities[0].State == "21.4" && !d.Entities[0].StateAt.IsZero()
	})
	seen := d.LastSeen
	if !seen.After(d.FirstSeen) && !seen.Equal(d.FirstSeen) {
		t.Errorf("last seen %v before first seen %v", seen, d.FirstSeen)
	}

	// A restart of discovery: the broker replays the retained announce,
	// which is not a sign of life.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = startService(t, root, addr, nil)
	ready(t, s)
	d = mustDevice(t, s, d.ID)
	if d.LastSeen.After(seen) {
		t.Errorf("last seen moved from %v to %v on a replayed announce", seen, d.LastSeen)
	}

	// Silent for longer than stale_after: stale.
	s.reg.SetStaleAfter(50 * time.Millisecond)
	testkit.WaitFor(t, 5*time.Second, "the device stale", func() bool { return mustDevice(t, s, d.ID).Stale })

	// Forgotten, its retained announce cleared: gone from the list and
	// from the broker, and it does not come back at the next start.
	f, err := s.Forget(d.ID, true)
	if err != nil || len(f.Cleared) != 1 || f.Cleared[0] != cfgTopic || len(f.ComesBackFrom) != 0 {
		t.Fatalf("forget: %+v %v", f, err)
	}
	if _, ok := s.Device(d.ID); ok {
		t.Error("the device is still listed")
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, needTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-t", cfgTopic, "-C", "1", "-W", "2").Output(); err == nil {
		t.Errorf("the retained announce is still on the broker: %q", out)
	}
	if _, err := s.Forget(d.ID, false); err == nil {
		t.Error("forgetting an unknown device answered no error")
	}
	s.Close()
	s = startService(t, filepath.Clean(root), addr, nil)
	ready(t, s)
	if _, ok := deviceWhere(s, func(d Device) bool { return d.Name == "Thermo" }); ok {
		t.Error("the forgotten device came back at the next start")
	}
}
