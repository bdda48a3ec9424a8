package mosquittoconf

import (
	"crypto/tls"
	"strings"
	"testing"
)

// TestRefusedOptions: an option that cannot apply on this box is an
// error naming the line and why, never a warning, and the config is not
// given to the broker.
func TestRefusedOptions(t *testing.T) {
	dir := testDir(t)
	cases := []struct{ conf, want string }{
		{"plugin /usr/lib/mosquitto_dynamic_security.so\n", "m.conf:1: plugin: cannot apply on this box: loads a Mosquitto plugin"},
		{"global_plugin /usr/lib/x.so\n", "m.conf:1: global_plugin: cannot apply on this box: loads a Mosquitto plugin"},
		{"auth_plugin /usr/lib/x.so\n", "m.conf:1: auth_plugin: cannot apply on this box: loads a Mosquitto plugin"},
		{"plugin_opt_config_file /x.json\n", "m.conf:1: plugin_opt_config_file: cannot apply on this box: configures a Mosquitto plugin"},
		{"auth_opt_db x\n", "m.conf:1: auth_opt_db: cannot apply on this box: configures a Mosquitto plugin"},
		{"auth_plugin_deny_special_chars false\n", "m.conf:1: auth_plugin_deny_special_chars: cannot apply on this box: applies to Mosquitto auth plugins"},
		{"listener 8883\ntls_engine pkcs11\n", "m.conf:2: tls_engine: cannot apply on this box: names an OpenSSL engine"},
		{"listener 8883\ntls_engine_kpass_sha1 00\n", "m.conf:2: tls_engine_kpass_sha1: cannot apply on this box: names an OpenSSL engine"},
		{"listener 8883\ntls_keyform engine\n", "m.conf:2: tls_keyform: cannot apply on this box: names an OpenSSL engine"},
		{"listener 8883\ntls_keyform der\n", `m.conf:2: tls_keyform: invalid value "der": want pem or engine`},
		{"listener 8883\npsk_hint box\n", "m.conf:2: psk_hint: cannot apply on this box: Go's crypto/tls has no pre-shared-key (PSK) cipher suites"},
		{"psk_file psk.txt\n", "m.conf:1: psk_file: cannot apply on this box: Go's crypto/tls has no pre-shared-key"},
		{"listener 8883\nciphers_tls1.3 TLS_AES_128_GCM_SHA256\n", "m.conf:2: ciphers_tls1.3: cannot apply on this box: Go's crypto/tls does not let TLS 1.3 cipher suites be chosen"},
		{"listener 8883\ndhparamfile dh.pem\n", "m.conf:2: dhparamfile: cannot apply on this box: Go's crypto/tls has no DHE cipher suites"},
		{"quic_log_level debug\n", "m.conf:1: quic_log_level: cannot apply on this box: this broker has no QUIC listener"},
		{"websockets_log_level 255\n", "m.conf:1: websockets_log_level: cannot apply on this box: sets libwebsockets' own logging"},
		{"set_tcp_nodelay false\n", "m.conf:1: set_tcp_nodelay: cannot apply on this box: false: the box always sets TCP_NODELAY"},
		{"allow_duplicate_messages true\n", "m.conf:1: allow_duplicate_messages: cannot apply on this box: true: mochi sends a message once"},
		{"listener 1883\nmount_point site/+/\n", `m.conf:2: mount_point: invalid mount point "site/+/": wildcards are not allowed`},
		{"log_dest dlt\n", "m.conf:1: log_dest: cannot apply on this box: dlt: there is no DLT"},
		{"log_facility 8\n", "m.conf:1: log_facility: "},
		{"enable_control_api true\n", "m.conf:1: enable_control_api: cannot apply on this box: the $CONTROL API"},
		{"listener 1883\nmax_qos 1\nlistener 1884\n", "m.conf:3: max_qos: cannot apply on this box: 2 here and 1 on the listener at m.conf:1"},
		{"listener 1883\nlistener 1884\nmax_topic_alias 5\n", "m.conf:3: max_topic_alias: cannot apply on this box: 5 here and 10 on the listener at m.conf:1"},
		{"persistent_client_expiration 14\n", `m.conf:1: persistent_client_expiration: invalid duration "14"`},
		{"persistent_client_expiration 0d\n", `m.conf:1: persistent_client_expiration: invalid duration "0d"`},
		{"listener 1883\nmax_qos 3\n", "m.conf:2: max_qos: "},
		{"listener 1883\nmaximum_qos 3\n", "m.conf:2: maximum_qos: "},
		{"listener 1883\nmaximum_qos 1\nlistener 1884\n", "m.conf:3: max_qos: cannot apply on this box: 2 here and 1 on the listener at m.conf:1"},
		// The last eight of issue 16: their default is mochi's behaviour;
		// the other value is refused with why.
		{"max_inflight_bytes 1000\n", "m.conf:1: max_inflight_bytes: cannot apply on this box: 1000: mochi bounds the messages in flight to a client by their count only"},
		{"queue_qos0_messages true\n", "m.conf:1: queue_qos0_messages: cannot apply on this box: true: mochi keeps only QoS 1 and 2 messages for a disconnected session"},
		{"upgrade_outgoing_qos true\n", "m.conf:1: upgrade_outgoing_qos: cannot apply on this box: true: mochi chooses each subscriber's delivery QoS inside its publish path"},
		{"check_retain_source true\n", "m.conf:1: check_retain_source: cannot apply on this box: true: mochi sends a retained message to new subscribers without a hook"},
		{"max_queued_bytes -1\n", "m.conf:1: max_queued_bytes: "},
		{"listener 1883\nuse_identity_as_username true\n", "m.conf:2: use_identity_as_username: needs certfile, keyfile, cafile and require_certificate true"},
		{"listener 1883\nuse_subject_as_username true\n", "m.conf:2: use_subject_as_username: needs certfile, keyfile, cafile and require_certificate true"},
		{"listener 1883\nprotocol websockets\nuse_identity_as_username true\n", "m.conf:3: use_identity_as_username: not on a websockets listener"},
	}
	for _, c := range cases {
		cfg, ds := Check("m.conf", []byte(c.conf), dir)
		if ds.OK() || cfg != nil && ds.Err() == nil {
			t.Errorf("%q: accepted", c.conf)
			continue
		}
		if len(ds.Errors) != 1 || !strings.HasPrefix(ds.Errors[0].Error(), c.want) {
			t.Errorf("%q: errors %v, want one starting %q", c.conf, messages(ds.Errors), c.want)
		}
		if len(ds.Warnings) != 0 {
			t.Errorf("%q: warnings %v", c.conf, messages(ds.Warnings))
		}
	}
}

// TestHonouredOptionValues: the values of the options the broker applies
// reach the model with Mosquitto's meaning and defaults.
func TestHonouredOptionValues(t *testing.T) {
	dir := testDir(t)
	cfg, ds := Check("m.conf", []byte(""), dir)
	if !ds.OK() || cfg.MaxQoS != 2 || cfg.MaxTopicAlias != 10 || cfg.PersistentClientExpiration != 0 || cfg.ClientIDPrefixes != "" {
		t.Fatalf("defaults: %+v %v", cfg, ds.Err())
	}
	conf := "set_tcp_nodelay true\nallow_duplicate_messages false\npersistent_client_expiration 2m\nclientid_prefixes zb-\nallow_zero_length_clientid false\nauto_id_prefix gw-\n" +
		"listener 1883\nmax_qos 1\nmax_topic_alias 0\nuse_username_as_clientid true\ntls_keyform pem\n"
	cfg, ds = Check("m.conf", []byte(conf), dir)
	if !ds.OK() || len(ds.Warnings) != 0 {
		t.Fatalf("%v %v", ds.Err(), messages(ds.Warnings))
	}
	l := cfg.Listeners[0]
	if cfg.PersistentClientExpiration != 60*86400 || cfg.ClientIDPrefixes != "zb-" || !cfg.Security.RefuseZeroLengthClientID ||
		cfg.Security.AutoIDPrefix != "gw-" || cfg.MaxQoS != 1 || cfg.MaxTopicAlias != 0 || !l.UseUsernameAsClientID {
		t.Fatalf("got %+v", cfg)
	}
	for v, secs := range map[string]int64{"1h": 3600, "14d": 14 * 86400, "2w": 14 * 86400, "1y": 365 * 86400} {
		cfg, ds := Check("m.conf", []byte("persistent_client_expiration "+v+"\n"), dir)
		if !ds.OK() || cfg.PersistentClientExpiration != secs {
			t.Errorf("%s: %d, want %d (%v)", v, cfg.PersistentClientExpiration, secs, ds.Err())
		}
	}
	// The last eight of issue 16 at their defaults, as mochi behaves, and
	// the values honoured.
	conf = "max_inflight_bytes 0\nqueue_qos0_messages false\nupgrade_outgoing_qos false\ncheck_retain_source false\nmax_queued_bytes 4096\nlistener 1883\nmaximum_qos 1\n"
	cfg, ds = Check("m.conf", []byte(conf), dir)
	if !ds.OK() || len(ds.Warnings) != 0 || cfg.MaxQueuedBytes != 4096 || cfg.MaxQoS != 1 || cfg.Listeners[0].MaxQoS != 1 {
		t.Fatalf("%+v %v %v", cfg, ds.Err(), messages(ds.Warnings))
	}
	if cfg, ds := Check("m.conf", []byte(""), dir); cfg.MaxQueuedBytes != 0 || !ds.OK() {
		t.Fatalf("max_queued_bytes default %d", cfg.MaxQueuedBytes)
	}
	// Per listener settings: each listener keeps its own client-id rules.
	cfg, ds = Check("m.conf", []byte("per_listener_settings true\nlistener 1883\nallow_anonymous true\nauto_id_prefix a-\nlistener 1884\nallow_anonymous true\nallow_zero_length_clientid false\n"), dir)
	if !ds.OK() || cfg.Listeners[0].Security.AutoIDPrefix != "a-" || cfg.Listeners[0].Security.RefuseZeroLengthClientID ||
		!cfg.Listeners[1].Security.RefuseZeroLengthClientID {
		t.Fatalf("per listener: %+v %v", cfg.Listeners, ds.Err())
	}
}

func TestLogTimestampFormat(t *testing.T) {
	dir := testDir(t)
	cfg, ds := Check("m.conf", []byte("log_timestamp false\nlog_timestamp_format %F %T %z\n"), dir)
	if !ds.OK() || !cfg.LogNoTimestamp || cfg.LogTimestampLayout != "2006-01-02 15:04:05 -0700" {
		t.Fatalf("%+v %v", cfg, ds.Err())
	}
	_, ds = Check("m.conf", []byte("log_timestamp_format %s\n"), dir)
	if want := `m.conf:1: log_timestamp_format: "%s": %s has no equivalent here`; len(ds.Errors) != 1 || !strings.HasPrefix(ds.Errors[0].Error(), want) {
		t.Fatalf("errors %v, want %q", messages(ds.Errors), want)
	}
}

func TestAcceptProtocolVersionsValues(t *testing.T) {
	dir := testDir(t)
	cfg, ds := Check("m.conf", []byte("listener 1883\naccept_protocol_versions 3, 5\nlistener 1884\n"), dir)
	if !ds.OK() || string(cfg.Listeners[0].AcceptProtocolVersions) != "\x03\x05" || cfg.Listeners[1].AcceptProtocolVersions != nil {
		t.Fatalf("%+v %v", cfg.Listeners, ds.Err())
	}
	_, ds = Check("m.conf", []byte("listener 1883\naccept_protocol_versions 4,6\n"), dir)
	if want := `m.conf:2: accept_protocol_versions: invalid version "6"`; len(ds.Errors) != 1 || !strings.HasPrefix(ds.Errors[0].Error(), want) {
		t.Fatalf("errors %v, want %q", messages(ds.Errors), want)
	}
}

func TestCipherList(t *testing.T) {
	dir := testDir(t)
	ids, err := parseCiphers("ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL:ECDHE-RSA-AES256-GCM-SHA384")
	if err != nil || len(ids) != 2 || ids[0] != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Fatalf("%v %v", ids, err)
	}
	for conf, want := range map[string]string{
		"listener 8883\nciphers HIGH:!aNULL\n":           `m.conf:2: ciphers: "HIGH" is not a cipher suite Go's crypto/tls has`,
		"listener 8883\nciphers DHE-RSA-AES256-SHA256\n": `m.conf:2: ciphers: "DHE-RSA-AES256-SHA256" is not a cipher suite`,
		"listener 1883\nciphers ECDHE-RSA-AES128-SHA\n":  "m.conf:2: ciphers: needs certfile and keyfile in the same listener",
	} {
		_, ds := Check("m.conf", []byte(conf), dir)
		if len(ds.Errors) != 1 || !strings.HasPrefix(ds.Errors[0].Error(), want) {
			t.Errorf("%q: errors %v, want %q", conf, messages(ds.Errors), want)
		}
	}
}
