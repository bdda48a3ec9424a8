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
	supported bool // applied by this broker; otherwise warned about and ignored
}

// options is every option of Mosquitto 2.0 and 2.1, known by name so that
// a valid Mosquitto option is never reported as unknown.
var options = map[string]option{
	// Supported, broker-wide.
	"per_listener_settings": {scopeGlobal, true},
	"persistence":           {scopeGlobal, true},
	"retained_persistence":  {scopeGlobal, true}, // old name of persistence
	"persistence_location":  {scopeGlobal, true},
	"persistence_file":      {scopeGlobal, true},
	"autosave_interval":     {scopeGlobal, true},
	"max_inflight_messages": {scopeGlobal, true},
	"max_queued_messages":   {scopeGlobal, true},
	"message_size_limit":    {scopeGlobal, true},
	"max_packet_size":       {scopeGlobal, true},
	"max_keepalive":         {scopeGlobal, true},
	"retain_available":      {scopeGlobal, true},
	"sys_interval":          {scopeGlobal, true},
	"log_dest":              {scopeGlobal, true},
	"log_type":              {scopeGlobal, true},
	"connection_messages":   {scopeGlobal, true},
	"pid_file":              {scopeGlobal, true},
	"include_dir":           {scopeGlobal, true},
	"listener":              {scopeGlobal, true},
	"port":                  {scopeGlobal, true}, // the default listener's port (deprecated)
	"bind_address":          {scopeGlobal, true}, // the default listener's address (deprecated)
	"connection":            {scopeGlobal, true},

	// Supported, per listener.
	"max_connections":     {scopeListener, true},
	"protocol":            {scopeListener, true},
	"certfile":            {scopeListener, true},
	"keyfile":             {scopeListener, true},
	"cafile":              {scopeListener, true},
	"capath":              {scopeListener, true},
	"require_certificate": {scopeListener, true},
	"tls_version":         {scopeListener, true},
	"websockets_origin":   {scopeListener, true}, // Mosquitto 2.1; may be repeated

	// Supported, security.
	"allow_anonymous": {scopeSecurity, true},
	"password_file":   {scopeSecurity, true},
	"acl_file":        {scopeSecurity, true},

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

	// Known, not supported: broker-wide.
	"allow_duplicate_messages":     {scopeGlobal, false},
	"autosave_on_changes":          {scopeGlobal, false},
	"clientid_prefixes":            {scopeGlobal, false},
	"enable_control_api":           {scopeGlobal, false},
	"global_max_clients":           {scopeGlobal, false},
	"global_max_connections":       {scopeGlobal, false},
	"global_plugin":                {scopeGlobal, false},
	"log_facility":                 {scopeGlobal, false},
	"log_timestamp":                {scopeGlobal, false},
	"log_timestamp_format":         {scopeGlobal, false},
	"max_inflight_bytes":           {scopeGlobal, false},
	"max_queued_bytes":             {scopeGlobal, false},
	"memory_limit":                 {scopeGlobal, false},
	"persistent_client_expiration": {scopeGlobal, false},
	"queue_qos0_messages":          {scopeGlobal, false},
	"quic_log_level":               {scopeGlobal, false},
	"retry_interval":               {scopeGlobal, false},
	"set_tcp_nodelay":              {scopeGlobal, false},
	"upgrade_outgoing_qos":         {scopeGlobal, false},
	"user":                         {scopeGlobal, true},
	"websockets_headers_size":      {scopeGlobal, false},
	"websockets_log_level":         {scopeGlobal, false},

	// Known, not supported: per listener.
	"accept_protocol_versions":        {scopeListener, false},
	"bind_interface":                  {scopeListener, false},
	"ciphers":                         {scopeListener, false},
	"ciphers_tls1.3":                  {scopeListener, false},
	"crlfile":                         {scopeListener, false},
	"dhparamfile":                     {scopeListener, false},
	"disable_client_cert_date_checks": {scopeListener, false},
	"http_dir":                        {scopeListener, false},
	"max_qos":                         {scopeListener, false},
	"maximum_qos":                     {scopeListener, false},
	"max_topic_alias":                 {scopeListener, false},
	"max_topic_alias_broker":          {scopeListener, false},
	"mount_point":                     {scopeListener, false},
	"psk_hint":                        {scopeListener, false},
	"socket_domain":                   {scopeListener, false},
	"tls_engine":                      {scopeListener, false},
	"tls_engine_kpass_sha1":           {scopeListener, false},
	"tls_keyform":                     {scopeListener, false},
	"use_identity_as_username":        {scopeListener, false},
	"use_subject_as_username":         {scopeListener, false},
	"use_username_as_clientid":        {scopeListener, false},

	// Known, not supported: security.
	"allow_zero_length_clientid":     {scopeSecurity, false},
	"auth_plugin":                    {scopeSecurity, false},
	"auth_plugin_deny_special_chars": {scopeSecurity, false},
	"auto_id_prefix":                 {scopeSecurity, false},
	"check_retain_source":            {scopeSecurity, false},
	"plugin":                         {scopeSecurity, false},
	"psk_file":                       {scopeSecurity, false},

	// Known, not supported: bridge.
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
