package mosquittoconf

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// The console edits bridges through these, so that the owner's comments,
// blank lines and the order of everything else stay as written.

// UpsertBridge writes b as the `connection b.Name` block of d: it replaces
// the lines of the existing block, or appends a new block at the end.
// Only settings that differ from NewBridge(b.Name) are written. Lines that
// are not bridge options (comments, blank lines, a listener) are left
// where they are, and every other line keeps its bytes. Nothing changes
// when b cannot be written faithfully.
func (d *Document) UpsertBridge(b Bridge) error {
	block, err := renderBridge(b)
	if err != nil {
		return err
	}
	eol := d.eolStyle()
	var lines []Line
	for _, s := range block {
		lines = append(lines, tokenise(0, s, eol))
	}
	// Bridge options this broker ignores stay, inside the block.
	start, members, found := d.findBridge(b.Name, true)
	if !found {
		if n := len(d.Lines); n > 0 {
			if d.Lines[n-1].EOL == "" {
				d.Lines[n-1].EOL = eol
			}
			if strings.TrimSpace(d.Lines[n-1].Raw) != "" {
				lines = append([]Line{{EOL: eol}}, lines...)
			}
		}
		d.Lines = append(d.Lines, lines...)
		d.renumber()
		return nil
	}
	d.replace(start, members, lines)
	return nil
}

// RemoveBridge deletes the `connection name` line and its bridge options.
func (d *Document) RemoveBridge(name string) error {
	start, members, found := d.findBridge(name, false)
	if !found {
		return fmt.Errorf("%s: no bridge %q", d.Name, name)
	}
	d.replace(start, members, nil)
	return nil
}

// findBridge returns the index of the `connection name` line and of every
// line of its block: the bridge options up to the next connection line
// (with onlySupported, those this broker applies).
func (d *Document) findBridge(name string, onlySupported bool) (start int, members []int, found bool) {
	start = -1
	for i, l := range d.Lines {
		if l.Option != "connection" {
			if start >= 0 {
				if o, ok := lookup(l.Option); ok && o.scope == scopeBridge && (o.supported || !onlySupported) {
					members = append(members, i)
				}
			}
			continue
		}
		if start >= 0 {
			break
		}
		if w := l.Words(); len(w) > 0 && w[0] == name {
			start = i
			members = append(members, i)
		}
	}
	return start, members, start >= 0
}

// replace drops the lines at members and puts lines where start was.
func (d *Document) replace(start int, members []int, lines []Line) {
	drop := map[int]bool{}
	for _, m := range members {
		drop[m] = true
	}
	out := make([]Line, 0, len(d.Lines)-len(members)+len(lines))
	for i, l := range d.Lines {
		if i == start {
			out = append(out, lines...)
		}
		if !drop[i] {
			out = append(out, l)
		}
	}
	// Keep the file's ending as it was, with or without a final newline,
	// whichever line is last now.
	if n := len(out); n > 0 && len(d.Lines) > 0 {
		if d.Lines[len(d.Lines)-1].EOL == "" {
			out[n-1].EOL = ""
		} else if out[n-1].EOL == "" {
			out[n-1].EOL = d.eolStyle()
		}
	}
	d.Lines = out
	d.renumber()
}

// renderBridge turns b into conf lines, and proves they read back as b.
func renderBridge(b Bridge) ([]string, error) {
	if err := checkWords(b); err != nil {
		return nil, err
	}
	def := NewBridge(b.Name)
	norm := b
	normaliseBridge(&norm, def)

	var out []string
	add := func(opt string, v ...string) { out = append(out, opt+" "+strings.Join(v, " ")) }
	add("connection", b.Name)
	if len(norm.Addresses) > 0 {
		var as []string
		for _, a := range norm.Addresses {
			as = append(as, formatAddress(a))
		}
		opt := "address"
		if len(as) > 1 {
			opt = "addresses"
		}
		add(opt, as...)
	}
	for _, t := range norm.Topics {
		v := []string{quoteEmpty(t.Pattern), t.Direction, strconv.Itoa(int(t.QoS))}
		if t.LocalPrefix != "" || t.RemotePrefix != "" {
			v = append(v, quoteEmpty(t.LocalPrefix), quoteEmpty(t.RemotePrefix))
		}
		add("topic", v...)
	}
	str := func(opt, v, dflt string) {
		if v != dflt {
			add(opt, v)
		}
	}
	boolean := func(opt string, v, dflt bool) {
		if v != dflt {
			add(opt, strconv.FormatBool(v))
		}
	}
	num := func(opt string, v, dflt int) {
		if v != dflt {
			add(opt, strconv.Itoa(v))
		}
	}
	str("remote_username", norm.RemoteUsername, "")
	str("remote_password", norm.RemotePassword, "")
	str("remote_clientid", norm.RemoteClientID, def.RemoteClientID)
	str("local_clientid", norm.LocalClientID, "local."+norm.RemoteClientID)
	str("bridge_protocol_version", norm.ProtocolVersion, def.ProtocolVersion)
	boolean("cleansession", norm.CleanSession, def.CleanSession)
	num("keepalive_interval", norm.KeepaliveInterval, def.KeepaliveInterval)
	boolean("notifications", norm.Notifications, def.Notifications)
	boolean("notifications_local_only", norm.NotificationsLocalOnly, def.NotificationsLocalOnly)
	str("notification_topic", norm.NotificationTopic, defaultNotificationTopic(norm.RemoteClientID))
	boolean("try_private", norm.TryPrivate, def.TryPrivate)
	str("start_type", norm.StartType, def.StartType)
	if norm.RestartTimeoutBase != def.RestartTimeoutBase || norm.RestartTimeoutCap != def.RestartTimeoutCap || norm.RestartTimeoutStable != 0 {
		if norm.RestartTimeoutStable != 0 {
			add("restart_timeout", strconv.Itoa(norm.RestartTimeoutBase), strconv.Itoa(norm.RestartTimeoutCap), strconv.Itoa(norm.RestartTimeoutStable))
		} else if norm.RestartTimeoutCap == 0 {
			add("restart_timeout", strconv.Itoa(norm.RestartTimeoutBase))
		} else {
			add("restart_timeout", strconv.Itoa(norm.RestartTimeoutBase), strconv.Itoa(norm.RestartTimeoutCap))
		}
	}
	num("idle_timeout", norm.IdleTimeout, def.IdleTimeout)
	num("threshold", norm.Threshold, def.Threshold)
	str("bridge_cafile", norm.CAFile, "")
	str("bridge_capath", norm.CAPath, "")
	str("bridge_certfile", norm.CertFile, "")
	str("bridge_keyfile", norm.KeyFile, "")
	boolean("bridge_insecure", norm.Insecure, false)
	str("bridge_tls_version", norm.TLSVersion, "")
	num("bridge_max_packet_size", norm.MaxPacketSize, 0)
	boolean("bridge_outgoing_retain", norm.OutgoingRetain, def.OutgoingRetain)
	renderBridgeExtra(norm.BridgeExtra, def.BridgeExtra, add)

	// Read the block back: what is written must mean b, exactly.
	in := newInterp("")
	in.skipFiles = true // the console checks files against the broker's folder
	text := strings.Join(out, "\n") + "\n"
	in.run(ParseDocument("bridge "+b.Name, []byte(text)), 0)
	in.finish()
	if err := in.ds.Err(); err != nil {
		return nil, fmt.Errorf("bridge %q: %w", b.Name, err)
	}
	if len(in.bridges) != 1 {
		return nil, fmt.Errorf("bridge %q: the written block does not read back as one bridge", b.Name)
	}
	got := *in.bridges[0]
	normaliseBridge(&got, def)
	clearPositions(&got)
	clearPositions(&norm)
	if !reflect.DeepEqual(got, norm) {
		return nil, fmt.Errorf("bridge %q: cannot be written as mosquitto.conf lines that mean the same (check values Mosquitto would change, such as a keepalive_interval below 5)", b.Name)
	}
	return out, nil
}

// normaliseBridge fills fields left at their zero value with the default
// they stand for, so a bridge from a form compares equal to its reading.
func normaliseBridge(b *Bridge, def Bridge) {
	if b.RemoteClientID == "" {
		b.RemoteClientID = def.RemoteClientID
	}
	if b.LocalClientID == "" {
		b.LocalClientID = "local." + b.RemoteClientID
	}
	if b.NotificationTopic == "" {
		b.NotificationTopic = defaultNotificationTopic(b.RemoteClientID)
	}
	if b.ProtocolVersion == "" {
		b.ProtocolVersion = def.ProtocolVersion
	}
	if b.StartType == "" {
		b.StartType = def.StartType
	}
	if b.KeepaliveInterval == 0 {
		b.KeepaliveInterval = def.KeepaliveInterval
	}
	if b.IdleTimeout == 0 {
		b.IdleTimeout = def.IdleTimeout
	}
	if b.Threshold == 0 {
		b.Threshold = def.Threshold
	}
	if b.RestartTimeoutBase == 0 {
		b.RestartTimeoutBase, b.RestartTimeoutCap = def.RestartTimeoutBase, def.RestartTimeoutCap
	}
	topics := make([]BridgeTopic, len(b.Topics))
	for i, t := range b.Topics {
		if t.Direction == "" {
			t.Direction = "out"
		}
		topics[i] = t
	}
	b.Topics = topics
	if len(b.Topics) == 0 {
		b.Topics = nil
	}
	addrs := make([]BridgeAddress, len(b.Addresses))
	for i, a := range b.Addresses {
		if a.Port == 0 {
			a.Port = 1883
		}
		addrs[i] = a
	}
	b.Addresses = addrs
	if len(b.Addresses) == 0 {
		b.Addresses = nil
	}
}

func clearPositions(b *Bridge) {
	b.Pos, b.Where = Pos{}, nil
	for i := range b.Topics {
		b.Topics[i].Pos = Pos{}
	}
}

// checkWords refuses values that would not survive as conf text: a line
// break would smuggle in another option, blanks would split a word or be
// trimmed from a value, a word starting with # would be read as a comment.
func checkWords(b Bridge) error {
	if b.Name == "" {
		return errors.New("bridge: missing name")
	}
	type value struct {
		what, v string
		word    bool // written as one word, not as the rest of the line
		hash    bool // may start with # (a topic pattern may be "#")
	}
	vs := []value{
		{"name", b.Name, true, false},
		{"remote_username", b.RemoteUsername, false, true},
		{"remote_password", b.RemotePassword, false, true},
		{"remote_clientid", b.RemoteClientID, false, true},
		{"local_clientid", b.LocalClientID, false, true},
		{"notification_topic", b.NotificationTopic, false, true},
		{"bridge_cafile", b.CAFile, false, true},
		{"bridge_capath", b.CAPath, false, true},
		{"bridge_certfile", b.CertFile, false, true},
		{"bridge_keyfile", b.KeyFile, false, true},
		{"bridge_protocol_version", b.ProtocolVersion, true, false},
		{"start_type", b.StartType, true, false},
		{"bridge_tls_version", b.TLSVersion, true, false},
	}
	for _, a := range b.Addresses {
		vs = append(vs, value{"address host", a.Host, true, false})
	}
	for _, t := range b.Topics {
		vs = append(vs,
			value{"topic pattern", t.Pattern, true, true},
			value{"local prefix", t.LocalPrefix, true, false},
			value{"remote prefix", t.RemotePrefix, true, false})
		for _, v := range []string{t.Pattern, t.LocalPrefix, t.RemotePrefix} {
			if v == `""` {
				return fmt.Errorf("bridge %q: topic value %q cannot be written (it reads as empty)", b.Name, v)
			}
		}
	}
	for _, v := range vs {
		switch {
		case strings.ContainsAny(v.v, "\r\n\x00"):
			return fmt.Errorf("bridge %q: %s %q contains a line break or NUL", b.Name, v.what, v.v)
		case v.word && strings.ContainsAny(v.v, " \t"):
			return fmt.Errorf("bridge %q: %s %q contains a blank", b.Name, v.what, v.v)
		case v.v != strings.Trim(v.v, " \t"):
			return fmt.Errorf("bridge %q: %s %q starts or ends with a blank", b.Name, v.what, v.v)
		case !v.hash && strings.HasPrefix(v.v, "#"):
			return fmt.Errorf("bridge %q: %s %q starts with # (it would read as a comment)", b.Name, v.what, v.v)
		}
	}
	return nil
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func formatAddress(a BridgeAddress) string {
	host := a.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := a.Port
	if port == 0 {
		port = 1883
	}
	return host + ":" + strconv.Itoa(port)
}

// SetOption makes a broker-wide option say value: every line that sets it
// now is rewritten in place (comments and order kept), or, when none does,
// one line is added before the first listener or bridge, where it is read
// as broker-wide. Only for options outside listener and bridge scope
// (allow_anonymous, password_file, acl_file without per_listener_settings).
func (d *Document) SetOption(option, value string) {
	found := false
	for i, l := range d.Lines {
		if l.Option == option {
			d.Lines[i] = tokenise(l.Num, option+" "+value, l.EOL)
			found = true
		}
	}
	if found {
		return
	}
	at := len(d.Lines)
	for i, l := range d.Lines {
		if l.Option == "listener" || l.Option == "connection" {
			at = i
			break
		}
	}
	line := tokenise(0, option+" "+value, d.eolStyle())
	d.Lines = append(d.Lines[:at], append([]Line{line}, d.Lines[at:]...)...)
	// A file that ended without a newline keeps ending so.
	if at == len(d.Lines)-1 && at > 0 && d.Lines[at-1].EOL == "" {
		d.Lines[at-1].EOL, d.Lines[at].EOL = d.eolStyle(), ""
	}
	d.renumber()
}
