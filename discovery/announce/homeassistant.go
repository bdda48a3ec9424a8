package announce

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/homebox/gateway/discovery/registry"
)

var haName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// parseHA reads <prefix>/<component>/[<node_id>/]<object_id>/config, where
// component "device" is a device-based payload carrying many components.
func parseHA(parts []string, payload []byte, at time.Time) (Result, error) {
	component := parts[1]
	node, object := "", parts[2]
	if len(parts) == 5 {
		node, object = parts[2], parts[3]
	}
	for _, s := range []string{component, node, object} {
		if s != "" && !haName.MatchString(s) {
			return Result{}, fmt.Errorf("home assistant discovery: topic level %q may only hold letters, digits, _ and -", s)
		}
	}
	if len(payload) == 0 {
		return Result{}, nil
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Result{}, fmt.Errorf("home assistant discovery: payload is not a JSON object: %w", err)
	}
	if raw == nil {
		return Result{}, fmt.Errorf("home assistant discovery: payload is null")
	}
	cfg := expand(raw, haAbbrev)
	applyBase(cfg)

	objectID := object
	if node != "" {
		objectID = node + "_" + object
	}
	c := registry.Claim{Source: "homeassistant", SeenAt: at}
	if err := haDevice(cfg, &c); err != nil {
		return Result{}, err
	}
	if component == "device" {
		comps, ok := cfg["components"].(map[string]any)
		if !ok || len(comps) == 0 {
			return Result{}, fmt.Errorf("home assistant discovery: device-based payload needs a \"components\" (cmps) object with at least one entry")
		}
		if len(c.Keys) == 0 {
			return Result{}, fmt.Errorf("home assistant discovery: device-based payload needs \"device\" with identifiers or connections")
		}
		ids := make([]string, 0, len(comps))
		for id := range comps {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			m, ok := comps[id].(map[string]any)
			if !ok {
				return Result{}, fmt.Errorf("home assistant discovery: component %q is not an object", id)
			}
			m = expand(m, haAbbrev)
			// Options at the top level (state topic, availability, ~) are
			// shared by every component that does not set its own.
			for k, v := range cfg {
				if k == "components" || k == "device" || k == "origin" {
					continue
				}
				if _, set := m[k]; !set {
					m[k] = v
				}
			}
			applyBase(m)
			platform, _ := m["platform"].(string)
			if platform == "" || !haName.MatchString(platform) {
				return Result{}, fmt.Errorf("home assistant discovery: component %q needs a \"platform\" (p) such as sensor or switch", id)
			}
			e, err := haEntity(m, platform, objectID+"_"+id)
			if err != nil {
				return Result{}, fmt.Errorf("home assistant discovery: component %q: %w", id, err)
			}
			c.Entities = append(c.Entities, e)
			av, err := haAvailability(m)
			if err != nil {
				return Result{}, fmt.Errorf("home assistant discovery: component %q: %w", id, err)
			}
			c.Availability = mergeAvail(c.Availability, av)
		}
	} else {
		e, err := haEntity(cfg, component, component+"."+objectID)
		if err != nil {
			return Result{}, fmt.Errorf("home assistant discovery: %w", err)
		}
		c.Entities = []registry.Entity{e}
		av, err := haAvailability(cfg)
		if err != nil {
			return Result{}, fmt.Errorf("home assistant discovery: %w", err)
		}
		c.Availability = av
		if len(c.Keys) == 0 {
			// An entity with no device block stands for itself.
			c.Keys = []string{"ha-entity:" + e.ID}
			if c.Name == "" {
				c.Name = e.Name
			}
		}
	}
	return Result{Claims: []registry.Claim{c}}, nil
}

// expand renames abbreviated keys, and those of the nested objects whose
// abbreviations differ (device, origin, availability entries).
func expand(in map[string]any, table map[string]string) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if full, ok := table[k]; ok {
			k = full
		}
		out[k] = v
	}
	if d, ok := out["device"].(map[string]any); ok {
		out["device"] = expand(d, haDeviceAbbrev)
	}
	if o, ok := out["origin"].(map[string]any); ok {
		out["origin"] = expand(o, haOriginAbbrev)
	}
	if list, ok := out["availability"].([]any); ok {
		nl := make([]any, len(list))
		for i, a := range list {
			if m, ok := a.(map[string]any); ok {
				nl[i] = expand(m, haAvailAbbrev)
			} else {
				nl[i] = a
			}
		}
		out["availability"] = nl
	}
	return out
}

// applyBase replaces "~" at the start or end of topic options with the
// base topic, as Home Assistant does.
func applyBase(m map[string]any) {
	base, ok := m["~"].(string)
	if !ok {
		return
	}
	sub := func(v string) string {
		if strings.HasPrefix(v, "~") {
			return base + v[1:]
		}
		if strings.HasSuffix(v, "~") {
			return v[:len(v)-1] + base
		}
		return v
	}
	for k, v := range m {
		if s, ok := v.(string); ok && (k == "topic" || strings.HasSuffix(k, "_topic")) {
			m[k] = sub(s)
		}
	}
	if list, ok := m["availability"].([]any); ok {
		for _, a := range list {
			if am, ok := a.(map[string]any); ok {
				if t, ok := am["topic"].(string); ok {
					am["topic"] = sub(t)
				}
			}
		}
	}
}

func str(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case float64, bool:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("%q must be a string, not %T", key, v)
}

func haDevice(cfg map[string]any, c *registry.Claim) error {
	raw, ok := cfg["device"]
	if !ok || raw == nil {
		return nil
	}
	dev, ok := raw.(map[string]any)
	if !ok {
		return fmt.Errorf("home assistant discovery: \"device\" (dev) must be an object")
	}
	switch ids := dev["identifiers"].(type) {
	case nil:
	case string:
		c.Identifiers = []string{ids}
	case []any:
		for _, id := range ids {
			s, ok := id.(string)
			if !ok {
				return fmt.Errorf("home assistant discovery: device identifiers (ids) must be strings")
			}
			c.Identifiers = append(c.Identifiers, s)
		}
	default:
		return fmt.Errorf("home assistant discovery: device identifiers (ids) must be a string or a list of strings")
	}
	if cns, ok := dev["connections"]; ok && cns != nil {
		list, ok := cns.([]any)
		if !ok {
			return fmt.Errorf("home assistant discovery: device connections (cns) must be a list of [type, value] pairs")
		}
		for _, p := range list {
			pair, ok := p.([]any)
			if !ok || len(pair) != 2 {
				return fmt.Errorf("home assistant discovery: device connections (cns) must be a list of [type, value] pairs")
			}
			t, ok1 := pair[0].(string)
			v, ok2 := pair[1].(string)
			if !ok1 || !ok2 {
				return fmt.Errorf("home assistant discovery: device connection %v must hold two strings", pair)
			}
			c.Connections = append(c.Connections, [2]string{t, v})
			if strings.EqualFold(t, "mac") && c.MAC == "" {
				c.MAC = registry.FormatMAC(v)
			}
		}
	}
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &c.Name}, {"manufacturer", &c.Manufacturer}, {"model", &c.Model}, {"sw_version", &c.Firmware}, {"hw_version", &c.Hardware}} {
		if *f.dst, err = str(dev, f.key); err != nil {
			return fmt.Errorf("home assistant discovery: device: %w", err)
		}
	}
	if c.Model == "" {
		c.Model, _ = str(dev, "model_id")
	}
	if cu, _ := str(dev, "configuration_url"); cu != "" {
		if h := hostOfURL(cu); h != "" {
			c.Address = h
		}
	}
	c.Keys = identityKeys(c.Identifiers, c.Connections)
	return nil
}

func hostOfURL(u string) string {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		rest, ok = strings.CutPrefix(u, "https://")
	}
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.HasSuffix(rest, "]") {
		rest = rest[:i]
	}
	return strings.Trim(rest, "[]")
}

func haEntity(m map[string]any, component, fallbackID string) (registry.Entity, error) {
	e := registry.Entity{Component: component, Source: "homeassistant"}
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{{"unique_id", &e.ID}, {"name", &e.Name}, {"state_topic", &e.StateTopic}, {"command_topic", &e.CommandTopic}, {"device_class", &e.DeviceClass}, {"unit_of_measurement", &e.Unit}, {"value_template", &e.ValueTemplate}} {
		if *f.dst, err = str(m, f.key); err != nil {
			return e, err
		}
	}
	if e.StateTopic == "" {
		e.StateTopic, _ = str(m, "topic") // device triggers and tags
	}
	for _, t := range []string{e.StateTopic, e.CommandTopic} {
		if t != "" {
			if err := validTopicName(t); err != nil {
				return e, err
			}
		}
	}
	if e.ID == "" {
		e.ID = fallbackID
	}
	return e, nil
}

func haAvailability(m map[string]any) ([]registry.AvailabilityTopic, error) {
	on, err := str(m, "payload_available")
	if err != nil {
		return nil, err
	}
	off, err := str(m, "payload_not_available")
	if err != nil {
		return nil, err
	}
	var out []registry.AvailabilityTopic
	if t, err := str(m, "availability_topic"); err != nil {
		return nil, err
	} else if t != "" {
		if err := validTopicName(t); err != nil {
			return nil, fmt.Errorf("availability_topic: %w", err)
		}
		out = append(out, registry.AvailabilityTopic{Topic: t, Available: on, NotAvailable: off})
	}
	if raw, ok := m["availability"]; ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			return nil, fmt.Errorf("\"availability\" (avty) must be a list of {topic, payload_available, payload_not_available}")
		}
		for i, a := range list {
			am, ok := a.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("availability entry %d is not an object", i)
			}
			t, err := str(am, "topic")
			if err != nil || t == "" {
				return nil, fmt.Errorf("availability entry %d needs a topic (t)", i)
			}
			if err := validTopicName(t); err != nil {
				return nil, fmt.Errorf("availability entry %d: %w", i, err)
			}
			a1, _ := str(am, "payload_available")
			a0, _ := str(am, "payload_not_available")
			if a1 == "" {
				a1 = on
			}
			if a0 == "" {
				a0 = off
			}
			out = append(out, registry.AvailabilityTopic{Topic: t, Available: a1, NotAvailable: a0})
		}
	}
	return out, nil
}

func mergeAvail(into, more []registry.AvailabilityTopic) []registry.AvailabilityTopic {
	for _, a := range more {
		if !slices.ContainsFunc(into, func(x registry.AvailabilityTopic) bool { return x.Topic == a.Topic }) {
			into = append(into, a)
		}
	}
	return into
}
