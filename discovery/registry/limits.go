package registry

import (
	"maps"
	"slices"
	"unicode/utf8"
)

// Limits bound what the registry holds, whatever its sources say: anyone on
// the LAN can publish an announce, and a retained one is read again after
// every restart, so without them one message can fill the box's memory
// (issue 14, finding 7). Zero fields take DefaultLimits' values.
type Limits struct {
	// MaxDevices caps the devices. At the cap a claim that would make a new
	// device is refused; devices already known are kept and keep being
	// updated. Evicting old devices instead would let a flood push out the
	// owner's real ones (and their automations) with made-up ones.
	MaxDevices int `json:"max_devices"`
	// MaxEntitiesPerDevice caps one device's entities, and the claims
	// (announce topics) that describe it: Home Assistant devices usually
	// send one config topic per entity.
	MaxEntitiesPerDevice int `json:"max_entities_per_device"`
	// MaxEntities caps entities in the whole registry; every claim counts as
	// at least one, so claims are bounded too.
	MaxEntities int `json:"max_entities"`
	// MaxText caps free-text fields (names, manufacturer, model, firmware,
	// address, units, mDNS service fields): longer ones are cut at a UTF-8
	// boundary. The owner still sees the device; nothing is identified by
	// these fields, so a cut one cannot merge two devices.
	MaxText int `json:"max_text_bytes"`
	// MaxID caps identifiers (identity keys, Home Assistant identifiers and
	// connections, entity ids): a claim or entity with a longer one is
	// refused, not cut, because a cut id could collide with another device's
	// and merge the two.
	MaxID int `json:"max_id_bytes"`
	// MaxTopic caps MQTT topics (state, command, availability): an entity or
	// availability entry with a longer one is refused, not cut, because a
	// cut topic is another topic.
	MaxTopic int `json:"max_topic_bytes"`
	// MaxList caps the lists of one claim (identifiers, connections,
	// availability topics, services, addresses, TXT records): the rest is
	// left out.
	MaxList int `json:"max_list"`
}

// DefaultLimits are sized for a large home: a few hundred devices in
// practice (a zigbee2mqtt network rarely passes 200), tens of entities each.
func DefaultLimits() Limits {
	return Limits{
		MaxDevices:           1000,
		MaxEntitiesPerDevice: 256,
		MaxEntities:          20000,
		MaxText:              256,
		MaxID:                256,
		MaxTopic:             512,
		MaxList:              32,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxDevices, d.MaxDevices)
	set(&l.MaxEntitiesPerDevice, d.MaxEntitiesPerDevice)
	set(&l.MaxEntities, d.MaxEntities)
	set(&l.MaxText, d.MaxText)
	set(&l.MaxID, d.MaxID)
	set(&l.MaxTopic, d.MaxTopic)
	set(&l.MaxList, d.MaxList)
	return l
}

// keyPrefixRoom is what a source adds in front of an id to make an identity
// key ("id:", "ieee:", "conn:<type>:").
const keyPrefixRoom = 64

// Drops counts what the limits refused or cut.
type Drops struct {
	Devices  uint64 `json:"devices"`  // claims refused because they would have made a device past MaxDevices
	Entities uint64 `json:"entities"` // entities (or whole claims) refused past a device's or the registry's cap
	Fields   uint64 `json:"fields"`   // fields cut (text) or refused (ids, topics, list entries) for their length
}

// Add adds o to d.
func (d *Drops) Add(o Drops) {
	d.Devices += o.Devices
	d.Entities += o.Entities
	d.Fields += o.Fields
}

// Zero reports whether nothing was dropped.
func (d Drops) Zero() bool { return d == Drops{} }

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

// bound applies the field limits to one claim. ok false: the claim is
// refused whole (an identity that is too long).
func (l Limits) bound(c *Claim) (ok bool, d Drops) {
	text := func(s *string) {
		if len(*s) > l.MaxText {
			*s = cut(*s, l.MaxText)
			d.Fields++
		}
	}
	list := func(n int) int {
		if n > l.MaxList {
			d.Fields += uint64(n - l.MaxList)
			return l.MaxList
		}
		return n
	}
	// Identity first: a claim that names its device by an id too long to keep
	// whole is refused, so it cannot merge with the wrong device.
	c.Keys = c.Keys[:list(len(c.Keys))]
	c.Identifiers = c.Identifiers[:list(len(c.Identifiers))]
	c.Connections = c.Connections[:list(len(c.Connections))]
	for _, k := range c.Keys {
		if len(k) > l.MaxID+keyPrefixRoom {
			return false, Drops{Fields: d.Fields + 1}
		}
	}
	for _, id := range c.Identifiers {
		if len(id) > l.MaxID {
			return false, Drops{Fields: d.Fields + 1}
		}
	}
	for _, cn := range c.Connections {
		if len(cn[0]) > l.MaxID || len(cn[1]) > l.MaxID {
			return false, Drops{Fields: d.Fields + 1}
		}
	}
	for _, s := range []*string{&c.Source, &c.Name, &c.Manufacturer, &c.Model, &c.Firmware, &c.Hardware, &c.MAC, &c.Address} {
		text(s)
	}
	c.Availability = without(c.Availability, &d.Fields, func(a AvailabilityTopic) bool {
		// A cut payload would never match what the device sends.
		return len(a.Topic) > l.MaxTopic || len(a.Available) > l.MaxText || len(a.NotAvailable) > l.MaxText
	})
	c.Availability = c.Availability[:list(len(c.Availability))]
	if n := l.MaxEntitiesPerDevice; len(c.Entities) > n {
		d.Entities += uint64(len(c.Entities) - n)
		c.Entities = c.Entities[:n]
	}
	c.Entities = without(c.Entities, &d.Fields, func(e Entity) bool {
		return len(e.ID) > l.MaxID || len(e.StateTopic) > l.MaxTopic || len(e.CommandTopic) > l.MaxTopic
	})
	if len(c.Entities) > 0 {
		c.Entities = slices.Clone(c.Entities) // cut below: never write into the caller's array
	}
	for i := range c.Entities {
		e := &c.Entities[i]
		for _, s := range []*string{&e.Component, &e.Name, &e.Source, &e.DeviceClass, &e.Unit} {
			text(s)
		}
	}
	c.Services = slices.Clone(c.Services[:list(len(c.Services))])
	for i := range c.Services {
		sv := &c.Services[i]
		for _, s := range []*string{&sv.Type, &sv.Instance, &sv.Host, &sv.Interface} {
			text(s)
		}
		sv.Addresses = slices.Clone(sv.Addresses[:list(len(sv.Addresses))])
		for j := range sv.Addresses {
			text(&sv.Addresses[j])
		}
		if len(sv.TXT) > 0 {
			txt := make(map[string]string, min(len(sv.TXT), l.MaxList))
			for _, k := range slices.Sorted(maps.Keys(sv.TXT)) {
				if len(txt) == l.MaxList {
					d.Fields++
					continue
				}
				v := sv.TXT[k]
				text(&k)
				text(&v)
				txt[k] = v
			}
			sv.TXT = txt
		}
	}
	return true, d
}

// weight is what a claim costs of a device's and the registry's entity
// budget: its entities, and at least one for the claim itself.
func weight(c *Claim) int { return max(1, len(c.Entities)) }

// without returns list less the entries bad reports, counting them in n. It
// copies only when something goes, so the caller's array is never written.
func without[T any](list []T, n *uint64, bad func(T) bool) []T {
	i := slices.IndexFunc(list, bad)
	if i < 0 {
		return list
	}
	out := slices.Clone(list[:i])
	for _, v := range list[i:] {
		if bad(v) {
			*n++
			continue
		}
		out = append(out, v)
	}
	return out
}
