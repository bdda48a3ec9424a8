package discovery

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/discovery/registry"
	"github.com/homebox/gateway/internal/testkit"
)

// floodHeapBound is what the live Go heap may grow by once discovery has
// read issue 14's 20,000-device retained list (runtime.ReadMemStats after
// GC, the in-process test broker's own copy of the message and its
// subscriptions included). Measured: 3.4 MiB with the caps (4.6 under
// -race), 121 MiB
// without (BenchmarkRetainedFlood).
const floodHeapBound = 16 << 20

func statsReport(s *Service) func() string {
	return func() string { return fmt.Sprintf("stats %+v, %d devices", s.Stats(), s.reg.Len()) }
}

// Issue 14, finding 7: one retained zigbee2mqtt/bridge/devices of 20,000
// entries (1.7 MB). The registry stops at its cap, keeps the devices it
// knew, counts the rest, the heap stays bounded, and the same holds when the
// message replays after a restart.
func TestRetainedFloodBounded(t *testing.T) {
	_, addr := startBroker(t, nil)
	pub(t, addr, "homeassistant/binary_sensor/hall/motion/config",
		[]byte(`{"name":"Motion","stat_t":"hall/motion","uniq_id":"hall-motion","dev":{"ids":"hall01","name":"Hall"}}`), true)
	root := t.TempDir()
	logs := &testkit.Buffer{}
	s := startService(t, root, addr, logs)
	ready(t, s)
	max := s.Limits().Registry.MaxDevices
	testkit.WaitFor(t, 5*time.Second, "own announce and the hall device", func() bool {
		_, own := s.Device("id-" + s.GatewayID())
		_, hall := s.Device("id-hall01")
		return own && hall
	})

	const n = 20000
	payload := floodDevices(n)
	base, _ := heapAfterGC()
	pub(t, addr, "zigbee2mqtt/bridge/devices", payload, true)
	// 2 devices known before; the list fills the rest; the parser reads past
	// its first max entries without building them.
	want := uint64(n - (max - 2))
	testkit.WaitForReport(t, 20*time.Second, "the flood read, registry at its cap", func() bool {
		return s.Stats().Devices == want
	}, statsReport(s))
	if got := s.reg.Len(); got != max {
		t.Errorf("registry holds %d devices, want the cap %d", got, max)
	}
	for _, id := range []string{"id-hall01", "id-" + s.GatewayID()} {
		if _, ok := s.Device(id); !ok {
			t.Errorf("known device %s pushed out by the flood", id)
		}
	}
	if err := s.reg.Flush(); err != nil {
		t.Fatal(err)
	}
	after, _ := heapAfterGC()
	grew := int64(after) - int64(base)
	t.Logf("heap after GC grew by %.1f MiB reading a %.1f MiB list of %d devices (bound %d MiB)", float64(grew)/(1<<20), float64(len(payload))/(1<<20), n, floodHeapBound>>20)
	if grew > floodHeapBound {
		t.Errorf("heap grew by %d bytes, bound %d", grew, floodHeapBound)
	}
	if !strings.Contains(logs.String(), "over the registry's limits") || !strings.Contains(logs.String(), "topic=zigbee2mqtt/bridge/devices") {
		t.Errorf("the drop was not logged with its topic:\n%s", logs)
	}
	if fi, err := os.Stat(RegistryPath(root)); err != nil || fi.Size() > 2<<20 {
		t.Errorf("devices.json: %v, %d bytes", err, fi.Size())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The retained list replays after a restart: same bound, same devices.
	s2 := startService(t, root, addr, nil)
	ready(t, s2)
	testkit.WaitForReport(t, 20*time.Second, "the replayed flood read", func() bool {
		return s2.Stats().Devices == want
	}, statsReport(s2))
	if got := s2.reg.Len(); got != max {
		t.Errorf("after restart %d devices, want %d", got, max)
	}
	if _, ok := s2.Device("id-hall01"); !ok {
		t.Error("known device lost after restart")
	}
}

// An 8 MiB device name (or any announce over the size cap) is not stored:
// the message is dropped whole before decoding and counted; one under the
// cap has its name cut.
func TestHugeAnnouncesNotStored(t *testing.T) {
	_, addr := startBroker(t, nil)
	logs := &testkit.Buffer{}
	s := startService(t, t.TempDir(), addr, logs)
	ready(t, s)
	lim := s.Limits()
	huge := strings.Repeat("N", 8<<20)
	pub(t, addr, "homeassistant/sensor/huge/config", []byte(`{"name":"x","stat_t":"h/s","dev":{"ids":"huge1","name":"`+huge+`"}}`), true)
	pub(t, addr, "gateway/announce/huge2", []byte(`{"id":"huge2","name":"`+huge+`"}`), true)
	pub(t, addr, "zigbee2mqtt/bridge/devices", []byte(`[{"ieee_address":"0x0000000000000bad","friendly_name":"`+huge+`"}]`), true)
	testkit.WaitForReport(t, 20*time.Second, "three oversize announces dropped", func() bool { return s.Stats().Messages == 3 }, statsReport(s))
	for _, id := range []string{"id-huge1", "id-huge2", "ieee-0x0000000000000bad"} {
		if _, ok := s.Device(id); ok {
			t.Errorf("device %s from an 8 MiB announce was stored", id)
		}
	}
	for _, want := range []string{"topic=homeassistant/sensor/huge/config", "topic=gateway/announce/huge2", "topic=zigbee2mqtt/bridge/devices", "too large"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%.2000s", want, logs)
		}
	}

	// Under the size cap: stored, the name cut to MaxText.
	long := strings.Repeat("L", 100<<10)
	pub(t, addr, "gateway/announce/long1", []byte(`{"id":"long1","name":"`+long+`","availability_topic":"long1/avail"}`), true)
	testkit.WaitForReport(t, 10*time.Second, "the long-named device", func() bool { _, ok := s.Device("id-long1"); return ok }, statsReport(s))
	d := mustDevice(t, s, "id-long1")
	if len(d.Name) != lim.Registry.MaxText {
		t.Errorf("name kept %d bytes, want %d", len(d.Name), lim.Registry.MaxText)
	}
	if s.Stats().Fields == 0 {
		t.Error("the cut name was not counted")
	}
	// A huge availability payload is dropped before it is a string.
	pub(t, addr, "long1/avail", []byte(strings.Repeat("o", 1<<20)), true)
	testkit.WaitForReport(t, 10*time.Second, "oversize availability dropped", func() bool { return s.Stats().Messages == 4 }, statsReport(s))
	pub(t, addr, "long1/avail", []byte("online"), true)
	testkit.WaitFor(t, 10*time.Second, "availability after the oversize one", func() bool {
		d, _ := s.Device("id-long1")
		return d.Availability == "online"
	})
	for _, d := range s.Devices() {
		if len(d.Name) > lim.Registry.MaxText {
			t.Errorf("device %s holds a %d-byte name", d.ID, len(d.Name))
		}
	}
}

// A flood of drops logs a burst, one notice, then nothing until the
// interval passes; other reasons have their own budget.
func TestDropLogRateLimited(t *testing.T) {
	buf := &testkit.Buffer{}
	d := newDropLog(slog.New(slog.NewTextHandler(buf, nil)))
	for i := range 1000 {
		d.warn("too large", "discovery: announce dropped", "n", i)
	}
	d.warn("malformed", "discovery: malformed announce ignored")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != d.burst+2 {
		t.Fatalf("%d lines for 1000 drops and 1 other, want %d:\n%s", len(lines), d.burst+2, buf)
	}
	if !strings.Contains(lines[d.burst], "too many drops") || !strings.Contains(lines[d.burst+1], "malformed") {
		t.Errorf("notice or other reason missing:\n%s", buf)
	}
	// Once the interval has passed, the next line says how many were not logged.
	d.mu.Lock()
	d.reasons["too large"].windowStart = time.Now().Add(-2 * d.interval)
	d.mu.Unlock()
	d.warn("too large", "discovery: announce dropped", "n", 1000)
	if !strings.Contains(buf.String(), "not_logged_in_last_interval=990") {
		t.Errorf("suppressed count not logged:\n%s", buf)
	}
}

// A box that first starts with a flood already retained still lists itself:
// its own device goes in before any announce is read.
func TestOwnDeviceNeverRefused(t *testing.T) {
	_, addr := startBroker(t, nil)
	pub(t, addr, "zigbee2mqtt/bridge/devices", floodDevices(2000), true)
	s := startServiceWith(t, t.TempDir(), addr, nil, Limits{Registry: registry.Limits{MaxDevices: 50}})
	ready(t, s)
	testkit.WaitForReport(t, 10*time.Second, "the list read", func() bool { return s.Stats().Devices == 2000-49 }, statsReport(s))
	if _, ok := s.Device("id-" + s.GatewayID()); !ok || s.reg.Len() != 50 {
		t.Errorf("own device present: %v, %d devices", ok, s.reg.Len())
	}
}
