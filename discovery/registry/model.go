// Package registry is the gateway's device registry: one record per physical
// device, merged from every claim made about it (Home Assistant discovery,
// Tasmota, zigbee2mqtt, the gateway announce topic, mDNS), with availability
// and last-seen times, persisted atomically as JSON.
//
// Sources never edit devices directly. A source hands the registry the claims
// one message makes (Apply), and a later message on the same topic replaces
// them; an empty set removes them. Devices are derived from claims by shared
// identity keys, so a device announced by two sources is one device, and a
// removal never leaves a stale half behind.
package registry

import "time"

// Availability states of a device.
const (
	Online  = "online"
	Offline = "offline"
	Unknown = "unknown"
)

// Device is what the API and `gwctl devices` show. The JSON names are a
// contract. Values returned by the registry are shared: read, do not modify.
type Device struct {
	ID           string      `json:"id"`
	Name         string      `json:"name"`
	Manufacturer string      `json:"manufacturer,omitempty"`
	Model        string      `json:"model,omitempty"`
	Firmware     string      `json:"firmware,omitempty"`
	Hardware     string      `json:"hardware,omitempty"`
	MAC          string      `json:"mac,omitempty"`     // aa:bb:cc:dd:ee:ff
	Address      string      `json:"address,omitempty"` // IP address or host name, when a source gave one
	Identifiers  []string    `json:"identifiers,omitempty"`
	Connections  [][2]string `json:"connections,omitempty"` // Home Assistant style: [type, value]
	Sources      []string    `json:"sources"`               // homeassistant, tasmota, zigbee2mqtt, gateway, mdns
	Availability string      `json:"availability"`          // online, offline or unknown
	// AvailabilityTopics are the MQTT topics whose birth/LWT payloads say
	// whether the device is online.
	AvailabilityTopics []string  `json:"availability_topics,omitempty"`
	Entities           []Entity  `json:"entities,omitempty"`
	Services           []Service `json:"services,omitempty"` // found over mDNS
	FirstSeen          time.Time `json:"first_seen"`
	// LastSeen is the last message from the device itself (an announce,
	// its availability or a state), never a retained one the broker
	// replays: a broker restart does not make a gone device look alive.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Stale: nothing heard from the device for the registry's StaleAfter.
	Stale bool `json:"stale"`
}

// Entity is one thing a device exposes (a sensor, a switch, a light...).
type Entity struct {
	ID           string `json:"id"`        // unique_id, or derived from the topic
	Component    string `json:"component"` // Home Assistant component: sensor, switch, light...
	Name         string `json:"name,omitempty"`
	Source       string `json:"source"`
	StateTopic   string `json:"state_topic,omitempty"`
	CommandTopic string `json:"command_topic,omitempty"`
	DeviceClass  string `json:"device_class,omitempty"`
	Unit         string `json:"unit,omitempty"`
	// ValueTemplate picks the value out of a state payload (Home
	// Assistant's value_template; {{ value_json.x }} forms are read).
	ValueTemplate string `json:"value_template,omitempty"`
	// State is the entity's current value, from its state topic, and
	// StateAt when it was heard.
	State   string    `json:"state,omitempty"`
	StateAt time.Time `json:"state_at,omitzero"`
}

// Service is one mDNS service instance that answered a browse.
type Service struct {
	Type      string            `json:"type"`     // _mqtt._tcp
	Instance  string            `json:"instance"` // instance name, without the service type
	Host      string            `json:"host,omitempty"`
	Addresses []string          `json:"addresses,omitempty"`
	Port      int               `json:"port"`
	TXT       map[string]string `json:"txt,omitempty"`
	Interface string            `json:"interface,omitempty"`
	LastSeen  time.Time         `json:"last_seen"`
}

// AvailabilityTopic is one topic that tells whether a device is up, and the
// payloads that mean so.
type AvailabilityTopic struct {
	Topic        string `json:"topic"`
	Available    string `json:"available,omitempty"`     // default "online"
	NotAvailable string `json:"not_available,omitempty"` // default "offline"
}

// Claim is what one source says about one device. Keys are its identity:
// claims that share a key describe the same device. Typical keys are
// "mac:aabbccddeeff", "id:<identifier>", "ieee:0x...", "host:<name>".
type Claim struct {
	Source       string              `json:"source"`
	Keys         []string            `json:"keys"`
	Name         string              `json:"name,omitempty"`
	Manufacturer string              `json:"manufacturer,omitempty"`
	Model        string              `json:"model,omitempty"`
	Firmware     string              `json:"firmware,omitempty"`
	Hardware     string              `json:"hardware,omitempty"`
	MAC          string              `json:"mac,omitempty"`
	Address      string              `json:"address,omitempty"`
	Identifiers  []string            `json:"identifiers,omitempty"`
	Connections  [][2]string         `json:"connections,omitempty"`
	Availability []AvailabilityTopic `json:"availability,omitempty"`
	Entities     []Entity            `json:"entities,omitempty"`
	Services     []Service           `json:"services,omitempty"`
	SeenAt       time.Time           `json:"seen_at"`
}
