package mosquittoconf

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// interp applies conf lines to a Config, one file after another, keeping
// the state Mosquitto keeps while it reads.
type interp struct {
	cfg     *Config
	ds      Diagnostics
	baseDir string

	// def is Mosquitto's default listener: options written before any
	// listener line (port, bind_address, certfile...) configure it, and it
	// exists once one of them is written.
	def        *Listener
	defUsed    bool
	defSecPos  []Diagnostic // security options given to def under per_listener_settings
	listeners  []*Listener
	bridges    []*Bridge
	strSet     map[dupKey]Pos // rest-of-line values, each allowed once per scope
	secFirst   *Diagnostic    // the first security option, for per_listener_settings
	logDestSet bool
	logTypeSet bool
	logFile    *Pos
	refs       []fileRef
	skipFiles  bool            // check names only, not the files themselves
	pending    []string        // files the same change writes (CheckOptions.Pending)
	confine    *confiner       // nil: any file may be named
	main       string          // the main file's name, under a confinement
	refused    bool            // the line being applied names a file refused by confine
	outside    map[string]bool // included files outside the confinement (the owner's include_dir)
	suggested  int             // typo suggestions made, bounded for huge garbage files
}

// maxSuggestions bounds the work spent on "did you mean" for a file that
// is not a conf file at all.
const maxSuggestions = 100

// fileState is what Mosquitto keeps per file: the listener and bridge the
// next lines belong to. An included file starts outside both.
type fileState struct {
	doc   *Document
	level int
	l     *Listener // nil: the default listener
	b     *Bridge   // nil: no bridge yet
}

// dupKey names a rest-of-line option in its scope (the config, a
// listener, a Security or a bridge).
type dupKey struct {
	owner any
	key   string
}

// canonical maps old option names to the name they are recorded under.
var canonical = map[string]string{
	"retained_persistence": "persistence",
	"username":             "remote_username",
	"password":             "remote_password",
	"clientid":             "remote_clientid",
	"addresses":            "address",
	"maximum_qos":          "max_qos", // Mosquitto reads both names the same
}

func canon(name string) string {
	if c, ok := canonical[name]; ok {
		return c
	}
	return name
}

func newInterp(dir string) *interp {
	return &interp{
		cfg:     Defaults(),
		baseDir: dir,
		def:     newListener(0, "", Pos{}),
		strSet:  map[dupKey]Pos{},
		outside: map[string]bool{},
	}
}

func newListener(port int, addr string, pos Pos) *Listener {
	return &Listener{
		Port:                port,
		Address:             addr,
		Protocol:            "mqtt",
		MaxConnections:      -1,
		MaxQoS:              2,
		MaxTopicAlias:       10,
		MaxTopicAliasBroker: 10,
		Security:            Security{Pos: map[string]Pos{}},
		Pos:                 pos,
		Where:               map[string]Pos{},
	}
}

// run applies every line of doc.
func (in *interp) run(doc *Document, level int) {
	in.cfg.Files = append(in.cfg.Files, doc.Name)
	st := &fileState{doc: doc, level: level}
	for i := range doc.Lines {
		if doc.Lines[i].IsOption() {
			in.apply(st, &doc.Lines[i])
		}
	}
}

func (in *interp) apply(st *fileState, l *Line) {
	pos := Pos{File: st.doc.Name, Line: l.Num}
	name := l.Option
	if !utf8.ValidString(l.Raw) {
		in.ds.errorf(pos, name, "line is not valid UTF-8")
		return
	}
	if strings.IndexByte(l.Raw, 0) >= 0 {
		in.ds.errorf(pos, name, "line contains a NUL byte")
		return
	}
	opt, ok := lookup(name)
	if !ok {
		msg := "unknown option"
		if in.suggested < maxSuggestions {
			in.suggested++
			if s := suggest(name); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
		}
		in.ds.errorf(pos, name, msg)
		return
	}
	if opt.scope == scopeBridge && st.b == nil {
		in.ds.errorf(pos, name, "only allowed in a bridge, after a connection line")
		return
	}
	if opt.scope == scopeSecurity && in.secFirst == nil {
		in.secFirst = &Diagnostic{Pos: pos, Option: name}
	}
	// A file option refused by the confinement is still taken, so that
	// the options that go with it do not fail too, but its file is never
	// looked at.
	in.refused = !in.confinedLine(pos, l)
	defer func() { in.refused = false }()
	if r := refusal(name); r != "" {
		if !in.refused { // one error per line: the confinement's says enough
			in.ds.errorf(pos, name, "cannot apply on this box: "+r)
		}
		return
	}
	if why := bridgeRefusal(name, l); why != "" && opt.scope == scopeBridge {
		in.ds.errorf(pos, name, "cannot apply on this box: "+why)
		return
	}
	if !opt.supported {
		in.ds.warnf(pos, name, "not supported by this broker, ignored")
		return
	}
	key := canon(name)
	switch opt.scope {
	case scopeListener:
		in.applyListener(st, pos, l, key)
	case scopeSecurity:
		in.applySecurity(st, pos, l, key)
	case scopeBridge:
		in.applyBridge(st.b, pos, l, key)
		st.b.Where[key] = pos
	default:
		in.applyGlobal(st, pos, l, key)
	}
	in.cfg.Where[key] = pos
}

func (in *interp) applyGlobal(st *fileState, pos Pos, l *Line, key string) {
	c := in.cfg
	switch key {
	case "include_dir":
		in.includeDir(st, pos, l)
	case "listener":
		in.listener(st, pos, l)
	case "port":
		if n, ok := in.integer(pos, l, 0, 65535); ok {
			if _, set := in.def.Where["port"]; set {
				in.ds.warnf(pos, l.Option, "default listener port set again; only the last one is used")
			}
			in.def.Port = n
			in.useDefault(pos)
			in.def.Where["port"] = pos
		}
	case "bind_address":
		if a, ok := in.word(pos, l); ok {
			if !validHost(a) {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid address %q", a))
				return
			}
			in.def.Address = a
			in.useDefault(pos)
			in.def.Where["bind_address"] = pos
		}
	case "connection":
		in.connection(st, pos, l)
	case "per_listener_settings":
		v, ok := in.boolean(pos, l)
		if !ok {
			return
		}
		if c.PerListenerSettings {
			if !v {
				in.ds.warnf(pos, l.Option, "already true; it cannot be turned off again, ignored")
			}
			return
		}
		if v && in.secFirst != nil {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("must come before any security option (%s at %s)", in.secFirst.Option, in.secFirst.Pos))
			return
		}
		c.PerListenerSettings = v
	case "persistence":
		in.setBool(pos, l, &c.Persistence)
	case "persistence_location":
		in.setString(pos, l, in.cfg, key, &c.PersistenceLocation)
	case "persistence_file":
		in.setString(pos, l, in.cfg, key, &c.PersistenceFile)
	case "pid_file":
		in.setString(pos, l, in.cfg, key, &c.PidFile)
	case "user":
		in.setString(pos, l, in.cfg, key, &c.User)
	case "autosave_interval":
		in.setInt(pos, l, 0, math.MaxInt32, &c.AutosaveInterval)
	case "max_inflight_messages":
		in.setInt(pos, l, 0, 65535, &c.MaxInflightMessages)
	case "max_queued_messages":
		in.setInt(pos, l, 0, math.MaxInt32, &c.MaxQueuedMessages)
	case "message_size_limit":
		in.setInt(pos, l, 0, 268435455, &c.MessageSizeLimit)
	case "max_packet_size":
		in.setInt(pos, l, 20, 268435460, &c.MaxPacketSize)
	case "max_keepalive":
		in.setInt(pos, l, 0, 65535, &c.MaxKeepalive)
	case "retain_available":
		in.setBool(pos, l, &c.RetainAvailable)
	case "sys_interval":
		in.setInt(pos, l, 0, 65535, &c.SysInterval)
	case "connection_messages":
		in.setBool(pos, l, &c.ConnectionMessages)
	case "persistent_client_expiration":
		in.expiration(pos, l)
	case "log_timestamp":
		if on, ok := in.boolean(pos, l); ok {
			c.LogNoTimestamp = !on
		}
	case "log_timestamp_format":
		var f string
		if in.setString(pos, l, in.cfg, key, &f) {
			layout, err := strftimeToGo(f)
			if err != nil {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("%q: %v", f, err))
				return
			}
			c.LogTimestampLayout = layout
		}
	case "websockets_headers_size":
		in.setInt(pos, l, 0, 1<<20, &c.WebsocketsHeadersSize)
	case "global_max_clients", "global_max_connections":
		// The broker-wide bound on connected clients, as max_connections
		// before any listener.
		if n, ok := in.integer(pos, l, math.MinInt32, math.MaxInt32); ok {
			c.MaxConnections = max(n, -1)
		}
	case "autosave_on_changes":
		// The store saves every change as it happens, which is what
		// either setting asks for at its most careful.
		in.boolean(pos, l)
	case "retry_interval":
		// Mosquitto 2.0 dropped it and warns the same way.
		in.ds.warnf(pos, l.Option, "no longer available (Mosquitto 2.0 removed it too); ignored")
	case "set_tcp_nodelay":
		if v, ok := in.boolean(pos, l); ok && !v {
			in.ds.errorf(pos, l.Option, "cannot apply on this box: false: the box always sets TCP_NODELAY (Go's default; the fast path already writes once per burst, and Nagle's delay would slow every acknowledgement)")
		}
	case "allow_duplicate_messages":
		if v, ok := in.boolean(pos, l); ok && v {
			in.ds.errorf(pos, l.Option, "cannot apply on this box: true: mochi sends a message once to a client however many of its subscriptions match (as false does)")
		}
	case "log_facility":
		// N is localN, as in Mosquitto: facility codes 16-23.
		if n, ok := in.integer(pos, l, 0, 7); ok {
			c.LogFacility = (16 + n) << 3
		}
	case "memory_limit":
		if n, ok := in.integer(pos, l, 0, math.MaxInt); ok {
			c.MemoryLimit = int64(n)
		}
	case "max_queued_bytes":
		if n, ok := in.integer(pos, l, 0, math.MaxInt); ok {
			c.MaxQueuedBytes = int64(n)
		}
	case "max_inflight_bytes":
		if n, ok := in.integer(pos, l, 0, math.MaxInt); ok && n != 0 {
			in.ds.errorf(pos, l.Option, "cannot apply on this box: "+strconv.Itoa(n)+": mochi bounds the messages in flight to a client by their count only (max_inflight_messages, the client's Receive Maximum) and lets no hook hold a message back for its size; 0 (no byte limit) is what it does")
		}
	case "queue_qos0_messages":
		if v, ok := in.boolean(pos, l); ok && v {
			in.ds.errorf(pos, l.Option, "cannot apply on this box: true: mochi keeps only QoS 1 and 2 messages for a disconnected session (its session queue is keyed by packet id, which QoS 0 messages have none of); false is what it does")
		}
	case "upgrade_outgoing_qos":
		if v, ok := in.boolean(pos, l); ok && v {
			in.ds.errorf(pos, l.Option, "cannot apply on this box: true: mochi chooses each subscriber's delivery QoS inside its publish path, where no hook can raise it (a QoS raised on the wire would have no packet id or retry behind it); false, the MQTT rule, is what it does")
		}
	case "clientid_prefixes":
		in.setString(pos, l, in.cfg, key, &c.ClientIDPrefixes)
	case "log_dest":
		in.logDest(pos, l)
	case "log_type":
		v, ok := in.word(pos, l)
		if !ok {
			return
		}
		switch v {
		case "none", "information", "notice", "warning", "error", "debug",
			"subscribe", "unsubscribe", "internal", "websockets", "all":
		default:
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want none, information, notice, warning, error, debug, subscribe, unsubscribe, internal, websockets or all", v))
			return
		}
		if !in.logTypeSet {
			in.logTypeSet, c.LogType = true, nil
		}
		c.LogType = append(c.LogType, v)
	}
}

func (in *interp) logDest(pos Pos, l *Line) {
	w := l.Words()
	if len(w) == 0 {
		in.ds.errorf(pos, l.Option, "missing value")
		return
	}
	v := w[0]
	switch v {
	case "none", "syslog", "stdout", "stderr", "topic", "dlt":
		if len(w) > 1 {
			in.extra(pos, l, w[1:])
		}
		switch v {
		case "dlt":
			in.ds.errorf(pos, l.Option, "cannot apply on this box: dlt: there is no DLT (automotive diagnostic log) daemon here")
			return
		case "topic":
			in.ds.warnf(pos, l.Option, "topic: not supported yet (logs are not published on $SYS/broker/log), ignored")
		}
	case "file":
		path := strings.Trim(strings.TrimPrefix(l.Rest, "file"), " \t")
		if path == "" {
			in.ds.errorf(pos, l.Option, "missing file name after file")
			return
		}
		if in.logFile != nil {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("a second log file (the first is at %s)", *in.logFile))
			return
		}
		in.logFile = &pos
		v = "file " + path
	default:
		in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want none, syslog, stdout, stderr, topic, dlt or file PATH", v))
		return
	}
	if !in.logDestSet {
		in.logDestSet, in.cfg.LogDest = true, nil
	}
	in.cfg.LogDest = append(in.cfg.LogDest, v)
}

// listener starts a `listener PORT [ADDRESS]` block.
func (in *interp) listener(st *fileState, pos Pos, l *Line) {
	w := l.Words()
	if len(w) == 0 {
		in.ds.errorf(pos, l.Option, "missing port")
		return
	}
	port, err := strconv.Atoi(w[0])
	if err != nil {
		in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid port %q", w[0]))
		return
	}
	if port < 0 || port > 65535 {
		in.ds.errorf(pos, l.Option, fmt.Sprintf("port %d out of range 0-65535", port))
		return
	}
	addr := ""
	if len(w) > 1 {
		addr = w[1]
		if port == 0 && strings.ContainsRune(addr, '/') {
			in.ds.errorf(pos, l.Option, "unix socket listeners are not supported")
			return
		}
		if !validHost(addr) {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid address %q", addr))
			return
		}
	}
	if len(w) > 2 {
		in.extra(pos, l, w[2:])
	}
	nl := newListener(port, addr, pos)
	in.listeners = append(in.listeners, nl)
	st.l = nl
}

// useDefault marks the default listener as wanted by an option before
// any listener line.
func (in *interp) useDefault(pos Pos) {
	if !in.defUsed {
		in.defUsed = true
		in.def.Pos = pos
	}
}

func (in *interp) applyListener(st *fileState, pos Pos, l *Line, key string) {
	ls := st.l
	if ls == nil {
		if key == "max_connections" {
			// Before any listener, taken as the broker-wide limit.
			if n, ok := in.integer(pos, l, math.MinInt32, math.MaxInt32); ok {
				in.cfg.MaxConnections = max(n, -1)
			}
			return
		}
		ls = in.def
		in.useDefault(pos)
	}
	defer func() { ls.Where[key] = pos }()
	switch key {
	case "max_connections":
		if n, ok := in.integer(pos, l, math.MinInt32, math.MaxInt32); ok {
			ls.MaxConnections = max(n, -1)
		}
	case "protocol":
		if v, ok := in.word(pos, l); ok {
			if v != "mqtt" && v != "websockets" {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want mqtt or websockets", v))
				return
			}
			ls.Protocol = v
		}
	case "certfile":
		in.setFile(pos, l, ls, key, &ls.CertFile, false)
	case "keyfile":
		in.setFile(pos, l, ls, key, &ls.KeyFile, false)
	case "cafile":
		in.setFile(pos, l, ls, key, &ls.CAFile, false)
	case "capath":
		in.setFile(pos, l, ls, key, &ls.CAPath, true)
	case "require_certificate":
		in.setBool(pos, l, &ls.RequireCertificate)
	case "disable_client_cert_date_checks":
		in.setBool(pos, l, &ls.IgnoreCertDates)
	case "crlfile":
		in.setFile(pos, l, ls, key, &ls.CRLFile, false)
	case "mount_point":
		var v string
		if in.setString(pos, l, ls, key, &v) {
			if strings.ContainsAny(v, "+#") {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid mount point %q: wildcards are not allowed", v))
				return
			}
			ls.MountPoint = v
		}
	case "http_dir":
		in.setFile(pos, l, ls, key, &ls.HTTPDir, true)
	case "ciphers":
		if v, ok := in.rest(pos, l); ok {
			ids, err := parseCiphers(v)
			if err != nil {
				in.ds.errorf(pos, l.Option, err.Error())
				return
			}
			ls.CipherSuites = ids
		}
	case "tls_version":
		in.tlsVersion(pos, l, &ls.TLSVersion)
	case "websockets_origin":
		if v, ok := in.word(pos, l); ok {
			ls.WebsocketsOrigins = append(ls.WebsocketsOrigins, v)
		}
	case "max_qos":
		in.setInt(pos, l, 0, 2, &ls.MaxQoS)
	case "max_topic_alias":
		in.setInt(pos, l, 0, 65535, &ls.MaxTopicAlias)
	case "max_topic_alias_broker":
		in.setInt(pos, l, 0, 65535, &ls.MaxTopicAliasBroker)
	case "socket_domain":
		if v, ok := in.word(pos, l); ok {
			if v != "ipv4" && v != "ipv6" {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want ipv4 or ipv6", v))
				return
			}
			ls.SocketDomain = v
		}
	case "bind_interface":
		if v, ok := in.word(pos, l); ok {
			ls.BindInterface = v
		}
	case "accept_protocol_versions":
		in.protocolVersions(pos, l, ls)
	case "use_username_as_clientid":
		in.setBool(pos, l, &ls.UseUsernameAsClientID)
	case "use_identity_as_username":
		in.setBool(pos, l, &ls.UseIdentityAsUsername)
	case "use_subject_as_username":
		in.setBool(pos, l, &ls.UseSubjectAsUsername)
	case "tls_keyform":
		if v, ok := in.word(pos, l); ok {
			switch v {
			case "pem":
			case "engine":
				in.ds.errorf(pos, l.Option, "cannot apply on this box: "+noEngines)
			default:
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want pem or engine", v))
			}
		}
	}
}

func (in *interp) applySecurity(st *fileState, pos Pos, l *Line, key string) {
	sec := &in.cfg.Security
	if in.cfg.PerListenerSettings {
		if st.l != nil {
			sec = &st.l.Security
		} else {
			sec = &in.def.Security
			in.defSecPos = append(in.defSecPos, Diagnostic{Pos: pos, Option: l.Option})
		}
	}
	defer func() { sec.Pos[key] = pos }()
	switch key {
	case "allow_anonymous":
		if v, ok := in.boolean(pos, l); ok {
			sec.AllowAnonymous = &v
		}
	case "password_file":
		in.setFile(pos, l, sec, key, &sec.PasswordFile, false)
	case "acl_file":
		in.setFile(pos, l, sec, key, &sec.ACLFile, false)
	case "allow_zero_length_clientid":
		if v, ok := in.boolean(pos, l); ok {
			sec.RefuseZeroLengthClientID = !v
		}
	case "auto_id_prefix":
		in.setString(pos, l, sec, key, &sec.AutoIDPrefix)
	case "check_retain_source":
		// Mosquitto's default is true; see docs/BROKER.md for why unset
		// is still accepted.
		if v, ok := in.boolean(pos, l); ok && v {
			in.ds.errorf(pos, l.Option, "cannot apply on this box: true: mochi sends a retained message to new subscribers without a hook that could withhold it once its publisher lost write access, and does not keep the publisher's user name with it; false is what it does")
		}
	}
}

// connection starts a bridge block.
func (in *interp) connection(st *fileState, pos Pos, l *Line) {
	name, ok := in.word(pos, l)
	if !ok {
		// Keep reading the block's lines without reporting each as
		// outside a bridge.
		st.b = &Bridge{Where: map[string]Pos{}}
		return
	}
	b := newBridge(name)
	b.Pos = pos
	st.b = b
	for _, o := range in.bridges {
		if o.Name == name {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("duplicate bridge name %q (first at %s)", name, o.Pos))
			return
		}
	}
	in.bridges = append(in.bridges, b)
}

// newBridge is a bridge with Mosquitto's defaults, except those derived
// from other options (client ids, notification topic), set by finish.
func newBridge(name string) *Bridge {
	return &Bridge{
		Name:               name,
		ProtocolVersion:    "mqttv311",
		KeepaliveInterval:  60,
		Notifications:      true,
		TryPrivate:         true,
		StartType:          "automatic",
		RestartTimeoutBase: 5,
		RestartTimeoutCap:  30,
		IdleTimeout:        60,
		Threshold:          10,
		OutgoingRetain:     true,
		BridgeExtra:        bridgeExtraDefaults(),
		Where:              map[string]Pos{},
	}
}

// NewBridge returns a bridge named name with every setting at Mosquitto's
// default, as a `connection NAME` block with no other line would have.
// UpsertBridge writes only the settings that differ from these.
func NewBridge(name string) Bridge {
	b := newBridge(name)
	fillBridgeDefaults(b, hostname())
	return *b
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// fillBridgeDefaults sets the defaults Mosquitto derives from the host
// name and from other options.
func fillBridgeDefaults(b *Bridge, host string) {
	if b.RemoteClientID == "" {
		b.RemoteClientID = host + "." + b.Name
	}
	if b.LocalClientID == "" {
		b.LocalClientID = "local." + b.RemoteClientID
	}
	if b.NotificationTopic == "" {
		b.NotificationTopic = defaultNotificationTopic(b.RemoteClientID)
	}
}

func defaultNotificationTopic(remoteClientID string) string {
	return "$SYS/broker/connection/" + remoteClientID + "/state"
}

func (in *interp) applyBridge(b *Bridge, pos Pos, l *Line, key string) {
	switch key {
	case "address":
		if _, set := b.Where["address"]; set {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("bridge %q already has its addresses (at %s); list them all on one line", b.Name, b.Where["address"]))
			return
		}
		w := l.Words()
		if len(w) == 0 {
			in.ds.errorf(pos, l.Option, "missing value")
			return
		}
		var as []BridgeAddress
		for _, s := range w {
			a, msg := parseBridgeAddress(s)
			if msg != "" {
				in.ds.errorf(pos, l.Option, msg)
				return
			}
			as = append(as, a)
		}
		b.Addresses = as
	case "topic":
		if t, ok := in.topic(pos, l); ok {
			b.Topics = append(b.Topics, t)
		}
	case "remote_username":
		in.setString(pos, l, b, key, &b.RemoteUsername)
	case "remote_password":
		in.setString(pos, l, b, key, &b.RemotePassword)
	case "remote_clientid":
		in.setString(pos, l, b, key, &b.RemoteClientID)
	case "local_clientid":
		in.setString(pos, l, b, key, &b.LocalClientID)
	case "notification_topic":
		var t string
		if in.setString(pos, l, b, key, &t) {
			if strings.ContainsAny(t, "+#") {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid topic %q: wildcards are not allowed", t))
				return
			}
			b.NotificationTopic = t
		}
	case "bridge_protocol_version":
		if v, ok := in.word(pos, l); ok {
			if v != "mqttv31" && v != "mqttv311" && v != "mqttv50" {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want mqttv31, mqttv311 or mqttv50", v))
				return
			}
			b.ProtocolVersion = v
		}
	case "cleansession":
		in.setBool(pos, l, &b.CleanSession)
	case "notifications":
		in.setBool(pos, l, &b.Notifications)
	case "notifications_local_only":
		in.setBool(pos, l, &b.NotificationsLocalOnly)
	case "try_private":
		in.setBool(pos, l, &b.TryPrivate)
	case "bridge_insecure":
		in.setBool(pos, l, &b.Insecure)
	case "bridge_outgoing_retain":
		in.setBool(pos, l, &b.OutgoingRetain)
	case "keepalive_interval":
		if n, ok := in.integer(pos, l, math.MinInt32, 65535); ok {
			if n < 5 {
				in.ds.warnf(pos, l.Option, fmt.Sprintf("%d is too low, using 5 seconds", n))
				n = 5
			}
			b.KeepaliveInterval = n
		}
	case "idle_timeout":
		in.atLeastOne(pos, l, &b.IdleTimeout)
	case "threshold":
		in.atLeastOne(pos, l, &b.Threshold)
	case "start_type":
		if v, ok := in.word(pos, l); ok {
			if v == "manual" {
				in.ds.errorf(pos, l.Option, `cannot apply on this box: "manual" needs a control API to start the bridge, which this box does not have; use automatic, lazy or once`)
				return
			}
			if v != "automatic" && v != "lazy" && v != "once" {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want automatic, lazy or once", v))
				return
			}
			b.StartType = v
		}
	case "restart_timeout":
		in.restartTimeout(b, pos, l)
	case "bridge_cafile":
		in.setFile(pos, l, b, key, &b.CAFile, false)
	case "bridge_capath":
		in.setFile(pos, l, b, key, &b.CAPath, true)
	case "bridge_certfile":
		in.setFile(pos, l, b, key, &b.CertFile, false)
	case "bridge_keyfile":
		in.setFile(pos, l, b, key, &b.KeyFile, false)
	case "bridge_tls_version":
		in.tlsVersion(pos, l, &b.TLSVersion)
	case "bridge_max_packet_size":
		in.setInt(pos, l, 0, math.MaxInt32, &b.MaxPacketSize)
	default:
		in.applyBridgeExtra(b, pos, l, key)
	}
}

func (in *interp) restartTimeout(b *Bridge, pos Pos, l *Line) {
	w := l.Words()
	if len(w) == 0 {
		in.ds.errorf(pos, l.Option, "missing value")
		return
	}
	if len(w) > 3 {
		in.extra(pos, l, w[3:])
	}
	stable := 0
	if len(w) > 2 {
		n, err := strconv.Atoi(w[2])
		if err != nil || n < 0 {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid stable time %q: want seconds, 0 or more", w[2]))
			return
		}
		stable = n
	}
	base, err := strconv.Atoi(w[0])
	if err != nil {
		in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid number %q", w[0]))
		return
	}
	if base < 1 {
		in.ds.warnf(pos, l.Option, fmt.Sprintf("%d is too low, using 1 second", base))
		base = 1
	}
	capv := 0
	if len(w) > 1 {
		capv, err = strconv.Atoi(w[1])
		if err != nil {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid number %q", w[1]))
			return
		}
		if capv < base {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("cap %d is lower than base %d", capv, base))
			return
		}
	}
	b.RestartTimeoutBase, b.RestartTimeoutCap, b.RestartTimeoutStable = base, capv, stable
}

// topic reads `topic PATTERN [DIRECTION [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]]`.
// The pattern may itself be "#"; later words starting with '#' begin a
// comment, as in Mosquitto. `""` stands for an empty pattern or prefix.
func (in *interp) topic(pos Pos, l *Line) (BridgeTopic, bool) {
	t := BridgeTopic{Direction: "out", Pos: pos}
	if len(l.Args) == 0 {
		in.ds.errorf(pos, l.Option, "missing value")
		return t, false
	}
	t.Pattern = unquoteEmpty(l.Args[0])
	rest := Line{Args: l.Args[1:]}
	w := rest.Words()
	if len(w) > 0 {
		switch d := strings.ToLower(w[0]); d {
		case "in", "out", "both":
			t.Direction = d
		default:
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid direction %q: want in, out or both", w[0]))
			return t, false
		}
	}
	if len(w) > 1 {
		switch w[1] {
		case "0", "1", "2":
			t.QoS = w[1][0] - '0'
		default:
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid qos %q: want 0, 1 or 2", w[1]))
			return t, false
		}
	}
	if len(w) > 2 {
		t.LocalPrefix = unquoteEmpty(w[2])
	}
	if len(w) > 3 {
		t.RemotePrefix = unquoteEmpty(w[3])
	}
	if len(w) > 4 {
		in.extra(pos, l, w[4:])
	}
	if t.Pattern != "" {
		if msg := checkFilter(t.Pattern); msg != "" {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid pattern %q: %s", t.Pattern, msg))
			return t, false
		}
	}
	for _, p := range []struct{ name, v string }{{"local", t.LocalPrefix}, {"remote", t.RemotePrefix}} {
		if strings.ContainsAny(p.v, "+#") {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid %s prefix %q: wildcards are not allowed", p.name, p.v))
			return t, false
		}
	}
	if t.Pattern == "" && (t.LocalPrefix == "" || t.RemotePrefix == "") {
		in.ds.errorf(pos, l.Option, `an empty pattern ("") needs both a local and a remote prefix`)
		return t, false
	}
	return t, true
}

// expiration reads persistent_client_expiration: a whole number followed
// by h, d, w, m (30 days) or y (365 days), as Mosquitto reads it.
func (in *interp) expiration(pos Pos, l *Line) {
	v, ok := in.word(pos, l)
	if !ok {
		return
	}
	units := map[byte]int64{'h': 3600, 'd': 86400, 'w': 7 * 86400, 'm': 30 * 86400, 'y': 365 * 86400}
	unit, known := units[v[len(v)-1]]
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 32)
	if !known || err != nil || n <= 0 {
		in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid duration %q: want a positive whole number followed by h, d, w, m or y (e.g. 14d)", v))
		return
	}
	in.cfg.PersistentClientExpiration = n * unit
}

// protocolVersions reads accept_protocol_versions: a comma separated list
// of protocol levels, 3 (MQTT 3.1), 4 (3.1.1) and 5.
func (in *interp) protocolVersions(pos Pos, l *Line, ls *Listener) {
	v, ok := in.rest(pos, l)
	if !ok {
		return
	}
	var out []byte
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f != "3" && f != "4" && f != "5" {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid version %q: want a comma separated list of 3 (MQTT 3.1), 4 (3.1.1) and 5", f))
			return
		}
		out = append(out, f[0]-'0')
	}
	ls.AcceptProtocolVersions = out
}
