package mosquittoconf

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
)

// This file reads the bridge options added for issue 16 (most of them
// Mosquitto 2.1) and refuses, at check time, those that cannot apply on
// this box. Each refusal says why, so the owner can drop the line.

// BridgeExtra holds the bridge options of this file; it is embedded in
// Bridge so its fields read as Bridge fields.
type BridgeExtra struct {
	AttemptUnsubscribe bool   // bridge_attempt_unsubscribe, default true
	BindAddress        string // bridge_bind_address: local IP the socket binds to; "" = any
	ALPN               string // bridge_alpn: TLS application protocol offered
	RoundRobin         bool   // round_robin, default false (first address is the main one)
	TLSUseOSCerts      bool   // bridge_tls_use_os_certs: trust the system's CAs (turns TLS on)

	// RestartTimeoutStable is the third value of restart_timeout BASE CAP
	// STABLE (2.1): the backoff goes back to BASE only after a connection
	// that lasted this many seconds; 0 = at once.
	RestartTimeoutStable int

	// MQTT 5 CONNECT properties.
	ReceiveMaximum        int     // bridge_receive_maximum 1-65535; 0 = not sent (65535)
	SessionExpiryInterval *uint32 // bridge_session_expiry_interval seconds; nil = not written
	MaxTopicAlias         int     // bridge_max_topic_alias 0-65535, default 10

	// TCP socket options; 0 = the system's default.
	TCPKeepaliveIdle     int // bridge_tcp_keepalive IDLE INTERVAL COUNT (seconds, seconds, probes)
	TCPKeepaliveInterval int
	TCPKeepaliveCount    int
	TCPUserTimeout       int // bridge_tcp_user_timeout milliseconds
}

// bridgeExtraDefaults are Mosquitto's defaults for BridgeExtra.
func bridgeExtraDefaults() BridgeExtra {
	return BridgeExtra{AttemptUnsubscribe: true, MaxTopicAlias: 10}
}

// bridgeRefusal says why a bridge option line cannot apply here; "" when
// it can.
func bridgeRefusal(name string, l *Line) string {
	w := l.Words()
	first := ""
	if len(w) > 0 {
		first = w[0]
	}
	switch name {
	case "bridge_identity", "bridge_psk":
		return "TLS-PSK is not available (Go's crypto/tls has no pre-shared-key cipher suites); use bridge_cafile with a certificate"
	case "bridge_ciphers":
		return "OpenSSL cipher lists cannot be applied; the bridge uses Go's TLS 1.2 suites with forward secrecy (set bridge_tls_version tlsv1.3 to narrow them)"
	case "bridge_ciphers_tls1.3":
		return "TLS 1.3 cipher suites are fixed by Go's crypto/tls and cannot be chosen"
	case "bridge_require_ocsp":
		if first == "true" || first == "1" {
			return "the bridge cannot verify OCSP responses; remove the line or set it to false"
		}
	case "local_username", "local_password":
		return "the bridge runs inside this broker, so its local side has no login and local ACLs do not apply to it; remove the line"
	case "local_cleansession":
		if first == "true" || first == "1" {
			return "the bridge's outgoing queue is always kept on disk across restarts (local_cleansession false); remove the line"
		}
	case "bridge_reload_type":
		if first == "lazy" {
			return "a config change restarts the broker, so every bridge reconnects at once with its new settings (bridge_reload_type immediate)"
		}
	}
	return ""
}

// applyBridgeExtra reads the options of BridgeExtra; it reports whether
// key was one of them.
func (in *interp) applyBridgeExtra(b *Bridge, pos Pos, l *Line, key string) bool {
	switch key {
	case "bridge_attempt_unsubscribe":
		in.setBool(pos, l, &b.AttemptUnsubscribe)
	case "round_robin":
		in.setBool(pos, l, &b.RoundRobin)
	case "bridge_tls_use_os_certs":
		in.setBool(pos, l, &b.TLSUseOSCerts)
	case "bridge_bind_address":
		if v, ok := in.word(pos, l); ok {
			if _, err := netip.ParseAddr(v); err != nil {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid address %q: want an IP address of this box", v))
				return true
			}
			b.BindAddress = v
		}
	case "bridge_alpn":
		in.setString(pos, l, b, key, &b.ALPN)
	case "bridge_receive_maximum":
		in.setInt(pos, l, 1, math.MaxUint16, &b.ReceiveMaximum)
	case "bridge_max_topic_alias":
		in.setInt(pos, l, 0, math.MaxUint16, &b.MaxTopicAlias)
	case "bridge_session_expiry_interval":
		if v, ok := in.word(pos, l); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > math.MaxUint32 {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want seconds from 0 to %d", v, uint32(math.MaxUint32)))
				return true
			}
			v := uint32(n)
			b.SessionExpiryInterval = &v
		}
	case "bridge_tcp_keepalive":
		w := l.Words()
		if len(w) != 3 {
			in.ds.errorf(pos, l.Option, "want three numbers: IDLE INTERVAL COUNT")
			return true
		}
		var n [3]int
		for i, s := range w {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 || v > math.MaxInt16 {
				in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid number %q: want 1-%d", s, math.MaxInt16))
				return true
			}
			n[i] = v
		}
		b.TCPKeepaliveIdle, b.TCPKeepaliveInterval, b.TCPKeepaliveCount = n[0], n[1], n[2]
	case "local_cleansession": // true is refused by bridgeRefusal
		var v bool
		in.setBool(pos, l, &v)
	case "bridge_require_ocsp": // true is refused by bridgeRefusal
		var v bool
		in.setBool(pos, l, &v)
	case "bridge_reload_type": // lazy is refused by bridgeRefusal
		if v, ok := in.word(pos, l); ok && v != "immediate" {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want lazy or immediate", v))
		}
	case "bridge_tcp_user_timeout":
		in.setInt(pos, l, 0, math.MaxInt32, &b.TCPUserTimeout)
	default:
		return false
	}
	return true
}

// renderBridgeExtra writes the BridgeExtra settings of e that differ from
// def, for UpsertBridge.
func renderBridgeExtra(e, def BridgeExtra, add func(opt string, v ...string)) {
	if e.AttemptUnsubscribe != def.AttemptUnsubscribe {
		add("bridge_attempt_unsubscribe", strconv.FormatBool(e.AttemptUnsubscribe))
	}
	if e.RoundRobin != def.RoundRobin {
		add("round_robin", strconv.FormatBool(e.RoundRobin))
	}
	if e.TLSUseOSCerts {
		add("bridge_tls_use_os_certs", "true")
	}
	if e.BindAddress != "" {
		add("bridge_bind_address", e.BindAddress)
	}
	if e.ALPN != "" {
		add("bridge_alpn", e.ALPN)
	}
	if e.ReceiveMaximum != def.ReceiveMaximum {
		add("bridge_receive_maximum", strconv.Itoa(e.ReceiveMaximum))
	}
	if e.SessionExpiryInterval != nil {
		add("bridge_session_expiry_interval", strconv.FormatUint(uint64(*e.SessionExpiryInterval), 10))
	}
	if e.MaxTopicAlias != def.MaxTopicAlias {
		add("bridge_max_topic_alias", strconv.Itoa(e.MaxTopicAlias))
	}
	if e.TCPKeepaliveIdle != 0 || e.TCPKeepaliveInterval != 0 || e.TCPKeepaliveCount != 0 {
		add("bridge_tcp_keepalive", strconv.Itoa(e.TCPKeepaliveIdle), strconv.Itoa(e.TCPKeepaliveInterval), strconv.Itoa(e.TCPKeepaliveCount))
	}
	if e.TCPUserTimeout != 0 {
		add("bridge_tcp_user_timeout", strconv.Itoa(e.TCPUserTimeout))
	}
}
