// Package announce turns MQTT announce messages (Home Assistant discovery,
// Tasmota discovery, zigbee2mqtt's device list and the gateway's own announce
// topic) into registry claims. It is pure: no network, no state, so every
// format is tested on its own and a bad payload can only produce an error.
package announce

import (
	"fmt"
	"strings"
	"time"

	"github.com/homebox/gateway/discovery/registry"
)

// Result is what one message says. Group is what a later message on the
// same topic replaces; no Claims means "remove what this topic announced".
type Result struct {
	Group  string
	Claims []registry.Claim
}

// Parsers routes a topic to the format that owns it.
type Parsers struct {
	Prefix string // Home Assistant discovery prefix; "homeassistant" when empty
}

func (p Parsers) prefix() string {
	if p.Prefix == "" {
		return "homeassistant"
	}
	return p.Prefix
}

// Filters are the topic filters to subscribe to for every announce format.
func (p Parsers) Filters() []string {
	return []string{
		p.prefix() + "/+/+/config",
		p.prefix() + "/+/+/+/config",
		"tasmota/discovery/+/config",
		"tasmota/discovery/+/sensors",
		"zigbee2mqtt/bridge/devices",
		AnnouncePrefix + "+",
	}
}

// StatusTopic is where Home Assistant publishes its birth ("online") and
// will ("offline") messages.
func (p Parsers) StatusTopic() string { return p.prefix() + "/status" }

// Parse reads one message. ok is false when the topic is not an announce
// topic. An error means a malformed payload: the caller logs it with the
// topic and changes nothing.
func (p Parsers) Parse(topic string, payload []byte, at time.Time) (res Result, ok bool, err error) {
	parts := strings.Split(topic, "/")
	switch {
	case parts[0] == p.prefix() && (len(parts) == 4 || len(parts) == 5) && parts[len(parts)-1] == "config":
		res, err = parseHA(parts, payload, at)
	case len(parts) == 4 && parts[0] == "tasmota" && parts[1] == "discovery" && parts[3] == "config":
		res, err = parseTasmotaConfig(topic, parts[2], payload, at)
	case len(parts) == 4 && parts[0] == "tasmota" && parts[1] == "discovery" && parts[3] == "sensors":
		res, err = parseTasmotaSensors(topic, parts[2], payload, at)
	case len(parts) == 3 && parts[1] == "bridge" && parts[2] == "devices" && parts[0] == "zigbee2mqtt":
		res, err = parseZigbee2MQTT(topic, parts[0], payload, at)
	case len(parts) == 3 && parts[0]+"/"+parts[1]+"/" == AnnouncePrefix:
		res, err = parseGateway(topic, parts[2], payload, at)
	default:
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, true, err
	}
	res.Group = topic
	return res, true, nil
}

// identityKeys turns Home-Assistant-style identifiers and connections into
// registry keys; identifiers that are MACs also yield a MAC key, so a
// device's HA entry meets its Tasmota or ESPHome entry.
func identityKeys(identifiers []string, connections [][2]string) []string {
	var keys []string
	for _, id := range identifiers {
		keys = append(keys, "id:"+id)
		if k := registry.MACKey(id); k != "" {
			keys = append(keys, k)
		}
		// zigbee2mqtt names its devices zigbee2mqtt_<ieee> in Home Assistant.
		if ieee, ok := strings.CutPrefix(id, "zigbee2mqtt_"); ok && strings.HasPrefix(ieee, "0x") {
			keys = append(keys, "ieee:"+strings.ToLower(ieee))
		}
	}
	for _, c := range connections {
		switch strings.ToLower(c[0]) {
		case "mac":
			if k := registry.MACKey(c[1]); k != "" {
				keys = append(keys, k)
			}
		case "zigbee":
			keys = append(keys, "ieee:"+strings.ToLower(c[1]))
		default:
			keys = append(keys, "conn:"+strings.ToLower(c[0])+":"+c[1])
		}
	}
	return keys
}

func validTopicName(t string) error {
	if t == "" {
		return fmt.Errorf("empty topic")
	}
	if strings.ContainsAny(t, "+#\x00") {
		return fmt.Errorf("topic %q has a wildcard or NUL", t)
	}
	return nil
}
