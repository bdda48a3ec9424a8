package mosquittoconf

import (
	"net"
	"path/filepath"
	"strconv"
)

// This file is the typed model that the rest of the gateway consumes. The
// parser fills it; the broker, the bridges and the console read it. Fields
// hold Mosquitto's defaults when the option is absent (see Defaults).

// Pos says where an option was written, for messages of the form FILE:LINE.
type Pos struct {
	File string
	Line int
}

// Config is the meaning of a mosquitto.conf and the files it includes.
type Config struct {
	// PerListenerSettings is per_listener_settings: when true, Security is
	// per listener and Config.Security is unused.
	PerListenerSettings bool

	// Security holds allow_anonymous, password_file and acl_file as written
	// outside any listener (used when PerListenerSettings is false).
	Security Security

	// Listeners in the order written. Empty means Mosquitto's default: a
	// plain MQTT listener on port 1883 bound to loopback only.
	Listeners []Listener

	Persistence         bool   // persistence
	PersistenceLocation string // persistence_location (a folder; "" = working directory)
	PersistenceFile     string // persistence_file (default "mosquitto.db")
	AutosaveInterval    int    // autosave_interval seconds (accepted; we persist every change)

	MaxConnections      int  // max_connections; -1 = unlimited
	MaxInflightMessages int  // max_inflight_messages; 0 = unlimited
	MaxQueuedMessages   int  // max_queued_messages; 0 = unlimited
	MessageSizeLimit    int  // message_size_limit bytes; 0 = no limit
	MaxPacketSize       int  // max_packet_size bytes; 0 = no limit
	MaxKeepalive        int  // max_keepalive seconds (default 65535)
	RetainAvailable     bool // retain_available (default true)
	SysInterval         int  // sys_interval seconds (default 10; 0 = off)

	LogDest            []string // log_dest lines as written, e.g. "stdout", "file /var/log/x.log"
	LogType            []string // log_type values
	ConnectionMessages bool     // connection_messages (default true)
	PidFile            string   // pid_file
	User               string   // user: the account a broker started as root drops to ("" = mosquitto)
	LogNoTimestamp     bool     // log_timestamp false
	LogFacility        int      // log_facility as a syslog facility code (default daemon, 3<<3)
	// LogTimestampLayout is log_timestamp_format as a Go time layout; ""
	// keeps the log's own timestamps (RFC 3339 with milliseconds).
	LogTimestampLayout string

	// PersistentClientExpiration is persistent_client_expiration in
	// seconds: how long a disconnected persistent session is kept; 0 =
	// for ever (Mosquitto's default).
	PersistentClientExpiration int64
	// ClientIDPrefixes is clientid_prefixes: when set, only clients whose
	// id starts with it may connect.
	ClientIDPrefixes string
	// WebsocketsHeadersSize is websockets_headers_size: the largest HTTP
	// headers of a websocket upgrade; 0 = the box's 16 KiB (Mosquitto's
	// 1 KiB would refuse browsers that carry the console's cookie).
	WebsocketsHeadersSize int
	// MemoryLimit is memory_limit in bytes; 0 = none.
	MemoryLimit int64
	// MaxQueuedBytes is max_queued_bytes: the payload bytes of QoS 1 and 2
	// messages a client's session may hold; 0 = no limit.
	MaxQueuedBytes int64

	// MaxQoS and MaxTopicAlias are the listeners' max_qos and
	// max_topic_alias. mochi has one value for the whole broker, so the
	// check refuses listeners that disagree; these are the common value
	// (Mosquitto's defaults 2 and 10 when none is set).
	MaxQoS        int
	MaxTopicAlias int

	Bridges []Bridge

	// Pos of each option by name, where it was last set (for start-up
	// errors that must name the option and line, e.g. an unreadable
	// password_file).
	Where map[string]Pos

	// Files are the conf files read, the main file first, then those of
	// include_dir in the order read.
	Files []string
}

// Security is the authentication and authorisation of a listener or of
// the whole broker.
type Security struct {
	// AllowAnonymous is allow_anonymous; nil means not written (Mosquitto 2
	// then refuses anonymous clients unless no listener is configured).
	AllowAnonymous *bool
	PasswordFile   string
	ACLFile        string
	// RefuseZeroLengthClientID is allow_zero_length_clientid false.
	RefuseZeroLengthClientID bool
	// AutoIDPrefix is auto_id_prefix: the start of the ids given to
	// clients that sent none ("" = Mosquitto's "auto-").
	AutoIDPrefix string
	Pos          map[string]Pos // where each option was written
}

// Listener is one `listener PORT [ADDRESS]` block with the options that
// follow it.
type Listener struct {
	Port     int
	Address  string // bind address; "" = all
	Protocol string // "mqtt" or "websockets"

	CertFile           string
	KeyFile            string
	CAFile             string
	CAPath             string
	RequireCertificate bool
	TLSVersion         string   // "", "tlsv1.3", "tlsv1.2", "tlsv1.1"
	IgnoreCertDates    bool     // disable_client_cert_date_checks
	CRLFile            string   // crlfile: client certificates revoked
	CipherSuites       []uint16 // ciphers (TLS 1.2 suites, Go's ids); nil = Go's defaults

	MaxConnections int // -1 = unlimited

	MaxQoS                int  // max_qos, default 2
	MaxTopicAlias         int  // max_topic_alias, default 10 (told to MQTT 5 clients in CONNACK)
	MaxTopicAliasBroker   int  // max_topic_alias_broker, default 10: aliases the broker sends
	UseUsernameAsClientID bool // use_username_as_clientid
	// UseIdentityAsUsername and UseSubjectAsUsername take the username of
	// a client (for the ACLs) from its TLS certificate: the CN, or the
	// whole subject; its password is not checked.
	UseIdentityAsUsername bool
	UseSubjectAsUsername  bool
	SocketDomain          string // socket_domain: "ipv4", "ipv6" or "" (both)
	BindInterface         string // bind_interface: a network interface name
	MountPoint            string // mount_point: the topic prefix of this listener's clients
	HTTPDir               string // http_dir: a folder served to plain HTTP (websockets)
	// AcceptProtocolVersions is accept_protocol_versions: the protocol
	// levels let in (3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0); nil = all.
	AcceptProtocolVersions []byte

	// WebsocketsOrigins are the websockets_origin lines: browser origins
	// (e.g. https://dash.example) allowed besides the box's own.
	WebsocketsOrigins []string

	// Security applies when the config has PerListenerSettings.
	Security Security

	Pos Pos // where the listener line is (for the default listener: its first option)

	// Where each option of this listener was written.
	Where map[string]Pos
}

// DefaultClientAddr is where Mosquitto listens when no listener is set.
const DefaultClientAddr = "127.0.0.1:1883"

// ClientAddr is where the box's own clients (discovery, the console's
// statistics) reach this broker: the first plain MQTT listener, on loopback
// when it listens on every address; Mosquitto's default otherwise.
func (c *Config) ClientAddr() (addr string, port int) {
	for _, l := range c.Listeners {
		if l.Protocol == "mqtt" && !l.TLS() && l.Port > 0 {
			host := l.Address
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			return net.JoinHostPort(host, strconv.Itoa(l.Port)), l.Port
		}
	}
	return DefaultClientAddr, 1883
}

// TLS reports whether the listener serves TLS (a certfile is set).
func (l Listener) TLS() bool { return l.CertFile != "" }

// Bridge is one `connection NAME` block.
type Bridge struct {
	Name      string
	Addresses []BridgeAddress // address / addresses, tried in turn
	Topics    []BridgeTopic

	RemoteUsername  string
	RemotePassword  string
	RemoteClientID  string // default "<hostname>.<name>"
	LocalClientID   string // default "local.<remote_clientid>"
	ProtocolVersion string // "mqttv31", "mqttv311" (default), "mqttv50"

	CleanSession           bool // default false
	KeepaliveInterval      int  // seconds, default 60
	Notifications          bool // default true
	NotificationsLocalOnly bool
	NotificationTopic      string // default "$SYS/broker/connection/<remote_clientid>/state"
	TryPrivate             bool   // default true

	StartType          string // "automatic" (default), "lazy", "once"
	RestartTimeoutBase int    // seconds; restart_timeout BASE [CAP]
	RestartTimeoutCap  int    // 0 when the constant form is used
	IdleTimeout        int    // seconds, default 60 (lazy)
	Threshold          int    // messages, default 10 (lazy)

	CAFile         string
	CAPath         string
	CertFile       string
	KeyFile        string
	Insecure       bool
	TLSVersion     string
	MaxPacketSize  int  // bridge_max_packet_size; 0 = no limit
	OutgoingRetain bool // bridge_outgoing_retain, default true

	BridgeExtra // the options of bridgeopts.go

	Pos Pos // where the connection line is

	// Where each option of this bridge was written (canonical names:
	// remote_username for username, address for addresses...).
	Where map[string]Pos
}

// BridgeAddress is one host:port of a bridge.
type BridgeAddress struct {
	Host string
	Port int // default 1883 (8883 is not implied; Mosquitto uses 1883)
}

// BridgeTopic is one `topic PATTERN [[[DIR] QOS] LOCAL REMOTE]` line.
type BridgeTopic struct {
	Pattern      string
	Direction    string // "out" (default), "in", "both"
	QoS          byte
	LocalPrefix  string
	RemotePrefix string
	Pos          Pos
}

// SecurityFiles are every password_file and acl_file the conf names, broker
// wide and per listener, as written.
func (c *Config) SecurityFiles() []string {
	var out []string
	add := func(s Security) {
		for _, f := range []string{s.PasswordFile, s.ACLFile} {
			if f != "" {
				out = append(out, f)
			}
		}
	}
	add(c.Security)
	for _, l := range c.Listeners {
		add(l.Security)
	}
	return out
}

// StorePath is where persistence keeps its store: persistence_file
// (default mosquitto.db) in persistence_location, relative to the broker's
// working folder when not absolute.
func (c *Config) StorePath() string {
	name := c.PersistenceFile
	if name == "" {
		name = "mosquitto.db"
	}
	return filepath.Join(c.PersistenceLocation, name)
}
