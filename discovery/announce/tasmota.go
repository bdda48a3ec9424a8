package announce

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/homebox/gateway/discovery/registry"
)

// tasmotaConfig is the retained payload Tasmota publishes on
// tasmota/discovery/<MAC>/config (field names are Tasmota's own).
type tasmotaConfig struct {
	IP           string    `json:"ip"`
	DeviceName   string    `json:"dn"`
	FriendlyName []*string `json:"fn"`
	Hostname     string    `json:"hn"`
	MAC          string    `json:"mac"`
	Model        string    `json:"md"`
	Offline      string    `json:"ofln"`
	Online       string    `json:"onln"`
	Firmware     string    `json:"sw"`
	Topic        string    `json:"t"`
	FullTopic    string    `json:"ft"`
	Prefixes     []string  `json:"tp"`
	Relays       []int     `json:"rl"`
	Version      int       `json:"ver"`
}

// parseTasmotaConfig reads a device's main discovery message.
func parseTasmotaConfig(topic, mac string, payload []byte, at time.Time) (Result, error) {
	if registry.MACKey(mac) == "" {
		return Result{}, fmt.Errorf("tasmota discovery: %q in the topic is not a MAC address", mac)
	}
	if len(payload) == 0 {
		return Result{}, nil
	}
	var c tasmotaConfig
	if err := json.Unmarshal(payload, &c); err != nil {
		return Result{}, fmt.Errorf("tasmota discovery: %w", err)
	}
	if c.Topic == "" {
		return Result{}, fmt.Errorf("tasmota discovery: payload has no device topic (\"t\")")
	}
	if c.MAC != "" && registry.MACKey(c.MAC) != registry.MACKey(mac) {
		return Result{}, fmt.Errorf("tasmota discovery: payload MAC %q differs from the topic's %q", c.MAC, mac)
	}
	if len(c.Prefixes) != 3 {
		c.Prefixes = []string{"cmnd", "stat", "tele"}
	}
	if c.FullTopic == "" {
		c.FullTopic = "%prefix%/%topic%/"
	}
	full := func(prefix string) string {
		s := strings.ReplaceAll(c.FullTopic, "%prefix%", prefix)
		s = strings.ReplaceAll(s, "%topic%", c.Topic)
		s = strings.ReplaceAll(s, "%hostname%", c.Hostname)
		s = strings.ReplaceAll(s, "%id%", strings.ToUpper(strings.ReplaceAll(mac, ":", ""))[6:])
		if !strings.HasSuffix(s, "/") {
			s += "/"
		}
		return s
	}
	name := c.DeviceName
	if name == "" && len(c.FriendlyName) > 0 && c.FriendlyName[0] != nil {
		name = *c.FriendlyName[0]
	}
	on, off := c.Online, c.Offline
	if on == "" {
		on = "Online"
	}
	if off == "" {
		off = "Offline"
	}
	cl := registry.Claim{
		Source:       "tasmota",
		Name:         name,
		Manufacturer: "Tasmota",
		Model:        c.Model,
		Firmware:     c.Firmware,
		MAC:          mac,
		Address:      c.IP,
		Identifiers:  []string{strings.ToUpper(registry.FormatMAC(mac))},
		Connections:  [][2]string{{"mac", registry.FormatMAC(mac)}},
		Availability: []registry.AvailabilityTopic{{Topic: full(c.Prefixes[2]) + "LWT", Available: on, NotAvailable: off}},
		SeenAt:       at,
	}
	cl.Keys = []string{registry.MACKey(mac)}
	if c.Hostname != "" {
		cl.Keys = append(cl.Keys, "host:"+strings.ToLower(c.Hostname))
	}
	active := 0
	for _, r := range c.Relays {
		if r != 0 {
			active++
		}
	}
	for i, r := range c.Relays {
		comp := map[int]string{1: "switch", 2: "light", 3: "cover"}[r]
		if comp == "" {
			continue
		}
		power := "POWER"
		if len(c.Relays) > 1 && active > 1 {
			power += strconv.Itoa(i + 1)
		}
		ename := name
		if i < len(c.FriendlyName) && c.FriendlyName[i] != nil {
			ename = *c.FriendlyName[i]
		}
		cl.Entities = append(cl.Entities, registry.Entity{
			ID:           fmt.Sprintf("%s_%s_relay_%d", strings.ToUpper(registry.MACKey(mac)[4:]), comp, i+1),
			Component:    comp,
			Name:         ename,
			Source:       "tasmota",
			StateTopic:   full(c.Prefixes[1]) + "RESULT",
			CommandTopic: full(c.Prefixes[0]) + power,
		})
	}
	return Result{Claims: []registry.Claim{cl}}, nil
}

// parseTasmotaSensors reads tasmota/discovery/<MAC>/sensors: {"sn":{...},"ver":1}
// where each object under sn is one sensor and its numeric fields are values.
func parseTasmotaSensors(topic, mac string, payload []byte, at time.Time) (Result, error) {
	key := registry.MACKey(mac)
	if key == "" {
		return Result{}, fmt.Errorf("tasmota discovery: %q in the topic is not a MAC address", mac)
	}
	if len(payload) == 0 {
		return Result{}, nil
	}
	var s struct {
		SN map[string]json.RawMessage `json:"sn"`
	}
	if err := json.Unmarshal(payload, &s); err != nil {
		return Result{}, fmt.Errorf("tasmota sensors: %w", err)
	}
	if s.SN == nil {
		return Result{}, fmt.Errorf("tasmota sensors: payload has no \"sn\" object")
	}
	cl := registry.Claim{Source: "tasmota", MAC: mac, Keys: []string{key}, SeenAt: at}
	names := make([]string, 0, len(s.SN))
	for n := range s.SN {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, sensor := range names {
		var fields map[string]any
		if json.Unmarshal(s.SN[sensor], &fields) != nil {
			continue // Time, TempUnit and other plain values
		}
		fnames := make([]string, 0, len(fields))
		for f := range fields {
			fnames = append(fnames, f)
		}
		sort.Strings(fnames)
		for _, f := range fnames {
			switch fields[f].(type) {
			case float64, string, bool:
			default:
				continue
			}
			cl.Entities = append(cl.Entities, registry.Entity{
				ID:          fmt.Sprintf("%s_sensor_sensor_%s_%s", strings.ToUpper(key[4:]), sensor, f),
				Component:   "sensor",
				Name:        sensor + " " + f,
				Source:      "tasmota",
				DeviceClass: strings.ToLower(f),
			})
		}
	}
	return Result{Claims: []registry.Claim{cl}}, nil
}
