package mosquittoconf

import "strings"

// scope says which part of the config an option belongs to, as Mosquitto
// scopes it.
type scope int

const (
	scopeGlobal   scope = iota // the whole broker
	scopeListener              // the current listener (or the default listener before any)
	scopeSecurity              // the whole broker, or the listener under per_listener_settings
	scopeBridge                // the current bridge; an error before any connection line
)

type option struct {
	scope     scope
	supported bool // applied by this broker; otherwise refused (see refusals) or warned about
}

// Reasons an option cannot apply here, shared by families of options.
const (
	noPlugins = "loads a Mosquitto plugin (a .so built for Mosquitto's C API); this broker is not Mosquitto and cannot load one"
	noEngines = "names an OpenSSL engine; Go's crypto/tls cannot use OpenSSL engines"
	noPSK     = "Go's crypto/tls has no pre-shared-key (PSK) cipher suites"
)

// options is every option of Mosquitto 2.0 and 2.1, known by name so that
// a valid Mosquitto option is never reported as unknown.
var options = map[string]option{
	// Supported, broker-wide.
	"per_listener_settings":        {scopeGlobal, true},
	"persistence":                  {scopeGlobal, true},
	"retained_persistence":         {scopeGlobal, true}, // old name of persistence
	"persistence_location":         {scopeGlobal, true},
	"persistence_file":             {scopeGlobal, true},
	"autosave_interval":            {scopeGlobal, true},
	"max_inflight_messages":        {scopeGlobal, true},
	"max_queued_messages":          {scopeGlobal, true},
	"message_size_limit":           {scopeGlobal, true},
	"max_packet_size":              {scopeGlobal, true},
	"max_keepalive":                {scopeGlobal, true},
	"retain_available":             {scopeGlobal, true},
	"sys_interval":                 {scopeGlobal, true},
	"log_dest":                     {scopeGlobal, true},
	"log_type":                     {scopeGlobal, true},
	"connection_messages":          {scopeGlobal, true},
	"pid_file":                     {scopeGlobal, true},
	"include_dir":                  {scopeGlobal, true},
	"listener":                     {scopeGlobal, true},
	"port":                         {scopeGlobal, true}, // the default listener's port (deprecated)
	"bind_address":                 {scopeGlobal, true}, // the default listener's address (deprecated)
	"connection":                   {scopeGlobal, true},
	"persistent_client_expiration": {scopeGlobal, true},
	"clientid_prefixes":            {scopeGlobal, true},
	"log_timestamp":                {scopeGlobal, true},
	"memory_limit":                 {scopeGlobal, true},
	"log_facility":                 {scopeGlobal, true},
	"set_tcp_nodelay":              {scopeGlobal, true}, // true only: see interp
	"allow_duplicate_messages":     {scopeGlobal, true}, // false only: see interp
	"autosave_on_changes":          {scopeGlobal, true}, // accepted: every change is saved
	"retry_interval":               {scopeGlobal, true}, // gone in Mosquitto 2.0: warned about there too
	"global_max_clients":           {scopeGlobal, true}, // Mosquitto 2.1
	"global_max_connections":       {scopeGlobal, true}, // Mosquitto 2.1
	"websockets_headers_size":      {scopeGlobal, true},
	"log_timestamp_format":         {scopeGlobal, true},
	"max_queued_bytes":             {scopeGlobal, true},
	"max_inflight_bytes":           {scopeGlobal, true}, // 0 only: see interp
	"queue_qos0_messages":          {scopeGlobal, true}, // false only: see interp
	"upgrade_outgoing_qos":         {scopeGlobal, true}, // false only: see interp

	// Supported, per listener.
	"max_connections":                 {scopeListener, true},
	"protocol":                        {scopeListener, true},
	"certfile":                        {scopeListener, true},
	"keyfile":                         {scopeListener, true},
	"cafile":                          {scopeListener, true},
	"capath":                          {scopeListener, true},
	"require_certificate":             {scopeListener, true},
	"tls_version":                     {scopeListener, true},
	"websockets_origin":               {scopeListener, true}, // Mosquitto 2.1; may be repeated
	"max_qos":                         {scopeListener, true},
	"max_topic_alias":                 {scopeListener, true},
	"use_username_as_clientid":        {scopeListener, true},
	"tls_keyform":                     {scopeListener, true}, // pem only; engine is refused
	"accept_protocol_versions":        {scopeListener, true}, // Mosquitto 2.1
	"socket_domain":                   {scopeListener, true},
	"bind_interface":                  {scopeListener, true},
	"crlfile":                         {scopeListener, true},
	"ciphers":                         {scopeListener, true}, // TLS 1.2 suites
	"http_dir":                        {scopeListener, true},
	"mount_point":                     {scopeListener, true},
	"disable_client_cert_date_checks": {scopeListener, true}, // Mosquitto 2.1
	"max_topic_alias_broker":          {scopeListener, true}, // Mosquitto 2.1
	"maximum_qos":                     {scopeListener, true}, // Mosquitto's other name of max_qos
	"use_identity_as_username":        {scopeListener, true},
	"use_subject_as_username":         {scopeListener, true},

	// Supported, security.
	"allow_anonymous":            {scopeSecurity, true},
	"allow_zero_length_clientid": {scopeSecurity, true},
	"auto_id_prefix":             {scopeSecurity, true},
	"password_file":              {scopeSecurity, true},
	"acl_file":                   {scopeSecurity, true},
	"check_retain_source":        {scopeSecurity, true}, // false only: see interp

	// Supported, bridge.
	"address":                  {scopeBridge, true},
	"addresses":                {scopeBridge, true},
	"topic":                    {scopeBridge, true},
	"remote_username":          {scopeBridge, true},
	"username":                 {scopeBridge, true}, // old name of remote_username
	"remote_password":          {scopeBridge, true},
	"password":                 {scopeBridge, true}, // old name of remote_password
	"remote_clientid":          {scopeBridge, true},
	"clientid":                 {scopeBridge, true}, // old name of remote_clientid
	"local_clientid":           {scopeBridge, true},
	"bridge_protocol_version":  {scopeBridge, true},
	"cleansession":             {scopeBridge, true},
	"keepalive_interval":       {scopeBridge, true},
	"notifications":            {scopeBridge, true},
	"notifications_local_only": {scopeBridge, true},
	"notification_topic":       {scopeBridge, true},
	"try_private":              {scopeBridge, true},
	"start_type":               {scopeBridge, true},
	"restart_timeout":          {scopeBridge, true},
	"idle_timeout":             {scopeBridge, true},
	"threshold":                {scopeBridge, true},
	"bridge_cafile":            {scopeBridge, true},
	"bridge_capath":            {scopeBridge, true},
	"bridge_certfile":          {scopeBridge, true},
	"bridge_keyfile":           {scopeBridge, true},
	"bridge_insecure":          {scopeBridge, true},
	"bridge_tls_version":       {scopeBridge, true},
	"bridge_tls_use_os_certs":  {scopeBridge, true}, // Mosquitto 2.1
	"bridge_max_packet_size":   {scopeBridge, true},
	"bridge_outgoing_retain":   {scopeBridge, true},

	// Known, refused with a reason (refusals): broker-wide; and user.
	"enable_control_api":   {scopeGlobal, false},
	"global_plugin":        {scopeGlobal, false},
	"quic_log_level":       {scopeGlobal, false},
	"user":                 {scopeGlobal, true},
	"websockets_log_level": {scopeGlobal, false},

	// Known, refused with a reason (refusals): per listener.
	"ciphers_tls1.3":        {scopeListener, false},
	"dhparamfile":           {scopeListener, false},
	"psk_hint":              {scopeListener, false},
	"tls_engine":            {scopeListener, false},
	"tls_engine_kpass_sha1": {scopeListener, false},

	// Known, refused with a reason (refusals): security.
	"auth_plugin":                    {scopeSecurity, false},
	"auth_plugin_deny_special_chars": {scopeSecurity, false},
	"plugin":                         {scopeSecurity, false},
	"psk_file":                       {scopeSecurity, false},

	// Bridge options of issue 16: honoured (true), or refused with a reason (bridgeopts.go).
	"bridge_alpn":                    {scopeBridge, true},
	"bridge_attempt_unsubscribe":     {scopeBridge, true},
	"bridge_bind_address":            {scopeBridge, true},
	"bridge_ciphers":                 {scopeBridge, false},
	"bridge_ciphers_tls1.3":          {scopeBridge, false},
	"bridge_identity":                {scopeBridge, false},
	"bridge_max_topic_alias":         {scopeBridge, true},
	"bridge_psk":                     {scopeBridge, false},
	"bridge_receive_maximum":         {scopeBridge, true},
	"bridge_reload_type":             {scopeBridge, true},
	"bridge_require_ocsp":            {scopeBridge, true},
	"bridge_session_expiry_interval": {scopeBridge, true},
	"bridge_tcp_keepalive":           {scopeBridge, true},
	"bridge_tcp_user_timeout":        {scopeBridge, true},
	"local_cleansession":             {scopeBridge, true},
	"local_password":                 {scopeBridge, false},
	"local_username":                 {scopeBridge, false},
	"round_robin":                    {scopeBridge, true},
}

// refusals are the options that cannot apply on this box, with why. A
// line with one is an error (never a warning), so a save or a start is
// refused rather than the broker silently behaving unlike the file.
var refusals = map[string]string{
	"enable_control_api":             "the $CONTROL API is served by Mosquitto's own plugins (dynamic security), which this broker does not have",
	"global_plugin":                  noPlugins,
	"quic_log_level":                 "this broker has no QUIC listener",
	"websockets_log_level":           "sets libwebsockets' own logging, and this broker's websockets are not libwebsockets (its websocket events are in the broker's log)",
	"ciphers_tls1.3":                 "Go's crypto/tls does not let TLS 1.3 cipher suites be chosen (all three are always on)",
	"dhparamfile":                    "Go's crypto/tls has no DHE cipher suites (it uses ECDHE, which needs no parameters)",
	"psk_hint":                       noPSK,
	"tls_engine":                     noEngines,
	"tls_engine_kpass_sha1":          noEngines,
	"auth_plugin":                    noPlugins,
	"auth_plugin_deny_special_chars": "applies to Mosquitto auth plugins, which cannot be loaded here",
	"plugin":                         noPlugins,
	"psk_file":                       noPSK,
}

// refusal says why the option name cannot apply here ("" when it can),
// including the plugin_opt_* and auth_opt_* families.
func refusal(name string) string {
	if r, ok := refusals[name]; ok {
		return r
	}
	if strings.HasPrefix(name, "plugin_opt_") || strings.HasPrefix(name, "auth_opt_") {
		return "configures a Mosquitto plugin, which cannot be loaded here"
	}
	return ""
}

// lookup finds an option by name, including the plugin_opt_* and
// auth_opt_* families.
func lookup(name string) (option, bool) {
	if o, ok := options[name]; ok {
		return o, true
	}
	for _, p := range []string{"plugin_opt_", "auth_opt_"} {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return option{scopeSecurity, false}, true
		}
	}
	return option{}, false
}

// suggest returns the known option nearest to name, or "" when none is
// close enough to be a likely typo.
func suggest(name string) string {
	if len(name) > 64 {
		return ""
	}
	best, bestD := "", 3
	for o := range options {
		if len(o) > len(name)+2 || len(name) > len(o)+2 {
			continue // too different in length to be within 2 edits
		}
		d := editDistance(name, o)
		if d < bestD || (d == bestD && o < best) {
			best, bestD = o, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
