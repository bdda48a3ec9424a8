package announce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/homebox/gateway/discovery/registry"
)

// z2mDevice is one entry of zigbee2mqtt's retained bridge/devices list.
type z2mDevice struct {
	IEEE         string `json:"ieee_address"`
	Type         string `json:"type"`
	FriendlyName string `json:"friendly_name"`
	Manufacturer string `json:"manufacturer"`
	ModelID      string `json:"model_id"`
	Software     string `json:"software_build_id"`
	Definition   *struct {
		Model       string      `json:"model"`
		Vendor      string      `json:"vendor"`
		Description string      `json:"description"`
		Exposes     []z2mExpose `json:"exposes"`
	} `json:"definition"`
}

type z2mExpose struct {
	Type     string      `json:"type"`
	Name     string      `json:"name"`
	Property string      `json:"property"`
	Unit     string      `json:"unit"`
	Access   int         `json:"access"`
	Endpoint string      `json:"endpoint"`
	Features []z2mExpose `json:"features"`
}

// parseZigbee2MQTT reads <base>/bridge/devices: the whole device list, so it
// replaces every device the previous list named. The list is read entry by
// entry (a large network is megabytes): past maxClaims devices, entries are
// only checked and counted in Dropped.Devices, and a device's entities stop
// at maxEntities, so what is built stays bounded whatever the list holds.
func parseZigbee2MQTT(base string, payload []byte, at time.Time, maxClaims, maxEntities int) (Result, error) {
	if len(payload) == 0 {
		return Result{}, nil
	}
	notList := func(err error) error {
		return fmt.Errorf("zigbee2mqtt devices: payload is not a JSON list of devices: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	tok, err := dec.Token()
	if err != nil {
		return Result{}, notList(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return Result{}, notList(fmt.Errorf("it starts with %v", tok))
	}
	var res Result
	for i := 0; dec.More(); i++ {
		if len(res.Claims) >= maxClaims {
			var rest struct {
				IEEE string `json:"ieee_address"`
			}
			if err := dec.Decode(&rest); err != nil {
				return Result{}, fmt.Errorf("zigbee2mqtt devices: entry %d: %w", i, err)
			}
			if !validIEEE(rest.IEEE) {
				return Result{}, fmt.Errorf("zigbee2mqtt devices: entry %d has no ieee_address such as 0x00158d0001a2b3c4", i)
			}
			res.Dropped.Devices++
			continue
		}
		var d z2mDevice
		if err := dec.Decode(&d); err != nil {
			return Result{}, fmt.Errorf("zigbee2mqtt devices: entry %d: %w", i, err)
		}
		if !validIEEE(d.IEEE) {
			return Result{}, fmt.Errorf("zigbee2mqtt devices: entry %d has no ieee_address such as 0x00158d0001a2b3c4", i)
		}
		ieee := strings.ToLower(d.IEEE)
		name := d.FriendlyName
		if name == "" {
			name = ieee
		}
		c := registry.Claim{
			Source:       "zigbee2mqtt",
			Keys:         []string{"ieee:" + ieee, "id:zigbee2mqtt_" + ieee},
			Name:         name,
			Manufacturer: d.Manufacturer,
			Model:        d.ModelID,
			Firmware:     d.Software,
			Identifiers:  []string{"zigbee2mqtt_" + ieee},
			Connections:  [][2]string{{"zigbee", ieee}},
			SeenAt:       at,
		}
		if d.Definition != nil {
			if d.Definition.Vendor != "" {
				c.Manufacturer = d.Definition.Vendor
			}
			if d.Definition.Model != "" {
				c.Model = d.Definition.Model
			}
			state := base + "/" + name
			for _, e := range d.Definition.Exposes {
				c.Entities = append(c.Entities, z2mEntities(ieee, state, e)...)
			}
			if n := len(c.Entities); n > maxEntities {
				res.Dropped.Entities += uint64(n - maxEntities)
				c.Entities = slices.Clone(c.Entities[:maxEntities])
			}
		}
		if !strings.EqualFold(d.Type, "Coordinator") {
			c.Availability = []registry.AvailabilityTopic{{Topic: base + "/" + name + "/availability"}}
		}
		res.Claims = append(res.Claims, c)
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return Result{}, notList(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Result{}, notList(fmt.Errorf("data after the list"))
	}
	return res, nil
}

func validIEEE(s string) bool { return strings.HasPrefix(s, "0x") && len(s) >= 4 }

// z2mEntities maps one expose to entities: a composite (light, switch...)
// becomes one entity of that component, a plain property becomes a sensor,
// or a control when it can be set.
func z2mEntities(ieee, state string, e z2mExpose) []registry.Entity {
	const settable = 2
	switch e.Type {
	case "light", "switch", "lock", "cover", "climate", "fan":
		id := ieee + "_" + e.Type
		if e.Endpoint != "" {
			id += "_" + e.Endpoint
		}
		return []registry.Entity{{ID: id, Component: e.Type, Name: e.Type, Source: "zigbee2mqtt", StateTopic: state, CommandTopic: state + "/set"}}
	}
	if e.Property == "" {
		var out []registry.Entity
		for _, f := range e.Features {
			out = append(out, z2mEntities(ieee, state, f)...)
		}
		return out
	}
	comp := "sensor"
	if e.Type == "binary" {
		comp = "binary_sensor"
	}
	// zigbee2mqtt publishes one JSON object per device; the entity is its
	// property.
	ent := registry.Entity{ID: ieee + "_" + e.Property, Component: comp, Name: e.Name, Source: "zigbee2mqtt", StateTopic: state, Unit: e.Unit,
		ValueTemplate: "{{ value_json." + e.Property + " }}"}
	if e.Access&settable != 0 {
		ent.Component = map[string]string{"binary": "switch", "numeric": "number", "enum": "select", "text": "text"}[e.Type]
		if ent.Component == "" {
			ent.Component = "sensor"
		}
		ent.CommandTopic = state + "/set"
	}
	return []registry.Entity{ent}
}
