package mosquittoconf

import (
	"reflect"
	"strings"
	"testing"
)

// Every refused bridge option is an error that names the line and says
// why, and nothing of the config is returned.
func TestBridgeOptionsRefused(t *testing.T) {
	cases := []struct{ line, want string }{
		{"bridge_identity gw", "bridge_identity: cannot apply on this box: TLS-PSK is not available"},
		{"bridge_psk 0123abcd", "bridge_psk: cannot apply on this box: TLS-PSK is not available"},
		{"bridge_ciphers ECDHE-RSA-AES256-GCM-SHA384", "bridge_ciphers: cannot apply on this box: OpenSSL cipher lists cannot be applied"},
		{"bridge_ciphers_tls1.3 TLS_AES_128_GCM_SHA256", "bridge_ciphers_tls1.3: cannot apply on this box: TLS 1.3 cipher suites are fixed"},
		{"bridge_require_ocsp true", "bridge_require_ocsp: cannot apply on this box: the bridge cannot verify OCSP responses"},
		{"local_username me", "local_username: cannot apply on this box: the bridge runs inside this broker"},
		{"local_password pw", "local_password: cannot apply on this box: the bridge runs inside this broker"},
		{"local_cleansession true", "local_cleansession: cannot apply on this box: the bridge's outgoing queue is always kept on disk"},
		{"local_cleansession 1", "local_cleansession: cannot apply on this box: the bridge's outgoing queue is always kept on disk"},
		{"bridge_reload_type lazy", "bridge_reload_type: cannot apply on this box: a config change restarts the broker"},
		{"start_type manual", `start_type: cannot apply on this box: "manual" needs a control API`},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			cfg, ds := Check("mosquitto.conf", []byte(bridgeOK+c.line+"\n"), t.TempDir())
			got := messages(ds.Errors)
			if cfg != nil || len(got) != 1 || !strings.HasPrefix(got[0], "mosquitto.conf:4: "+c.want) {
				t.Fatalf("errors = %q, want one starting %q", got, "mosquitto.conf:4: "+c.want)
			}
		})
	}
}

// The honoured options of bridgeopts.go, read from a conf, and their
// Mosquitto defaults when absent.
func TestBridgeOptionsRead(t *testing.T) {
	conf := bridgeOK + `bridge_attempt_unsubscribe false
round_robin true
bridge_bind_address 127.0.0.2
bridge_alpn x-mqtt
bridge_receive_maximum 20
bridge_session_expiry_interval 4294967295
bridge_max_topic_alias 0
bridge_tcp_keepalive 30 5 4
bridge_tcp_user_timeout 9000
bridge_require_ocsp false
bridge_reload_type immediate
bridge_tls_use_os_certs true
restart_timeout 2 10 30
local_cleansession false
`
	cfg, ds := Check("mosquitto.conf", []byte(conf), t.TempDir())
	if !ds.OK() || len(ds.Warnings) > 0 {
		t.Fatalf("errors %q warnings %q", messages(ds.Errors), messages(ds.Warnings))
	}
	forever := uint32(4294967295)
	want := BridgeExtra{AttemptUnsubscribe: false, RoundRobin: true, BindAddress: "127.0.0.2", ALPN: "x-mqtt",
		ReceiveMaximum: 20, SessionExpiryInterval: &forever, MaxTopicAlias: 0,
		TCPKeepaliveIdle: 30, TCPKeepaliveInterval: 5, TCPKeepaliveCount: 4, TCPUserTimeout: 9000,
		TLSUseOSCerts: true, RestartTimeoutStable: 30}
	if b := cfg.Bridges[0]; b.RestartTimeoutBase != 2 || b.RestartTimeoutCap != 10 {
		t.Fatalf("restart_timeout read as %d %d", b.RestartTimeoutBase, b.RestartTimeoutCap)
	}
	if got := cfg.Bridges[0].BridgeExtra; !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v\nwant %+v", got, want)
	}
	if got := NewBridge("x").BridgeExtra; !reflect.DeepEqual(got, bridgeExtraDefaults()) ||
		!got.AttemptUnsubscribe || got.MaxTopicAlias != 10 || got.SessionExpiryInterval != nil {
		t.Fatalf("defaults %+v", got)
	}
	// The console writes them back and reads the same bridge.
	d := ParseDocument("mosquitto.conf", []byte(bridgeOK))
	b := cfg.Bridges[0]
	if err := d.UpsertBridge(b); err != nil {
		t.Fatal(err)
	}
	again, ds := Check("mosquitto.conf", d.Bytes(), "")
	if !ds.OK() || !reflect.DeepEqual(again.Bridges[0].BridgeExtra, want) {
		t.Fatalf("written back:\n%s\nerrors %q", d.Bytes(), messages(ds.Errors))
	}
}

// Bad values say what is wrong, at the line.
func TestBridgeOptionsBadValues(t *testing.T) {
	cases := []struct{ line, want string }{
		{"bridge_bind_address eth0", `bridge_bind_address: invalid address "eth0": want an IP address of this box`},
		{"bridge_receive_maximum 0", "bridge_receive_maximum: 0 out of range 1-65535"},
		{"bridge_max_topic_alias 70000", "bridge_max_topic_alias: 70000 out of range 0-65535"},
		{"bridge_session_expiry_interval -1", `bridge_session_expiry_interval: invalid value "-1": want seconds from 0 to 4294967295`},
		{"bridge_tcp_keepalive 30 5", "bridge_tcp_keepalive: want three numbers: IDLE INTERVAL COUNT"},
		{"bridge_tcp_keepalive 30 x 4", `bridge_tcp_keepalive: invalid number "x": want 1-32767`},
		{"bridge_reload_type soon", `bridge_reload_type: invalid value "soon": want lazy or immediate`},
		{"restart_timeout 5 30 x", `restart_timeout: invalid stable time "x": want seconds, 0 or more`},
		{"round_robin maybe", `round_robin: invalid value "maybe": want true or false`},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			_, ds := Check("mosquitto.conf", []byte(bridgeOK+c.line+"\n"), t.TempDir())
			if got := messages(ds.Errors); len(got) != 1 || got[0] != "mosquitto.conf:4: "+c.want {
				t.Fatalf("errors = %q, want %q", got, "mosquitto.conf:4: "+c.want)
			}
		})
	}
}
