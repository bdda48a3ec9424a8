package announce

import (
	"strings"
	"testing"
	"time"
)

func TestHomeAssistantAbbreviations(t *testing.T) {
	p := Parsers{Prefix: "ha"}
	res, ok, err := p.Parse("ha/cover/garage/door/config", []byte(`{"~":"garage/door","cmd_t":"~/set","pos_t":"~/pos",`+
		`"stat_t":"~/state","avty":[{"t":"~/avail","pl_avail":"up","pl_not_avail":"down"}],"uniq_id":"gd1","dev_cla":"garage",`+
		`"dev":{"ids":["gd-1"],"mf":"Acme","mdl":"Door","sw":"2.0","hw":"rev B","cns":[["mac","02:00:00:00:00:01"]],"cu":"http://192.0.2.9/"}}`), time.Now())
	if !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	c := res.Claims[0]
	if c.Manufacturer != "Acme" || c.Model != "Door" || c.Firmware != "2.0" || c.Hardware != "rev B" || c.MAC != "02:00:00:00:00:01" || c.Address != "192.0.2.9" {
		t.Errorf("device fields: %+v", c)
	}
	e := c.Entities[0]
	if e.ID != "gd1" || e.Component != "cover" || e.StateTopic != "garage/door/state" || e.CommandTopic != "garage/door/set" || e.DeviceClass != "garage" {
		t.Errorf("entity: %+v", e)
	}
	if a := c.Availability; len(a) != 1 || a[0].Topic != "garage/door/avail" || a[0].Available != "up" || a[0].NotAvailable != "down" {
		t.Errorf("availability: %+v", a)
	}
}

func TestMalformed(t *testing.T) {
	p := Parsers{}
	for topic, payload := range map[string]string{
		"homeassistant/sensor/x/config":          `not json`,
		"homeassistant/sensor/x/config ":         ``,
		"homeassistant/device/d/config":          `{"dev":{"ids":"d"},"cmps":{"a":{"name":"no platform"}}}`,
		"homeassistant/sensor/y/config":          `{"dev":{"ids":5}}`,
		"homeassistant/sensor/z/config":          `{"stat_t":"a/+/b"}`,
		"tasmota/discovery/A0B1C2A1B2C3/config":  `{"mac":"A0B1C2A1B2C3"}`,
		"tasmota/discovery/A0B1C2A1B2C3/sensors": `{"nothing":1}`,
		"zigbee2mqtt/bridge/devices":             `[{"friendly_name":"no ieee"}]`,
		"gateway/announce/a":                     `{"id":"b"}`,
	} {
		_, ok, err := p.Parse(topic, []byte(payload), time.Now())
		if strings.HasSuffix(topic, " ") {
			if ok {
				t.Errorf("%q: not an announce topic, yet parsed", topic)
			}
			continue
		}
		if !ok || err == nil {
			t.Errorf("%s %s: ok=%v err=%v, want an error", topic, payload, ok, err)
		}
	}
}

func TestEmptyPayloadRemoves(t *testing.T) {
	p := Parsers{}
	for _, topic := range []string{"homeassistant/sensor/x/config", "homeassistant/device/d/config", "tasmota/discovery/A0B1C2A1B2C3/config", "zigbee2mqtt/bridge/devices", "gateway/announce/a"} {
		res, ok, err := p.Parse(topic, nil, time.Now())
		if !ok || err != nil || res.Group != topic || len(res.Claims) != 0 {
			t.Errorf("%s: %+v ok=%v err=%v", topic, res, ok, err)
		}
	}
}
