package discovery

import (
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/internal/testkit"
)

// Shapes taken from the formats' public documentation: ESPHome and Tasmota
// devices, a device-based payload, zigbee2mqtt's device list.
var (
	espTemp = `{"dev_cla":"temperature","unit_of_meas":"°C","stat_cla":"measurement","name":"Temperature",` +
		`"stat_t":"~/sensor/temperature/state","avty_t":"~/status","uniq_id":"livingroom-temp","~":"livingroom",` +
		`"dev":{"ids":"a4cf12ab34cd","name":"livingroom","sw":"esphome v2024.6.1","mdl":"esp32dev","mf":"espressif","cns":[["mac","a4:cf:12:ab:34:cd"]]}}`
	espRelay = `{"name":"Relay","cmd_t":"~/switch/relay/command","stat_t":"~/switch/relay/state","avty_t":"~/status",` +
		`"uniq_id":"livingroom-relay","~":"livingroom","dev":{"ids":["a4cf12ab34cd"],"name":"livingroom"}}`
	heatPump = `{"dev":{"ids":"heatpump01","name":"Heat pump","mf":"Acme","mdl":"HP-3000","sw":"1.4.2"},` +
		`"o":{"name":"acme2mqtt","sw":"0.9","url":"https://example.invalid/acme"},"~":"acme/hp01","stat_t":"~/state",` +
		`"avty":[{"t":"~/availability"}],"qos":1,"cmps":{` +
		`"flow_temp":{"p":"sensor","dev_cla":"temperature","unit_of_meas":"°C","val_tpl":"{{ value_json.flow }}","uniq_id":"hp01_flow"},` +
		`"power":{"p":"switch","cmd_t":"~/set","uniq_id":"hp01_power","name":"Power"},` +
		`"mode":{"p":"select","ops":["heat","cool"],"cmd_t":"~/mode/set","uniq_id":"hp01_mode"}}}`
	tasmotaConfig = `{"ip":"192.0.2.50","dn":"Tasmota","fn":["Kitchen Plug",null,null,null,null,null,null,null],` +
		`"hn":"tasmota-A1B2C3-0707","mac":"A0B1C2A1B2C3","md":"Sonoff Basic","ty":0,"if":0,"ofln":"Offline","onln":"Online",` +
		`"state":["OFF","ON","TOGGLE","HOLD"],"sw":"12.1.1","t":"tasmota_A1B2C3","ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],` +
		`"rl":[1,0,0,0,0,0,0,0],"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"swn":[null,null,null,null,null,null,null,null],` +
		`"btn":[0,0,0,0,0,0,0,0],"so":{"4":0,"11":0,"13":0,"17":0,"20":0,"30":0,"68":0,"73":0,"82":0,"114":0,"117":0},` +
		`"lk":0,"lt_st":0,"sho":[0,0,0,0],"ver":1}`
	tasmotaSensors = `{"sn":{"Time":"2024-05-01T10:00:00","AM2301":{"Temperature":21.4,"Humidity":48.2,"DewPoint":10.1},"TempUnit":"C"},"ver":1}`
	// Home Assistant's Tasmota-style entry for the same plug: merged by MAC.
	tasmotaHA = `{"name":"Kitchen Plug","stat_t":"stat/tasmota_A1B2C3/RESULT","cmd_t":"cmnd/tasmota_A1B2C3/POWER",` +
		`"avty_t":"tele/tasmota_A1B2C3/LWT","pl_avail":"Online","pl_not_avail":"Offline","uniq_id":"A0B1C2A1B2C3_RL_1",` +
		`"dev":{"cns":[["mac","A0:B1:C2:A1:B2:C3"]]}}`
	z2mDevices = `[{"ieee_address":"0x00124b0001abcdef","type":"Coordinator","network_address":0,"friendly_name":"Coordinator","supported":true,"interview_completed":true},` +
		`{"ieee_address":"0x00158d0001a2b3c4","type":"EndDevice","network_address":12345,"friendly_name":"bathroom_sensor",` +
		`"manufacturer":"LUMI","model_id":"lumi.weather","power_source":"Battery","supported":true,"interview_completed":true,` +
		`"definition":{"model":"WSDCGQ11LM","vendor":"Aqara","description":"Temperature, humidity and pressure sensor",` +
		`"exposes":[{"type":"numeric","name":"temperature","property":"temperature","unit":"°C","access":1},` +
		`{"type":"numeric","name":"humidity","property":"humidity","unit":"%","access":1}]}}]`
	z2mHA = `{"uniq_id":"0x00158d0001a2b3c4_temperature_zigbee2mqtt","stat_t":"zigbee2mqtt/bathroom_sensor",` +
		`"dev":{"ids":["zigbee2mqtt_0x00158d0001a2b3c4"],"name":"bathroom_sensor","mf":"Aqara","mdl":"WSDCGQ11LM"},` +
		`"dev_cla":"temperature","unit_of_meas":"°C","val_tpl":"{{ value_json.temperature }}"}`
	otherGateway = `{"id":"plug-7","name":"Porch plug","model":"homebox-plug","firmware":"0.3.1","address":"192.0.2.77",` +
		`"mac":"02:00:00:00:00:07","availability_topic":"gateway/announce/plug-7/availability"}`
)

func TestAnnounceTopicsIntoRegistry(t *testing.T) {
	srv, addr := startBroker(t, nil)
	for topic, payload := range map[string]string{
		"homeassistant/sensor/livingroom/temperature/config":         espTemp,
		"homeassistant/switch/livingroom/relay/config":               espRelay,
		"homeassistant/device/heatpump01/config":                     heatPump,
		"tasmota/discovery/A0B1C2A1B2C3/config":                      tasmotaConfig,
		"tasmota/discovery/A0B1C2A1B2C3/sensors":                     tasmotaSensors,
		"homeassistant/switch/A0B1C2A1B2C3_RL_1/config":              tasmotaHA,
		"zigbee2mqtt/bridge/devices":                                 z2mDevices,
		"homeassistant/sensor/0x00158d0001a2b3c4/temperature/config": z2mHA,
		"gateway/announce/plug-7":                                    otherGateway,
		"livingroom/status":                                          "online",
	} {
		pub(t, addr, topic, []byte(payload), true)
	}
	logs := &testkit.Buffer{}
	root := t.TempDir()
	s := startService(t, root, addr, logs)
	ready(t, s)

	// ESPHome: two components of one device, abbreviations and ~ expanded.
	esp := mustDevice(t, s, "mac-a4cf12ab34cd")
	if esp.Name != "livingroom" || esp.Manufacturer != "espressif" || esp.Model != "esp32dev" || esp.Firmware != "esphome v2024.6.1" || esp.MAC != "a4:cf:12:ab:34:cd" {
		t.Errorf("esphome device fields: %+v", esp)
	}
	if got := entityIDs(esp); got != "sensor:livingroom-temp,switch:livingroom-relay" {
		t.Errorf("esphome entities = %s", got)
	}
	if e := esp.Entities[0]; e.StateTopic != "livingroom/sensor/temperature/state" || e.Unit != "°C" || e.DeviceClass != "temperature" {
		t.Errorf("sensor entity not expanded: %+v", e)
	}
	if e := esp.Entities[1]; e.CommandTopic != "livingroom/switch/relay/command" {
		t.Errorf("switch entity not expanded: %+v", e)
	}
	// Availability from a retained birth already on the broker.
	testkit.WaitFor(t, 5*time.Second, "esphome online", func() bool { d, _ := s.Device(esp.ID); return d.Availability == "online" })

	// Device-based discovery: one device, three components, shared options.
	hp := mustDevice(t, s, "id-heatpump01")
	if hp.Name != "Heat pump" || hp.Manufacturer != "Acme" || hp.Firmware != "1.4.2" {
		t.Errorf("heat pump fields: %+v", hp)
	}
	if got := entityIDs(hp); got != "sensor:hp01_flow,select:hp01_mode,switch:hp01_power" {
		t.Errorf("heat pump entities = %s", got)
	}
	for _, e := range hp.Entities {
		if e.StateTopic != "acme/hp01/state" {
			t.Errorf("component %s did not inherit the shared state topic: %+v", e.ID, e)
		}
	}
	if !slices.Equal(hp.AvailabilityTopics, []string{"acme/hp01/availability"}) {
		t.Errorf("heat pump availability topics = %v", hp.AvailabilityTopics)
	}

	// Tasmota: config + sensors + Home Assistant's entry, one device by MAC.
	tas := mustDevice(t, s, "mac-a0b1c2a1b2c3")
	if !slices.Equal(tas.Sources, []string{"homeassistant", "tasmota"}) {
		t.Errorf("tasmota sources = %v", tas.Sources)
	}
	if tas.Address != "192.0.2.50" || tas.Model != "Sonoff Basic" || tas.Firmware != "12.1.1" {
		t.Errorf("tasmota fields: %+v", tas)
	}
	if n := len(tas.Entities); n != 5 { // HA switch, Tasmota relay, 3 sensor values
		t.Errorf("tasmota entities = %s", entityIDs(tas))
	}
	if !slices.Contains(tas.AvailabilityTopics, "tele/tasmota_A1B2C3/LWT") {
		t.Errorf("tasmota availability topics = %v", tas.AvailabilityTopics)
	}
	pub(t, addr, "tele/tasmota_A1B2C3/LWT", []byte("Online"), true)
	testkit.WaitFor(t, 5*time.Second, "tasmota online (LWT subscribed after discovery)", func() bool {
		d, _ := s.Device(tas.ID)
		return d.Availability == "online"
	})
	pub(t, addr, "tele/tasmota_A1B2C3/LWT", []byte("Offline"), true)
	testkit.WaitFor(t, 5*time.Second, "tasmota offline", func() bool { d, _ := s.Device(tas.ID); return d.Availability == "offline" })

	// zigbee2mqtt: the device list and Home Assistant's entry meet.
	z := mustDevice(t, s, "ieee-0x00158d0001a2b3c4")
	if !slices.Equal(z.Sources, []string{"homeassistant", "zigbee2mqtt"}) || z.Manufacturer != "Aqara" || z.Model != "WSDCGQ11LM" {
		t.Errorf("zigbee device: %+v", z)
	}
	pub(t, addr, "zigbee2mqtt/bathroom_sensor/availability", []byte(`{"state":"online"}`), true)
	testkit.WaitFor(t, 5*time.Second, "zigbee online", func() bool { d, _ := s.Device(z.ID); return d.Availability == "online" })

	// Another device's gateway announce, and the box's own.
	plug := mustDevice(t, s, "mac-020000000007")
	if plug.Name != "Porch plug" || plug.Address != "192.0.2.77" || !slices.Equal(plug.Sources, []string{"gateway"}) {
		t.Errorf("announced plug: %+v", plug)
	}
	self := mustDevice(t, s, "id-"+s.GatewayID())
	testkit.WaitFor(t, 5*time.Second, "own announce online", func() bool { d, _ := s.Device(self.ID); return d.Availability == "online" })
	var own map[string]any
	if err := json.Unmarshal([]byte(sub1(t, addr, "gateway/announce/"+s.GatewayID())), &own); err != nil {
		t.Fatal(err)
	}
	if own["id"] != s.GatewayID() || own["name"] != "test box" || own["firmware"] != "1.2.3" || own["availability_topic"] != "gateway/announce/"+s.GatewayID()+"/availability" {
		t.Errorf("own retained announce = %v", own)
	}

	// Malformed payloads: logged with their topic, ignored, nothing changes,
	// and discovery goes on.
	before := mustDevice(t, s, esp.ID)
	pub(t, addr, "homeassistant/sensor/broken/config", []byte(`{"name": "half`), true)
	pub(t, addr, "homeassistant/device/nocmps/config", []byte(`{"dev":{"ids":"x1"}}`), true)
	pub(t, addr, "homeassistant/sensor/livingroom/temperature/config", []byte(`[1,2,3]`), false)
	pub(t, addr, "tasmota/discovery/NOTAMAC/config", []byte(`{"t":"x"}`), false)
	pub(t, addr, "zigbee2mqtt/bridge/devices", []byte(`{"not":"a list"}`), false)
	pub(t, addr, "homeassistant/binary_sensor/hall/motion/config", []byte(`{"name":"Motion","stat_t":"hall/motion","uniq_id":"hall-motion","dev":{"ids":"hall01","name":"Hall"}}`), true)
	testkit.WaitFor(t, 5*time.Second, "a valid announce after malformed ones", func() bool { _, ok := s.Device("id-hall01"); return ok })
	for _, topic := range []string{"homeassistant/sensor/broken/config", "homeassistant/device/nocmps/config", "tasmota/discovery/NOTAMAC/config", "zigbee2mqtt/bridge/devices"} {
		if !strings.Contains(logs.String(), "topic="+topic) {
			t.Errorf("malformed payload on %s not logged; logs:\n%s", topic, logs)
		}
	}
	if after := mustDevice(t, s, esp.ID); entityIDs(after) != entityIDs(before) {
		t.Errorf("a malformed payload changed the device: %s -> %s", entityIDs(before), entityIDs(after))
	}
	if _, ok := s.Device("ieee-0x00158d0001a2b3c4"); !ok {
		t.Error("a malformed zigbee2mqtt list removed its devices")
	}

	// Removal: an empty retained payload takes back what its topic said.
	pub(t, addr, "homeassistant/switch/livingroom/relay/config", nil, true)
	testkit.WaitFor(t, 5*time.Second, "relay entity removed", func() bool {
		d, _ := s.Device(esp.ID)
		return entityIDs(d) == "sensor:livingroom-temp"
	})
	pub(t, addr, "homeassistant/sensor/livingroom/temperature/config", nil, true)
	testkit.WaitFor(t, 5*time.Second, "esphome device removed", func() bool { _, ok := s.Device(esp.ID); return !ok })
	pub(t, addr, "tasmota/discovery/A0B1C2A1B2C3/config", nil, true)
	testkit.WaitFor(t, 5*time.Second, "tasmota config part removed", func() bool {
		d, _ := s.Device(tas.ID)
		return slices.Equal(d.Sources, []string{"homeassistant", "tasmota"}) && len(d.Entities) == 4
	})

	// Home Assistant's birth makes discovery read the retained configs
	// again: a config retained behind its back appears.
	srv.Topics.RetainMessage(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName:   "homeassistant/light/attic/lamp/config",
		Payload:     []byte(`{"name":"Lamp","cmd_t":"attic/lamp/set","uniq_id":"attic-lamp","dev":{"ids":"attic01","name":"Attic"}}`),
		Created:     time.Now().Unix(),
	})
	if _, ok := s.Device("id-attic01"); ok {
		t.Fatal("retained config seen before the birth message")
	}
	pub(t, addr, "homeassistant/status", []byte("online"), false)
	testkit.WaitFor(t, 5*time.Second, "re-read on Home Assistant birth", func() bool { _, ok := s.Device("id-attic01"); return ok })

	// Close marks the box offline, retained, and flushes the registry.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := s.Devices() // frozen once closed: what was flushed
	t.Logf("closed at %v", time.Now())
	if got := sub1(t, addr, "gateway/announce/"+s.GatewayID()+"/availability"); got != "offline" {
		t.Errorf("own availability after Close = %q, want offline", got)
	}

	// The registry survives a restart, even with no broker to read from.
	data, err := os.ReadFile(RegistryPath(root))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatal("devices.json is not JSON")
	}
	s2 := startService(t, root, "127.0.0.1:1", nil)
	defer func() { t0 := time.Now(); s2.Close(); t.Logf("close without broker took %v", time.Since(t0)) }()
	got := s2.Devices()
	if len(got) != len(want) {
		t.Fatalf("after restart %d devices, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || entityIDs(got[i]) != entityIDs(want[i]) || got[i].Availability != want[i].Availability {
			t.Errorf("after restart device %d = %s %s %s, want %s %s %s", i, got[i].ID, entityIDs(got[i]), got[i].Availability, want[i].ID, entityIDs(want[i]), want[i].Availability)
		}
	}
	if s2.GatewayID() != s.GatewayID() {
		t.Errorf("gateway id changed across restart: %s -> %s", s.GatewayID(), s2.GatewayID())
	}
}

// The will marks the box offline when its connection dies without Close.
func TestWillMarksOffline(t *testing.T) {
	srv, addr := startBroker(t, nil)
	s := startService(t, t.TempDir(), addr, nil)
	ready(t, s)
	avail := "gateway/announce/" + s.GatewayID() + "/availability"
	host, port, _ := strings.Cut(addr, ":")
	out := &testkit.Buffer{}
	cmd := exec.Command(needTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-t", avail)
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testkit.WaitFor(t, 5*time.Second, "retained online", func() bool { return strings.Contains(out.String(), "online") })
	cl, ok := srv.Clients.Get("gatewayd-discovery-" + s.GatewayID())
	if !ok {
		t.Fatal("discovery client not connected")
	}
	cl.Stop(packets.ErrServerShuttingDown) // the connection drops: the broker sends the will
	testkit.WaitFor(t, 5*time.Second, "will offline", func() bool { return strings.Contains(out.String(), "offline") })
	// paho reconnects and the box says it is back.
	testkit.WaitFor(t, 15*time.Second, "online again after reconnect", func() bool {
		return strings.Count(out.String(), "online") >= 2
	})
}
