// Package announce turns MQTT announce messages (Home Assistant discovery,
// Tasmota discovery, zigbee2mqtt's device list and the gateway's own announce
// topic) into registry claims. It is pure: no network, no state, so every
// format is tested on its own and a bad payload can only produce an error.
package announce

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/homebox/gateway/discovery/registry"
)

// Result is what one message says. Group is what a later message on the
// same topic replaces; no Claims means "remove what this topic announced".
// Dropped counts devices and entities the message described past the
// parser's caps (MaxClaims, MaxEntities): left out, never built.
type Result struct {
	Group   string
	Claims  []registry.Claim
	Dropped registry.Drops
}

// Default caps of Parsers.
const (
	// DefaultMaxPayload bounds one announce: Home Assistant configs, even
	// device-based ones with many components, are a few KB.
	DefaultMaxPayload = 256 << 10
	// DefaultMaxListPayload bounds zigbee2mqtt's bridge/devices, the whole
	// network in one message: a few KB a device with its definition, a few
	// hundred devices on a large network.
	DefaultMaxListPayload = 8 << 20
)

// ErrTooLarge wraps the error of a payload refused for its size, before
// any decoding.
var ErrTooLarge = errors.New("payload too large")

// Parsers routes a topic to the format that owns it. Zero caps take the
// defaults.
type Parsers struct {
	Prefix string // Home Assistant discovery prefix; "homeassistant" when empty
	// MaxPayload caps one announce message (all formats but zigbee2mqtt's
	// list); a larger one is refused whole, before decoding, with ErrTooLarge.
	// DefaultMaxPayload when zero.
	MaxPayload int
	// MaxListPayload is MaxPayload for zigbee2mqtt's bridge/devices.
	// DefaultMaxListPayload when zero.
	MaxListPayload int
	// MaxClaims caps the devices one message describes (zigbee2mqtt's list
	// is read entry by entry and stops building claims there); the
	// registry's device cap when zero.
	MaxClaims int
	// MaxEntities caps one device's entities in one message; the registry's
	// per-device cap when zero.
	MaxEntities int
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (p Parsers) maxClaims() int { return orDefault(p.MaxClaims, registry.DefaultLimits().MaxDevices) }

func (p Parsers) maxEntities() int {
	return orDefault(p.MaxEntities, registry.DefaultLimits().MaxEntitiesPerDevice)
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
// topic. An error means a malformed payload, or one over the size cap
// (errors.Is ErrTooLarge, checked before any decoding): the caller logs it
// with the topic and changes nothing.
func (p Parsers) Parse(topic string, payload []byte, at time.Time) (res Result, ok bool, err error) {
	parts := strings.Split(topic, "/")
	limit := orDefault(p.MaxPayload, DefaultMaxPayload)
	var parse func() (Result, error)
	switch {
	case parts[0] == p.prefix() && (len(parts) == 4 || len(parts) == 5) && parts[len(parts)-1] == "config":
		parse = func() (Result, error) { return parseHA(parts, payload, at) }
	case len(parts) == 4 && parts[0] == "tasmota" && parts[1] == "discovery" && parts[3] == "config":
		parse = func() (Result, error) { return parseTasmotaConfig(topic, parts[2], payload, at) }
	case len(parts) == 4 && parts[0] == "tasmota" && parts[1] == "discovery" && parts[3] == "sensors":
		parse = func() (Result, error) { return parseTasmotaSensors(topic, parts[2], payload, at) }
	case len(parts) == 3 && parts[1] == "bridge" && parts[2] == "devices" && parts[0] == "zigbee2mqtt":
		limit = orDefault(p.MaxListPayload, DefaultMaxListPayload)
		parse = func() (Result, error) {
			return parseZigbee2MQTT(parts[0], payload, at, p.maxClaims(), p.maxEntities())
		}
	case len(parts) == 3 && parts[0]+"/"+parts[1]+"/" == AnnouncePrefix:
		parse = func() (Result, error) { return parseGateway(topic, parts[2], payload, at) }
	default:
		return Result{}, false, nil
	}
	if len(payload) > limit {
		return Result{}, true, fmt.Errorf("%w: %d bytes, the limit for this topic is %d", ErrTooLarge, len(payload), limit)
	}
	res, err = parse()
	if err != nil {
		return Result{}, true, err
	}
	// Payloads under MaxPayload make few entities; zigbee2mqtt's list cuts
	// its own while it reads.
	for i := range res.Claims {
		if c := &res.Claims[i]; len(c.Entities) > p.maxEntities() {
			res.Dropped.Entities += uint64(len(c.Entities) - p.maxEntities())
			c.Entities = c.Entities[:p.maxEntities()]
		}
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
