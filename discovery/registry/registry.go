package registry

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/homebox/gateway/internal/atomicfile"
)

// Registry holds the devices. It is safe for concurrent use.
type Registry struct {
	path string
	log  *slog.Logger
	lim  Limits

	mu      sync.Mutex
	groups  map[string][]*claim        // group (usually a topic) -> the claims its last message made
	keys    map[string]*device         // identity key -> device
	devices map[string]*device         // id -> device
	topics  map[string]map[*claim]bool // availability topic -> claims naming it
	avail   map[string]availState      // availability topic -> last state heard
	states  map[string]map[*claim]bool // entity state topic -> claims naming it
	values  map[string]availState      // entity state topic -> last payload heard (capped)
	stale   time.Duration              // StaleAfter; 0: never stale
	weight  int                        // entities held, every claim counting at least one (Limits.MaxEntities)
	drops   Drops                      // since Open
	dirty   bool
	closed  bool

	writeMu   sync.Mutex // one write at a time, so an older snapshot never lands last
	closeOnce sync.Once

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

type claim struct {
	Claim
	group string
	dev   *device
}

type device struct {
	id        string
	firstSeen time.Time
	claims    []*claim
	keys      map[string]bool
	view      *Device // nil when something changed since it was built
	gone      bool
}

type availState struct {
	Payload string    `json:"payload"`
	At      time.Time `json:"at"`
}

// saveDelay bounds how often a busy registry is written: changes within it
// share one write.
const saveDelay = 500 * time.Millisecond

// Open loads the registry kept at path (a missing file is an empty registry)
// with DefaultLimits and starts writing changes back to it. Close flushes and
// stops.
func Open(path string, log *slog.Logger) (*Registry, error) {
	return OpenWithLimits(path, log, Limits{})
}

// OpenWithLimits is Open with limits (zero fields: the defaults). A file
// holding more than they allow (one written before there were limits) is
// loaded up to them, oldest devices first, and written back so.
func OpenWithLimits(path string, log *slog.Logger, lim Limits) (*Registry, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Registry{
		path:    path,
		log:     log,
		lim:     lim.withDefaults(),
		groups:  map[string][]*claim{},
		keys:    map[string]*device{},
		devices: map[string]*device{},
		topics:  map[string]map[*claim]bool{},
		avail:   map[string]availState{},
		states:  map[string]map[*claim]bool{},
		values:  map[string]availState{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	go r.saver()
	return r, nil
}

// Apply replaces every claim the group made before with claims (none removes
// them). A group is one announce topic, or one mDNS instance: the unit that a
// later message replaces. It returns the availability topics that no claim
// named before, so the caller can subscribe to them, and what the limits
// dropped of claims (also added to Drops).
//
// Claims about devices already known are applied first, so a message that
// brings more devices than there is room for never pushes out a known one.
func (r *Registry) Apply(group string, claims []Claim) (newTopics []string, dropped Drops) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apply(group, claims, false)
}

// Replay is Apply for a retained message the broker replayed (at a
// subscription, after a restart): old news, so it does not count as the
// device being seen. Each claim keeps the time its group's earlier claim
// about the same device was seen, or none.
func (r *Registry) Replay(group string, claims []Claim) (newTopics []string, dropped Drops) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apply(group, claims, true)
}

func (r *Registry) apply(group string, claims []Claim, replay bool) (newTopics []string, dropped Drops) {
	if r.closed {
		return nil, Drops{}
	}
	if replay {
		claims = slices.Clone(claims)
		for i := range claims {
			claims[i].SeenAt = time.Time{}
			for _, old := range r.groups[group] {
				if sharesKey(old.Keys, claims[i].Keys) {
					claims[i].SeenAt = old.SeenAt
				}
			}
		}
	}
	defer func() { r.drops.Add(dropped) }()
	old := r.groups[group]
	if len(old) == 0 && len(claims) == 0 {
		return nil, Drops{}
	}
	affected := map[*device]bool{}
	for _, c := range old {
		c.dev.claims = slices.DeleteFunc(c.dev.claims, func(x *claim) bool { return x == c })
		c.dev.view = nil
		affected[c.dev] = true
		r.weight -= weight(&c.Claim)
	}
	delete(r.groups, group)
	made := make([]*claim, len(claims)) // by index; nil when refused
	var unknown []int
	for i := range claims {
		cl := claims[i]
		ok, d := r.lim.bound(&cl)
		dropped.Add(d)
		if !ok {
			continue
		}
		c := &claim{Claim: normalize(cl), group: group}
		if len(c.Keys) == 0 {
			c.Keys = []string{"origin:" + group + "#" + strconv.Itoa(i)}
		}
		made[i] = c
		if !r.known(c) {
			unknown = append(unknown, i)
			continue
		}
		if !r.attach(c, &dropped) {
			made[i] = nil
		}
	}
	// Devices left with no claim go before new ones are counted.
	for d := range affected {
		r.settle(d)
	}
	for _, i := range unknown {
		if !r.attach(made[i], &dropped) {
			made[i] = nil
		}
	}
	added := slices.DeleteFunc(made, func(c *claim) bool { return c == nil })
	if len(added) > 0 {
		r.groups[group] = added
	}
	// New references first, so a topic named by both the old and the new
	// claims is never counted as gone and back.
	// A topic is new to subscribe when neither availability nor state
	// names it yet.
	ref := func(m, other map[string]map[*claim]bool, topic string, c *claim) {
		set := m[topic]
		if set == nil {
			set = map[*claim]bool{}
			m[topic] = set
			if other[topic] == nil {
				newTopics = append(newTopics, topic)
			}
		}
		set[c] = true
	}
	unref := func(m map[string]map[*claim]bool, last map[string]availState, topic string, c *claim) {
		if set := m[topic]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(m, topic)
				delete(last, topic) // heard again (retained) when named again
			}
		}
	}
	for _, c := range added {
		for _, a := range c.Availability {
			ref(r.topics, r.states, a.Topic, c)
		}
		for _, e := range c.Entities {
			if e.StateTopic != "" {
				ref(r.states, r.topics, e.StateTopic, c)
			}
		}
	}
	for _, c := range old {
		for _, a := range c.Availability {
			unref(r.topics, r.avail, a.Topic, c)
		}
		for _, e := range c.Entities {
			if e.StateTopic != "" {
				unref(r.states, r.values, e.StateTopic, c)
			}
		}
	}
	r.markDirty()
	return newTopics, dropped
}

func sharesKey(a, b []string) bool {
	for _, k := range a {
		if slices.Contains(b, k) {
			return true
		}
	}
	return false
}

// Heard records a message on a topic some claim names: an availability
// (birth/LWT) payload, or an entity's state. A retained one (replayed by
// the broker) is old news: it sets the value but not when it was heard,
// unless the same value was heard before. Others are ignored, so what is
// kept is bounded by the claims; a payload too long to be a state is
// counted in Drops.Fields.
func (r *Registry) Heard(topic, payload string, at time.Time, retained bool) {
	r.mu.Lock()
	isState := r.states[topic] != nil
	r.mu.Unlock()
	if !isState {
		r.setAvailability(topic, payload, at, retained)
		return
	}
	if len(payload) > 4*r.lim.MaxText {
		r.mu.Lock()
		r.drops.Fields++
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.states[topic] == nil {
		return
	}
	r.values[topic] = heardAt(r.values[topic], payload, at, retained)
	for c := range r.states[topic] {
		c.dev.view = nil
	}
	if r.topics[topic] != nil {
		r.setAvailabilityLocked(topic, payload, at, retained)
	}
}

// heardAt is what a topic holds after payload: a replayed retained value
// keeps the time only when it is the value already known.
func heardAt(old availState, payload string, at time.Time, retained bool) availState {
	if !retained {
		return availState{Payload: payload, At: at.UTC()}
	}
	if old.Payload == payload {
		return old
	}
	return availState{Payload: payload}
}

// SetAvailability records a birth/LWT payload heard on an availability topic
// that some claim names (others are ignored, so what is kept is bounded by
// the claims). Payloads may be plain ("online") or JSON with a "state" field
// (zigbee2mqtt's {"state":"online"}); one longer than any availability
// payload could be (4 × MaxText) is ignored and counted in Drops.Fields.
func (r *Registry) SetAvailability(topic, payload string, at time.Time) {
	r.setAvailability(topic, payload, at, false)
}

func (r *Registry) setAvailability(topic, payload string, at time.Time, retained bool) {
	if len(payload) > 4*r.lim.MaxText {
		r.mu.Lock()
		r.drops.Fields++
		r.mu.Unlock()
		return
	}
	state := strings.TrimSpace(payload)
	if strings.HasPrefix(state, "{") {
		var v struct {
			State string `json:"state"`
		}
		if json.Unmarshal([]byte(state), &v) == nil && v.State != "" {
			state = v.State
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setAvailabilityLocked(topic, state, at, retained)
}

func (r *Registry) setAvailabilityLocked(topic, state string, at time.Time, retained bool) {
	if r.closed || r.topics[topic] == nil {
		return
	}
	if len(state) > r.lim.MaxText {
		r.drops.Fields++
		return
	}
	r.avail[topic] = heardAt(r.avail[topic], state, at, retained)
	for c := range r.topics[topic] {
		c.dev.view = nil
	}
	r.markDirty()
}

// AvailabilityTopics lists every availability topic some claim names.
func (r *Registry) AvailabilityTopics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.topics))
	for t := range r.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// SetStaleAfter marks devices silent for d as stale (0: never).
func (r *Registry) SetStaleAfter(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stale = d
}

// current is d's view with Stale as of now.
func (r *Registry) current(d *device) Device {
	v := *r.viewOf(d)
	last := v.LastSeen
	if last.IsZero() {
		last = v.FirstSeen
	}
	v.Stale = r.stale > 0 && time.Since(last) > r.stale
	return v
}

// Forget removes a device and every claim made about it. own are the
// groups (announce topics, mDNS instances) whose claims were all about it:
// a source may clear them so the device does not come back. shared are
// groups that also spoke of other devices (a zigbee2mqtt device list),
// from which it comes back if they still name it.
func (r *Registry) Forget(id string) (own, shared []string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[id]
	if d == nil || r.closed {
		return nil, nil, false
	}
	groups := map[string]bool{}
	for _, c := range d.claims {
		groups[c.group] = true
	}
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		var keep []Claim
		for _, c := range r.groups[g] {
			if c.dev != d {
				keep = append(keep, c.Claim)
			}
		}
		if len(keep) == 0 {
			own = append(own, g)
		} else {
			shared = append(shared, g)
		}
		r.apply(g, keep, false)
	}
	return own, shared, true
}

// Devices returns every device, sorted by ID.
func (r *Registry) Devices() []Device {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Device, 0, len(r.devices))
	for _, d := range r.devices {
		out = append(out, r.current(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Device returns one device by ID.
func (r *Registry) Device(id string) (Device, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[id]
	if d == nil {
		return Device{}, false
	}
	return r.current(d), true
}

// Len is the number of devices.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.devices)
}

// Limits are the limits in force.
func (r *Registry) Limits() Limits { return r.lim }

// Drops counts what the limits dropped since Open (loading included).
func (r *Registry) Drops() Drops {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drops
}

// CountDrops adds what a source dropped before it came to the registry (a
// parser's caps) to Drops.
func (r *Registry) CountDrops(d Drops) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drops.Add(d)
}

// Usage is what the limits are measured against: devices, and entities
// (every claim counting at least one).
func (r *Registry) Usage() (devices, entities int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.devices), r.weight
}

// Flush writes the registry now if anything changed.
func (r *Registry) Flush() error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	snap := r.snapshot()
	r.dirty = false
	r.mu.Unlock()
	if err := r.write(snap); err != nil {
		r.mu.Lock()
		r.dirty = true
		r.mu.Unlock()
		return err
	}
	return nil
}

// Close stops the background writer and flushes. Later changes are ignored.
func (r *Registry) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		err = r.Flush()
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
	})
	return err
}

func (r *Registry) markDirty() {
	r.dirty = true
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Registry) saver() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		}
		t := time.NewTimer(saveDelay)
		select {
		case <-r.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if err := r.Flush(); err != nil {
			r.log.Error("device registry not saved", "path", r.path, "error", err)
		}
	}
}

// known reports whether one of c's keys names a device already.
func (r *Registry) known(c *claim) bool {
	for _, k := range c.Keys {
		if r.keys[k] != nil {
			return true
		}
	}
	return false
}

// attach adds c to the device its keys name, merging devices that c shows
// to be one. Within the limits: false (and counted in dropped) when c would
// make a device past MaxDevices, or finds no room left in its device's or
// the registry's entity budget; its entities are cut to the room left.
func (r *Registry) attach(c *claim, dropped *Drops) bool {
	var found []*device
	for _, k := range c.Keys {
		if d := r.keys[k]; d != nil && !slices.Contains(found, d) {
			found = append(found, d)
		}
	}
	if len(found) == 0 && len(r.devices) >= r.lim.MaxDevices {
		dropped.Devices++
		return false
	}
	used := 0
	for _, d := range found {
		for _, o := range d.claims {
			used += weight(&o.Claim)
		}
	}
	room := min(r.lim.MaxEntitiesPerDevice-used, r.lim.MaxEntities-r.weight)
	if room <= 0 {
		dropped.Entities += uint64(weight(&c.Claim))
		return false
	}
	if len(c.Entities) > room {
		dropped.Entities += uint64(len(c.Entities) - room)
		c.Entities = c.Entities[:room]
	}
	r.weight += weight(&c.Claim)
	var d *device
	if len(found) == 0 {
		d = r.newDevice([]*claim{c})
	} else {
		// The oldest device survives a merge, so IDs stay stable.
		sort.Slice(found, func(i, j int) bool {
			if !found[i].firstSeen.Equal(found[j].firstSeen) {
				return found[i].firstSeen.Before(found[j].firstSeen)
			}
			return found[i].id < found[j].id
		})
		d = found[0]
		for _, o := range found[1:] {
			r.merge(d, o)
		}
	}
	d.claims = append(d.claims, c)
	c.dev = d
	for _, k := range c.Keys {
		r.keys[k] = d
		d.keys[k] = true
	}
	d.view = nil
	return true
}

func (r *Registry) newDevice(claims []*claim) *device {
	first := claims[0].SeenAt
	for _, c := range claims {
		if !c.SeenAt.IsZero() && (first.IsZero() || c.SeenAt.Before(first)) {
			first = c.SeenAt
		}
	}
	if first.IsZero() {
		first = time.Now().UTC()
	}
	d := &device{id: r.freeID(idFor(claims)), firstSeen: first, keys: map[string]bool{}}
	r.devices[d.id] = d
	return d
}

func (r *Registry) merge(into, from *device) {
	for _, c := range from.claims {
		c.dev = into
		into.claims = append(into.claims, c)
	}
	for k := range from.keys {
		r.keys[k] = into
		into.keys[k] = true
	}
	if from.firstSeen.Before(into.firstSeen) {
		into.firstSeen = from.firstSeen
	}
	from.claims, from.keys, from.gone = nil, nil, true
	delete(r.devices, from.id)
	into.view = nil
}

// settle tidies a device that lost claims: gone when none are left, split
// when the claims left no longer share keys, keys pruned otherwise.
func (r *Registry) settle(d *device) {
	if d.gone {
		return
	}
	for k := range d.keys {
		if r.keys[k] == d {
			delete(r.keys, k)
		}
	}
	d.keys = map[string]bool{}
	if len(d.claims) == 0 {
		d.gone = true
		delete(r.devices, d.id)
		return
	}
	parts := components(d.claims)
	d.claims = parts[0]
	for _, c := range d.claims {
		for _, k := range c.Keys {
			r.keys[k] = d
			d.keys[k] = true
		}
	}
	d.view = nil
	for _, p := range parts[1:] {
		nd := r.newDevice(p)
		nd.claims = p
		for _, c := range p {
			c.dev = nd
			for _, k := range c.Keys {
				r.keys[k] = nd
				nd.keys[k] = true
			}
		}
	}
}

// components groups claims that share keys, directly or through others; the
// group holding the first claim comes first.
func components(claims []*claim) [][]*claim {
	parent := make([]int, len(claims))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	for i, c := range claims {
		for _, k := range c.Keys {
			if j, ok := owner[k]; ok {
				a, b := find(i), find(j)
				if a != b {
					if a < b {
						parent[b] = a
					} else {
						parent[a] = b
					}
				}
			} else {
				owner[k] = i
			}
		}
	}
	index := map[int]int{}
	var out [][]*claim
	for i, c := range claims {
		root := find(i)
		n, ok := index[root]
		if !ok {
			n = len(out)
			index[root] = n
			out = append(out, nil)
		}
		out[n] = append(out[n], c)
	}
	return out
}

// idFor makes a readable ID that does not depend on which source spoke
// first: from the MAC when one is known, else the Zigbee address, else the
// first identity key.
func idFor(claims []*claim) string {
	var first, ieee string
	for _, c := range claims {
		for _, k := range c.Keys {
			if mac, ok := strings.CutPrefix(k, "mac:"); ok {
				return "mac-" + mac
			}
			if strings.HasPrefix(k, "ieee:") && ieee == "" {
				ieee = k
			}
			if first == "" {
				first = k
			}
		}
	}
	if ieee != "" {
		return sanitizeID(ieee)
	}
	return sanitizeID(first)
}

func sanitizeID(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_'
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 64 {
			break
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if out == "" {
		out = "device"
	}
	return out
}

func (r *Registry) freeID(id string) string {
	if r.devices[id] == nil {
		return id
	}
	for n := 2; ; n++ {
		c := id + "-" + strconv.Itoa(n)
		if r.devices[c] == nil {
			return c
		}
	}
}

// normalize lower-cases and formats MACs so that keys and fields compare.
func normalize(c Claim) Claim {
	c.MAC = FormatMAC(c.MAC)
	if c.SeenAt.IsZero() {
		c.SeenAt = time.Now()
	}
	c.SeenAt = c.SeenAt.UTC()
	keys := make([]string, 0, len(c.Keys)+1)
	for _, k := range c.Keys {
		if k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if c.MAC != "" {
		if k := MACKey(c.MAC); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	c.Keys = keys
	for i, a := range c.Availability {
		if a.Available == "" {
			a.Available = Online
		}
		if a.NotAvailable == "" {
			a.NotAvailable = Offline
		}
		c.Availability[i] = a
	}
	return c
}

// MACKey is the identity key of a MAC address in any usual spelling
// ("AA:BB:..", "aa-bb-..", "AABB..."); "" when s is not a MAC.
func MACKey(s string) string {
	h := macHex(s)
	if h == "" {
		return ""
	}
	return "mac:" + h
}

// FormatMAC writes a MAC as aa:bb:cc:dd:ee:ff; "" when s is not a MAC.
func FormatMAC(s string) string {
	h := macHex(s)
	if h == "" {
		return ""
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func macHex(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case r >= '0' && r <= '9' || r >= 'a' && r <= 'f':
			b.WriteRune(r)
		case r == ':' || r == '-' || r == '.':
		default:
			return ""
		}
	}
	if b.Len() != 12 {
		return ""
	}
	return b.String()
}

// sourceRank orders sources when they disagree on a field: the device's own
// word first, then the richer announcements.
var sourceRank = map[string]int{"gateway": 0, "homeassistant": 1, "zigbee2mqtt": 2, "tasmota": 3, "mdns": 4}

func rank(s string) int {
	if n, ok := sourceRank[s]; ok {
		return n
	}
	return len(sourceRank)
}

func (r *Registry) viewOf(d *device) *Device {
	if d.view != nil {
		return d.view
	}
	cs := slices.Clone(d.claims)
	sort.SliceStable(cs, func(i, j int) bool {
		if rank(cs[i].Source) != rank(cs[j].Source) {
			return rank(cs[i].Source) < rank(cs[j].Source)
		}
		return cs[i].group < cs[j].group
	})
	v := &Device{ID: d.id, FirstSeen: d.firstSeen, Availability: Unknown}
	pick := func(dst *string, s string) {
		if *dst == "" {
			*dst = s
		}
	}
	seenEntity := map[string]bool{}
	var latest time.Time
	for _, c := range cs {
		pick(&v.Name, c.Name)
		pick(&v.Manufacturer, c.Manufacturer)
		pick(&v.Model, c.Model)
		pick(&v.Firmware, c.Firmware)
		pick(&v.Hardware, c.Hardware)
		pick(&v.MAC, c.MAC)
		pick(&v.Address, c.Address)
		for _, id := range c.Identifiers {
			if !slices.Contains(v.Identifiers, id) {
				v.Identifiers = append(v.Identifiers, id)
			}
		}
		for _, cn := range c.Connections {
			if !slices.Contains(v.Connections, cn) {
				v.Connections = append(v.Connections, cn)
			}
		}
		if !slices.Contains(v.Sources, c.Source) {
			v.Sources = append(v.Sources, c.Source)
		}
		for _, e := range c.Entities {
			k := e.Source + "\x00" + e.ID
			if !seenEntity[k] {
				seenEntity[k] = true
				if st, ok := r.values[e.StateTopic]; ok && e.StateTopic != "" {
					e.State, e.StateAt = Value(e.ValueTemplate, st.Payload), st.At
					if st.At.After(v.LastSeen) {
						v.LastSeen = st.At
					}
				}
				v.Entities = append(v.Entities, e)
			}
		}
		v.Services = append(v.Services, c.Services...)
		if c.SeenAt.After(v.LastSeen) {
			v.LastSeen = c.SeenAt
		}
		for _, a := range c.Availability {
			if !slices.Contains(v.AvailabilityTopics, a.Topic) {
				v.AvailabilityTopics = append(v.AvailabilityTopics, a.Topic)
			}
			st, ok := r.avail[a.Topic]
			if !ok {
				continue
			}
			if st.At.After(v.LastSeen) {
				v.LastSeen = st.At
			}
			// Home Assistant's default "latest" mode: the topic heard last decides.
			if !latest.IsZero() && !st.At.After(latest) {
				continue
			}
			switch {
			case strings.EqualFold(st.Payload, a.Available):
				v.Availability, latest = Online, st.At
			case strings.EqualFold(st.Payload, a.NotAvailable):
				v.Availability, latest = Offline, st.At
			}
		}
	}
	if v.Name == "" {
		v.Name = d.id
	}
	if v.Sources == nil {
		v.Sources = []string{}
	}
	d.view = v
	return v
}

// File format of devices.json.
type fileFormat struct {
	Version      int                   `json:"version"`
	SavedAt      time.Time             `json:"saved_at"`
	Devices      []storedDevice        `json:"devices"`
	Availability map[string]availState `json:"availability,omitempty"`
}

type storedDevice struct {
	ID        string        `json:"id"`
	FirstSeen time.Time     `json:"first_seen"`
	Claims    []storedClaim `json:"claims"`
}

type storedClaim struct {
	Group string `json:"group"`
	Claim
}

const fileVersion = 1

func (r *Registry) snapshot() fileFormat {
	f := fileFormat{Version: fileVersion, SavedAt: time.Now().UTC(), Availability: make(map[string]availState, len(r.avail))}
	for t, s := range r.avail {
		f.Availability[t] = s
	}
	ids := make([]string, 0, len(r.devices))
	for id := range r.devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		d := r.devices[id]
		sd := storedDevice{ID: d.id, FirstSeen: d.firstSeen, Claims: make([]storedClaim, 0, len(d.claims))}
		for _, c := range d.claims {
			sd.Claims = append(sd.Claims, storedClaim{Group: c.group, Claim: c.Claim})
		}
		f.Devices = append(f.Devices, sd)
	}
	return f
}

func (r *Registry) write(f fileFormat) error {
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("encode device registry: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	return atomicfile.Write(r.path, append(data, '\n'), 0o644)
}

func (r *Registry) load() error {
	data, err := os.ReadFile(r.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read device registry: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("device registry %s: %w", r.path, err)
	}
	if f.Version != fileVersion {
		return fmt.Errorf("device registry %s: version %d, want %d", r.path, f.Version, fileVersion)
	}
	// Oldest first: should the file hold more than the limits allow (it was
	// written before there were limits, or with larger ones), the devices the
	// owner had before a flood are the ones kept.
	seen := map[string]bool{}
	for i, sd := range f.Devices {
		if sd.ID == "" || seen[sd.ID] {
			return fmt.Errorf("device registry %s: device %d: missing or repeated id %q", r.path, i, sd.ID)
		}
		seen[sd.ID] = true
		for j, sc := range sd.Claims {
			if sc.Group == "" {
				return fmt.Errorf("device registry %s: device %q claim %d: no group", r.path, sd.ID, j)
			}
		}
	}
	sort.SliceStable(f.Devices, func(i, j int) bool { return f.Devices[i].FirstSeen.Before(f.Devices[j].FirstSeen) })
	var dropped Drops
	for _, sd := range f.Devices {
		if len(sd.Claims) == 0 {
			continue
		}
		if len(r.devices) >= r.lim.MaxDevices {
			dropped.Devices++
			continue
		}
		d := &device{id: sd.ID, firstSeen: sd.FirstSeen, keys: map[string]bool{}}
		used := 0
		for _, sc := range sd.Claims {
			ok, fd := r.lim.bound(&sc.Claim)
			dropped.Add(fd)
			room := min(r.lim.MaxEntitiesPerDevice-used, r.lim.MaxEntities-r.weight)
			if !ok || room <= 0 {
				if ok {
					dropped.Entities += uint64(weight(&sc.Claim))
				}
				continue
			}
			if len(sc.Entities) > room {
				dropped.Entities += uint64(len(sc.Entities) - room)
				sc.Entities = sc.Entities[:room]
			}
			used += weight(&sc.Claim)
			r.weight += weight(&sc.Claim)
			c := &claim{Claim: normalize(sc.Claim), group: sc.Group, dev: d}
			d.claims = append(d.claims, c)
			r.groups[c.group] = append(r.groups[c.group], c)
			for _, k := range c.Keys {
				r.keys[k] = d
				d.keys[k] = true
			}
			for _, a := range c.Availability {
				if r.topics[a.Topic] == nil {
					r.topics[a.Topic] = map[*claim]bool{}
				}
				r.topics[a.Topic][c] = true
			}
		}
		if len(d.claims) > 0 {
			r.devices[d.id] = d
		} else {
			dropped.Devices++
		}
	}
	for t, s := range f.Availability {
		if r.topics[t] != nil && len(s.Payload) <= r.lim.MaxText {
			r.avail[t] = s
		}
	}
	if !dropped.Zero() {
		r.drops.Add(dropped)
		r.dirty = true // written back within the limits
		r.kick <- struct{}{}
		r.log.Warn("device registry holds more than the limits allow; the excess was not loaded", "path", r.path,
			"dropped_devices", dropped.Devices, "dropped_entities", dropped.Entities, "dropped_fields", dropped.Fields,
			"max_devices", r.lim.MaxDevices, "max_entities_per_device", r.lim.MaxEntitiesPerDevice, "max_entities", r.lim.MaxEntities)
	}
	return nil
}
