package slots

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Slot is a root slot: "a" or "b".
type Slot string

// The two slots.
const (
	A Slot = "a"
	B Slot = "b"
)

// ParseSlot accepts "a" or "b" (any case).
func ParseSlot(s string) (Slot, error) {
	switch strings.ToLower(s) {
	case "a":
		return A, nil
	case "b":
		return B, nil
	}
	return "", fmt.Errorf("slot %q: want a or b", s)
}

// Other is the slot that is not s.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// PartLabel is the GPT partition label of the slot's root: rootA, rootB.
func (s Slot) PartLabel() string { return "root" + strings.ToUpper(string(s)) }

// The boot loader's side of the layout, on the ESP.
const (
	EntriesDir = "loader/entries"
	LoaderConf = "loader/loader.conf"
	// SortKey is every gateway entry's sort-key: systemd-boot then orders
	// them by version, highest first (see Entry).
	SortKey = "gateway"
	// Tries is how many boots a newly installed slot gets to come up.
	Tries = 3
)

// LoaderConfText is loader/loader.conf. The default is a glob because
// systemd-boot (252) keeps the boot counter in the entry's id.
const LoaderConfText = "timeout 0\ndefault gateway-*\n"

// Entry is a slot's boot loader entry, loader/entries/gateway-<slot>[+L[-D]].conf.
//
// How systemd-boot picks among them (its boot_entry_compare; the Boot
// Loader Specification's order): entries with no tries left go last; then
// by sort-key, then by version, highest first. All gateway entries have the
// same sort-key and the build's SOURCE_DATE_EPOCH as version, so the newest
// slot that is good or still on trial boots by default; once its three
// tries are used up, it sorts last and the other slot boots again.
type Entry struct {
	Slot    Slot
	Version string // the release, as people know it: "1.4.0"
	Serial  int64  // the entry's "version": SOURCE_DATE_EPOCH of the build
	// Options is the kernel command line; root= and gateway.slot= always
	// name Slot.
	Options string
	Title   string // as read; Marshal writes "Gateway <version> (slot A)"

	// Boot counting, from the file name (Boot Loader Specification):
	// gateway-b+2-1.conf has Counting, Left 2 tries, Done 1.
	Counting bool
	Left     int
	Done     int
}

// Name is the entry's file name in EntriesDir.
func (e Entry) Name() string {
	n := "gateway-" + string(e.Slot)
	if e.Counting {
		n += "+" + strconv.Itoa(e.Left)
		if e.Done > 0 {
			n += "-" + strconv.Itoa(e.Done)
		}
	}
	return n + ".conf"
}

// State is "good" (no counter), "trial" (tries left) or "bad" (none left).
func (e Entry) State() string {
	switch {
	case !e.Counting:
		return "good"
	case e.Left > 0:
		return "trial"
	}
	return "bad"
}

// Title is what the boot menu shows for a slot holding version.
func Title(version string, s Slot) string {
	return "Gateway " + version + " (slot " + strings.ToUpper(string(s)) + ")"
}

// Marshal is the entry file's text.
func (e Entry) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "title %s\n", Title(e.Version, e.Slot))
	fmt.Fprintf(&b, "version %d\n", e.Serial)
	fmt.Fprintf(&b, "sort-key %s\n", SortKey)
	fmt.Fprintf(&b, "linux /%s/vmlinuz\n", e.Slot)
	fmt.Fprintf(&b, "initrd /%s/initrd.img\n", e.Slot)
	fmt.Fprintf(&b, "options %s\n", SlotOptions(e.Options, e.Slot))
	return b.Bytes()
}

// SlotOptions rewrites a kernel command line for slot s: root= and
// gateway.slot= name s and come first, "ro" is there, every other option is
// kept in its order.
func SlotOptions(options string, s Slot) string {
	out := []string{"root=PARTLABEL=" + s.PartLabel(), "gateway.slot=" + string(s)}
	ro := false
	for _, f := range strings.Fields(options) {
		switch {
		case strings.HasPrefix(f, "root="), strings.HasPrefix(f, "gateway.slot="), f == "rw":
			continue
		case f == "ro":
			if ro {
				continue
			}
			ro = true
		}
		out = append(out, f)
	}
	if !ro {
		out = append(out[:2], append([]string{"ro"}, out[2:]...)...)
	}
	return strings.Join(out, " ")
}

var entryNameRE = regexp.MustCompile(`^gateway-([ab])(?:\+([0-9]+)(?:-([0-9]+))?)?\.conf$`)

// ParseEntryName reads slot and boot counter from an entry's file name;
// ok is false for files that are not a gateway slot's entry.
func ParseEntryName(name string) (e Entry, ok bool) {
	m := entryNameRE.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	e.Slot = Slot(m[1])
	if m[2] != "" {
		e.Counting = true
		e.Left, _ = strconv.Atoi(m[2])
		if m[3] != "" {
			e.Done, _ = strconv.Atoi(m[3])
		}
	}
	return e, true
}

var titleRE = regexp.MustCompile(`^Gateway (\S+) \(slot [AB]\)$`)

// ParseEntry reads an entry file: name for the slot and boot counter, data
// for title, version and options. Errors say the file and line.
func ParseEntry(name string, data []byte) (Entry, error) {
	e, ok := ParseEntryName(name)
	if !ok {
		return Entry{}, fmt.Errorf("%s: not a gateway slot entry (want gateway-a.conf or gateway-b+3.conf)", name)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, val, _ := strings.Cut(text, " ")
		val = strings.TrimSpace(val)
		switch key {
		case "title":
			e.Title = val
			if m := titleRE.FindStringSubmatch(val); m != nil {
				e.Version = m[1]
			}
		case "version":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n <= 0 {
				return Entry{}, fmt.Errorf("%s line %d: version %q: want the build's serial (SOURCE_DATE_EPOCH)", name, line, val)
			}
			e.Serial = n
		case "options":
			e.Options = val
		}
	}
	if e.Serial == 0 {
		return Entry{}, fmt.Errorf("%s: no version line", name)
	}
	if e.Version == "" {
		e.Version = strconv.FormatInt(e.Serial, 10)
	}
	return e, nil
}
