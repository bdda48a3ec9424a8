package announce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/homebox/gateway/discovery/registry"
)

// AnnouncePrefix starts the gateway's own announce topic:
// gateway/announce/<device_id>. See docs/ANNOUNCE.md.
const AnnouncePrefix = "gateway/announce/"

// Announce is the retained JSON payload on gateway/announce/<id>. The JSON
// names are a contract (docs/ANNOUNCE.md).
type Announce struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	Model             string   `json:"model,omitempty"`
	Manufacturer      string   `json:"manufacturer,omitempty"`
	Firmware          string   `json:"firmware,omitempty"`
	Address           string   `json:"address,omitempty"`
	MAC               string   `json:"mac,omitempty"`
	Identifiers       []string `json:"identifiers,omitempty"`
	AvailabilityTopic string   `json:"availability_topic,omitempty"`
}

// AnnounceTopic is where the device with this ID announces itself.
func AnnounceTopic(id string) string { return AnnouncePrefix + id }

// AvailabilityTopic is the availability topic the gateway uses for itself;
// other devices may name any topic.
func AvailabilityTopic(id string) string { return AnnouncePrefix + id + "/availability" }

// ValidID reports whether id can be one topic level of an announce topic.
func ValidID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("device id %q must have 1 to 128 characters", id)
	}
	if strings.ContainsAny(id, "/+#\x00 ") {
		return fmt.Errorf("device id %q may not hold '/', '+', '#', spaces or NUL", id)
	}
	return nil
}

func parseGateway(topic, id string, payload []byte, at time.Time) (Result, error) {
	if err := ValidID(id); err != nil {
		return Result{}, fmt.Errorf("gateway announce: %w", err)
	}
	if len(payload) == 0 {
		return Result{}, nil
	}
	var a Announce
	dec := json.NewDecoder(bytes.NewReader(payload)) // not a string: the payload is held once
	if err := dec.Decode(&a); err != nil {
		return Result{}, fmt.Errorf("gateway announce: %w", err)
	}
	if a.ID != id {
		return Result{}, fmt.Errorf("gateway announce: payload id %q differs from the topic's %q", a.ID, id)
	}
	if a.MAC != "" && registry.FormatMAC(a.MAC) == "" {
		return Result{}, fmt.Errorf("gateway announce: mac %q is not a MAC address", a.MAC)
	}
	c := registry.Claim{
		Source:       "gateway",
		Keys:         []string{"id:" + a.ID},
		Name:         a.Name,
		Manufacturer: a.Manufacturer,
		Model:        a.Model,
		Firmware:     a.Firmware,
		Address:      a.Address,
		MAC:          a.MAC,
		Identifiers:  append([]string{a.ID}, a.Identifiers...),
		SeenAt:       at,
	}
	for _, id := range a.Identifiers {
		c.Keys = append(c.Keys, "id:"+id)
	}
	if a.AvailabilityTopic != "" {
		if err := validTopicName(a.AvailabilityTopic); err != nil {
			return Result{}, fmt.Errorf("gateway announce: availability_topic: %w", err)
		}
		c.Availability = []registry.AvailabilityTopic{{Topic: a.AvailabilityTopic}}
	}
	return Result{Claims: []registry.Claim{c}}, nil
}
