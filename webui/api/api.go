// Package api is the JSON contract of the box's HTTP API: every body the API
// answers with or takes, and nothing else. The console's handlers (package
// webui) and gwctl both use it, so gwctl links none of the server's
// libraries, and a change to the supervisor's or discovery's own types
// does not change what a client sees unless webui maps it here on purpose.
// docs/API.md describes the routes.
package api

import "time"

// Error is the body of every error answer. Errors lists line-numbered or
// field-named mistakes, when there are any.
type Error struct {
	Error  string      `json:"error"`
	Errors []LineError `json:"errors,omitempty"`
}

// LineError is one mistake: at a line of a conf file, or in a field of a
// form.
type LineError struct {
	Line    int    `json:"line,omitempty"`
	File    string `json:"file,omitempty"`
	Option  string `json:"option,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Health is GET /api/health's answer.
type Health struct {
	OK       bool    `json:"ok"`
	Version  string  `json:"version"`
	PID      int     `json:"pid"`
	UptimeS  float64 `json:"uptime_s"`
	Apps     int     `json:"apps"`
	AppsOK   bool    `json:"apps_available"`
	ServerTS string  `json:"time"`
}

// SessionInfo is GET /api/session's answer.
type SessionInfo struct {
	SetupNeeded bool   `json:"setup_needed"`
	LoggedIn    bool   `json:"logged_in"`
	Origin      string `json:"origin"`
	CSRFToken   string `json:"csrf_token"`
}

// LoggedIn answers setup, login, logout and a password change.
type LoggedIn struct {
	OK        bool   `json:"ok"`
	CSRFToken string `json:"csrf_token,omitempty"`
}

// Password is the body of setup, login and a password change.
type Password struct {
	Password string `json:"password" form:"password"`
	Current  string `json:"current" form:"current"`
	// Keep, on login, is "keep me logged in": the session lasts a week
	// instead of 12 hours unused.
	Keep bool `json:"keep" form:"keep"`
}

// Status is an app's state as PM2 would name it.
type Status string

// The statuses an app can be in.
const (
	StatusOnline    Status = "online"    // running and ready
	StatusLaunching Status = "launching" // started, not ready yet
	StatusWaiting   Status = "waiting"   // waits for an app it comes after
	StatusStopping  Status = "stopping"
	StatusStopped   Status = "stopped"
	StatusErrored   Status = "errored" // crash loop or cannot start; still retried
)

// App is one supervised app: /api/apps lists them, `gwctl status NAME`
// prints one.
type App struct {
	Name             string    `json:"name"`
	Status           Status    `json:"status"`
	PID              int       `json:"pid"`
	UptimeSeconds    float64   `json:"uptime_s"`
	Restarts         int       `json:"restarts"`
	UnstableRestarts int       `json:"unstable_restarts"`
	LastExitCode     *int      `json:"last_exit_code"`
	LastSignal       string    `json:"last_signal"`
	LastExitAt       time.Time `json:"last_exit_at,omitzero"`
	LastError        string    `json:"last_error,omitempty"`     // why errored, or why last restarted (e.g. max_memory)
	RestartReason    string    `json:"restart_reason,omitempty"` // what caused the last automatic restart: exited, max_memory
	Ready            bool      `json:"ready"`
	CPUPercent       float64   `json:"cpu_percent"`
	MemoryBytes      uint64    `json:"memory_bytes"`
	Command          string    `json:"command"`
	Args             []string  `json:"args"`
	Cwd              string    `json:"cwd"`
	LogFile          string    `json:"log_file"`
	CreatedAt        time.Time `json:"created_at"`
	After            []string  `json:"after,omitempty"`

	Restart        RestartPolicy `json:"restart"`
	RestartDelay   float64       `json:"restart_delay_s"`   // the delay chosen for the pending or last restart
	NextRestartIn  *float64      `json:"next_restart_in_s"` // null when no restart is pending
	MaxMemoryBytes uint64        `json:"max_memory_bytes"`  // 0: no limit
	ReadyCheck     string        `json:"ready_check"`       // "tcp HOST:PORT", "log REGEXP" or "process running"
	StopSignal     string        `json:"stop_signal"`
	KillTimeout    float64       `json:"kill_timeout_s"`
	EnvNames       []string      `json:"env,omitempty"`  // names only: values may be secrets
	User           string        `json:"user,omitempty"` // user[:group] the running app was started as; empty: gatewayd's own
}

// RestartPolicy is an app's restart policy in seconds, defaults applied.
type RestartPolicy struct {
	DelaySeconds      float64 `json:"delay_s"`
	BackoffMaxSeconds float64 `json:"backoff_max_s"`
	MinUptimeSeconds  float64 `json:"min_uptime_s"`
}

// Logs is GET /api/apps/:name/logs's answer. Offset is the log file's size
// when read: pass it back as ?since= to get only what came after.
type Logs struct {
	Name    string   `json:"name"`
	File    string   `json:"file"`
	Lines   []string `json:"lines"`
	Offset  int64    `json:"offset"`
	Rotated bool     `json:"rotated,omitempty"` // the file was rotated since `since`: lines start at the new file
}

// Device is one device of discovery's registry.
type Device struct {
	ID                 string      `json:"id"`
	Name               string      `json:"name"`
	Manufacturer       string      `json:"manufacturer,omitempty"`
	Model              string      `json:"model,omitempty"`
	Firmware           string      `json:"firmware,omitempty"`
	Hardware           string      `json:"hardware,omitempty"`
	MAC                string      `json:"mac,omitempty"`
	Address            string      `json:"address,omitempty"`
	Identifiers        []string    `json:"identifiers,omitempty"`
	Connections        [][2]string `json:"connections,omitempty"` // Home Assistant style: [type, value]
	Sources            []string    `json:"sources"`               // homeassistant, tasmota, zigbee2mqtt, gateway, mdns
	Availability       string      `json:"availability"`          // online, offline or unknown
	AvailabilityTopics []string    `json:"availability_topics,omitempty"`
	Entities           []Entity    `json:"entities,omitempty"`
	Services           []Service   `json:"services,omitempty"` // found over mDNS
	FirstSeen          time.Time   `json:"first_seen"`
	LastSeen           time.Time   `json:"last_seen"`
}

// Entity is one thing a device exposes (a sensor, a switch, a light...).
type Entity struct {
	ID           string `json:"id"`
	Component    string `json:"component"`
	Name         string `json:"name,omitempty"`
	Source       string `json:"source"`
	StateTopic   string `json:"state_topic,omitempty"`
	CommandTopic string `json:"command_topic,omitempty"`
	DeviceClass  string `json:"device_class,omitempty"`
	Unit         string `json:"unit,omitempty"`
}

// Service is one mDNS service instance a device answered with.
type Service struct {
	Type      string            `json:"type"`
	Instance  string            `json:"instance"`
	Host      string            `json:"host,omitempty"`
	Addresses []string          `json:"addresses,omitempty"`
	Port      int               `json:"port"`
	TXT       map[string]string `json:"txt,omitempty"`
	Interface string            `json:"interface,omitempty"`
	LastSeen  time.Time         `json:"last_seen"`
}

// ConfigText is GET /api/broker/config's answer and the body of PUT and
// check.
type ConfigText struct {
	Text string `json:"text" form:"text"`
	File string `json:"file,omitempty" form:"-"`
}

// CheckResult is POST /api/broker/config/check's answer.
type CheckResult struct {
	OK       bool        `json:"ok"`
	Errors   []LineError `json:"errors"`
	Warnings []LineError `json:"warnings"`
}

// FlowResult is the answer of a change that took effect.
type FlowResult struct {
	OK        bool   `json:"ok"`
	Flow      string `json:"flow"`
	Version   string `json:"version,omitempty"`
	Unchanged bool   `json:"unchanged"`
}

// RolledBack is the 409 of a change the broker would not start with.
type RolledBack struct {
	Error        string   `json:"error"`
	RolledBack   bool     `json:"rolled_back"`
	BrokerError  string   `json:"broker_error"`
	Log          []string `json:"log"`
	Flow         string   `json:"flow"`
	Cause        string   `json:"cause"`
	RestoreError string   `json:"restore_error,omitempty"`
}

// FlowStep is one step of a config change, sent on /api/events as "flow".
type FlowStep struct {
	Flow    string    `json:"flow"`
	Kind    string    `json:"kind"`
	Step    string    `json:"step"`   // check, write, restart, wait, rollback, done
	Status  string    `json:"status"` // running, ok, failed
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// HistoryEntry is one earlier version of a file.
type HistoryEntry struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Size    int       `json:"size"`
	Reason  string    `json:"reason"`
	Change  string    `json:"change,omitempty"`  // what the save that replaced this version changed
	Outcome string    `json:"outcome,omitempty"` // how that save ended: "applied" or "rolled back"
}

// HistoryVersion is one earlier version with its text.
type HistoryVersion struct {
	HistoryEntry
	Text string `json:"text"`
}

// CertFile is one file of the certs folder.
type CertFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// BridgeAddress is one host:port of a bridge.
type BridgeAddress struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// BridgeTopic is one topic row of a bridge.
type BridgeTopic struct {
	Pattern      string `json:"pattern"`
	Direction    string `json:"direction"`
	QoS          int    `json:"qos"`
	LocalPrefix  string `json:"local_prefix"`
	RemotePrefix string `json:"remote_prefix"`
}

// Bridge is one `connection` of mosquitto.conf as GET /api/bridges shows it.
type Bridge struct {
	Name              string          `json:"name"`
	Line              int             `json:"line"`
	File              string          `json:"file,omitempty"` // set when the bridge is in an included file (read only)
	Addresses         []BridgeAddress `json:"addresses"`
	Topics            []BridgeTopic   `json:"topics"`
	RemoteUsername    string          `json:"remote_username"`
	HasPassword       bool            `json:"has_password"`
	RemoteClientID    string          `json:"remote_clientid"`
	LocalClientID     string          `json:"local_clientid"`
	ProtocolVersion   string          `json:"protocol_version"`
	CleanSession      bool            `json:"clean_session"`
	KeepaliveInterval int             `json:"keepalive_interval"`
	Notifications     bool            `json:"notifications"`
	TryPrivate        bool            `json:"try_private"`
	StartType         string          `json:"start_type"`
	CACert            string          `json:"ca_cert"`
	CAFile            string          `json:"ca_file"`
	Insecure          bool            `json:"insecure"`
	Live              *BridgeLive     `json:"live"`
}

// BridgeLive is what the broker's $SYS says of a bridge.
type BridgeLive struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Address     string    `json:"address"`
	LastError   string    `json:"last_error"`
	MessagesIn  int64     `json:"messages_in"`
	MessagesOut int64     `json:"messages_out"`
	Queued      int       `json:"queued"`
	Since       time.Time `json:"since"`
}

// BridgeInput is the body of POST and PUT: a field left out keeps its
// value.
type BridgeInput struct {
	Name              *string          `json:"name"`
	Addresses         *[]BridgeAddress `json:"addresses"`
	Topics            *[]BridgeTopic   `json:"topics"`
	RemoteUsername    *string          `json:"remote_username"`
	RemotePassword    *string          `json:"remote_password"`
	RemoteClientID    *string          `json:"remote_clientid"`
	LocalClientID     *string          `json:"local_clientid"`
	ProtocolVersion   *string          `json:"protocol_version"`
	CleanSession      *bool            `json:"clean_session"`
	KeepaliveInterval *int             `json:"keepalive_interval"`
	Notifications     *bool            `json:"notifications"`
	TryPrivate        *bool            `json:"try_private"`
	StartType         *string          `json:"start_type"`
	CACert            *string          `json:"ca_cert"`
	Insecure          *bool            `json:"insecure"`
}

// BrokerStats is the broker's figures from $SYS.
type BrokerStats struct {
	Up               bool    `json:"up"`
	Version          string  `json:"version"`
	UptimeS          int64   `json:"uptime_s"`
	ClientsConnected int64   `json:"clients_connected"`
	Retained         int64   `json:"retained"`
	Subscriptions    int64   `json:"subscriptions"`
	InPerS           float64 `json:"messages_in_per_s"`
	OutPerS          float64 `json:"messages_out_per_s"`
	// The split of the figures above (Mosquitto's totals) by whose they
	// are; split is false while the broker has not told it.
	Error        string    `json:"error,omitempty"` // why there are no figures while up is false (a refusal is not a broker down)
	Split        bool      `json:"split"`
	OwnerClients int64     `json:"owner_clients"` // clients_connected less the box's own
	BoxClients   int64     `json:"box_clients"`   // the box's own: console statistics, discovery, explorer
	OwnerInPerS  float64   `json:"owner_in_per_s"`
	OwnerOutPerS float64   `json:"owner_out_per_s"`
	BoxInPerS    float64   `json:"box_in_per_s"`
	BoxOutPerS   float64   `json:"box_out_per_s"`
	SysInPerS    float64   `json:"sys_in_per_s"`
	SysOutPerS   float64   `json:"sys_out_per_s"`
	Updated      time.Time `json:"updated,omitzero"`
}

// RatePoint is one sample of the message rates.
type RatePoint struct {
	T      time.Time `json:"t"`
	InPerS float64   `json:"in_per_s"`
	OutPer float64   `json:"out_per_s"`
}

// BridgeCount sums up the bridges of the conf by live state.
type BridgeCount struct {
	Total   int `json:"total"`
	Up      int `json:"up"`
	Down    int `json:"down"`
	Unknown int `json:"unknown"` // while the box's own statistics client has no figures
}

// AppCount sums up the apps by status.
type AppCount struct {
	Total     int `json:"total"`
	Online    int `json:"online"`
	Launching int `json:"launching"`
	Waiting   int `json:"waiting"`
	Stopping  int `json:"stopping"`
	Stopped   int `json:"stopped"`
	Errored   int `json:"errored"`
}

// Stats is GET /api/broker/stats's answer (and the "stats" event).
type Stats struct {
	Broker  BrokerStats `json:"broker"`
	History []RatePoint `json:"history"`
	Bridges BridgeCount `json:"bridges"`
	Apps    *AppCount   `json:"apps"`
	Devices *int        `json:"devices"`
	// DevicesDropped counts what discovery's limits refused since
	// gatewayd started (an announce flood shows here, not in memory).
	DevicesDropped *DiscoveryDrops `json:"devices_dropped,omitempty"`
}

// DiscoveryDrops is what discovery refused over its limits.
type DiscoveryDrops struct {
	Messages uint64 `json:"messages"` // announces and availability payloads too large
	Devices  uint64 `json:"devices"`  // new devices past the registry's cap
	Entities uint64 `json:"entities"` // entities past a device's or the registry's cap
	Fields   uint64 `json:"fields"`   // text fields cut, ids and topics refused for their length
}

// Users is GET /api/broker/users's answer: names only, never hashes.
type Users struct {
	PasswordFile string   `json:"password_file"`
	Users        []string `json:"users"`
	ACLFile      string   `json:"acl_file"`
	ACLText      string   `json:"acl_text"`
}

// UserInput is POST /api/broker/users's body.
type UserInput struct {
	Username string `json:"username" form:"username"`
	Password string `json:"password" form:"password"`
}

// Slot is one root slot of the disk image.
type Slot struct {
	Slot    string `json:"slot"` // "a" or "b"
	Version string `json:"version"`
	Serial  int64  `json:"serial"`
	// State is "good", "trial" (new, with boots left to prove itself),
	// "bad" (it used its tries up or failed its check) or "empty".
	State     string `json:"state"`
	TriesLeft int    `json:"tries_left,omitempty"`
}

// UpdateResult is what became of the last update.
type UpdateResult struct {
	Version string `json:"version"`
	Serial  int64  `json:"serial"`
	Slot    string `json:"slot"`
	// State: installing, installed (reboot to try it), trial, good,
	// failed (not installed: Message says why) or rolled-back.
	State   string    `json:"state"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
}

// System is GET /api/system's answer (and `gwctl system`).
type System struct {
	Version string `json:"version"` // gatewayd's
	Arch    string `json:"arch"`
	// Slots is false when the box did not start from the disk image (the
	// overlay on an owner's own OS): no updates or factory reset here.
	Slots      bool          `json:"slots"`
	Booted     *Slot         `json:"booted,omitempty"`
	Other      *Slot         `json:"other,omitempty"`
	LastUpdate *UpdateResult `json:"last_update,omitempty"`
	// Problem says why the slots could not be read, when they could not.
	Problem string `json:"problem,omitempty"`
}

// Updated is POST /api/system/update's answer: the bundle is in the other
// slot and the box reboots into it.
type Updated struct {
	OK        bool   `json:"ok"`
	Version   string `json:"version"`
	Slot      string `json:"slot"`
	Rebooting bool   `json:"rebooting"`
}
