package mosquittoconf

import (
	"fmt"
	"strconv"
)

// finish runs the checks that need the whole config: listeners that
// clash, TLS settings that need each other, bridges missing their
// address or topics, and files that must exist.
func (in *interp) finish() {
	c := in.cfg
	if in.defUsed {
		// Mosquitto adds the default listener after the others.
		if _, set := in.def.Where["port"]; !set {
			in.def.Port = 1883
		}
		in.listeners = append(in.listeners, in.def)
	} else {
		for _, d := range in.defSecPos {
			in.ds.warnf(d.Pos, d.Option, "applies to no listener (per_listener_settings is true and no listener comes before it), ignored")
		}
	}

	seen := map[string]*Listener{}
	for _, l := range in.listeners {
		in.checkListenerTLS(l)
		in.checkCertUsername(l)
		if l.Port != 0 {
			k := strconv.Itoa(l.Port) + " " + l.Address
			if first, dup := seen[k]; dup {
				in.ds.errorf(l.Pos, "listener", fmt.Sprintf("port %d on %s is already used by the listener at %s", l.Port, addrText(l.Address), first.Pos))
			} else {
				seen[k] = l
			}
		}
		c.Listeners = append(c.Listeners, *l)
	}

	host := hostname()
	localIDs := map[string]*Bridge{}
	for _, b := range in.bridges {
		fillBridgeDefaults(b, host)
		if _, tried := b.Where["address"]; !tried && len(b.Addresses) == 0 {
			in.ds.errorf(b.Pos, "connection", fmt.Sprintf("bridge %q has no address", b.Name))
		}
		if _, tried := b.Where["topic"]; !tried && len(b.Topics) == 0 {
			in.ds.errorf(b.Pos, "connection", fmt.Sprintf("bridge %q has no topic", b.Name))
		}
		in.checkBridgeTLS(b)
		if o, dup := localIDs[b.LocalClientID]; dup {
			in.ds.errorf(b.Pos, "connection", fmt.Sprintf("bridge %q has the same local_clientid %q as bridge %q; set local_clientid on one of them", b.Name, b.LocalClientID, o.Name))
		} else {
			localIDs[b.LocalClientID] = b
		}
		c.Bridges = append(c.Bridges, *b)
	}

	in.sameOnEveryListener()
	in.confinePersistence()
	in.checkFiles()
}

func addrText(a string) string {
	if a == "" {
		return "all addresses"
	}
	return a
}

// checkListenerTLS: a listener serves TLS when it has a certfile, which
// needs its keyfile; the other TLS options mean nothing without them.
func (in *interp) checkListenerTLS(l *Listener) {
	w := l.Where
	if l.CertFile != "" && l.KeyFile == "" {
		in.ds.errorf(w["certfile"], "certfile", "needs keyfile in the same listener")
	}
	if l.KeyFile != "" && l.CertFile == "" {
		in.ds.errorf(w["keyfile"], "keyfile", "needs certfile in the same listener")
	}
	if l.CertFile == "" {
		const msg = "needs certfile and keyfile in the same listener (TLS is on when certfile is set)"
		for _, o := range []struct{ name, v string }{{"cafile", l.CAFile}, {"capath", l.CAPath}, {"tls_version", l.TLSVersion}, {"crlfile", l.CRLFile}} {
			if o.v != "" {
				in.ds.errorf(w[o.name], o.name, msg)
			}
		}
		if l.RequireCertificate {
			in.ds.errorf(w["require_certificate"], "require_certificate", msg)
		}
		if l.CipherSuites != nil {
			in.ds.errorf(w["ciphers"], "ciphers", msg)
		}
		if l.IgnoreCertDates {
			in.ds.errorf(w["disable_client_cert_date_checks"], "disable_client_cert_date_checks", msg)
		}
		return
	}
	if l.IgnoreCertDates && l.CAFile == "" && l.CAPath == "" {
		in.ds.errorf(w["disable_client_cert_date_checks"], "disable_client_cert_date_checks", "needs cafile or capath: it is about the client certificates they sign")
	}
	if l.RequireCertificate && l.CAFile == "" && l.CAPath == "" {
		in.ds.errorf(w["require_certificate"], "require_certificate", "needs cafile or capath to check client certificates")
	}
}

// checkCertUsername: use_identity_as_username and use_subject_as_username
// take the username from the client certificate, so they need a TLS
// listener that asks for one (Mosquitto's man page: "If
// require_certificate is true, you may set ..."). Without it every client
// would be refused.
func (in *interp) checkCertUsername(l *Listener) {
	for _, o := range []struct {
		name string
		on   bool
	}{{"use_identity_as_username", l.UseIdentityAsUsername}, {"use_subject_as_username", l.UseSubjectAsUsername}} {
		at := l.Where[o.name]
		switch {
		case !o.on:
		case l.Protocol == "websockets":
			in.ds.errorf(at, o.name, "not on a websockets listener: its TLS ends in the HTTP server and the client certificate does not reach the MQTT session")
		case l.CertFile == "" || !l.RequireCertificate:
			in.ds.errorf(at, o.name, "needs certfile, keyfile, cafile and require_certificate true in the same listener: the username is taken from the client's certificate")
		}
	}
}

// checkBridgeTLS: a bridge talks TLS to its remote when it has a
// bridge_cafile or bridge_capath.
func (in *interp) checkBridgeTLS(b *Bridge) {
	w := b.Where
	if b.CertFile != "" && b.KeyFile == "" {
		in.ds.errorf(w["bridge_certfile"], "bridge_certfile", "needs bridge_keyfile in the same bridge")
	}
	if b.KeyFile != "" && b.CertFile == "" {
		in.ds.errorf(w["bridge_keyfile"], "bridge_keyfile", "needs bridge_certfile in the same bridge")
	}
	if b.CAFile == "" && b.CAPath == "" && !b.TLSUseOSCerts {
		const msg = "needs bridge_cafile or bridge_capath in the same bridge (TLS to the remote is on when one is set)"
		for _, o := range []struct{ name, v string }{{"bridge_certfile", b.CertFile}, {"bridge_keyfile", b.KeyFile}, {"bridge_tls_version", b.TLSVersion}} {
			if o.v != "" {
				in.ds.errorf(w[o.name], o.name, msg)
			}
		}
		if b.Insecure {
			in.ds.errorf(w["bridge_insecure"], "bridge_insecure", msg)
		}
	}
}

// sameOnEveryListener: mochi has one Maximum QoS and one Topic Alias
// Maximum for the whole broker, so listeners that ask for different ones
// are refused rather than given a value they did not ask for.
func (in *interp) sameOnEveryListener() {
	c := in.cfg
	for _, o := range []struct {
		name string
		get  func(*Listener) int
		dst  *int
	}{
		{"max_qos", func(l *Listener) int { return l.MaxQoS }, &c.MaxQoS},
		{"max_topic_alias", func(l *Listener) int { return l.MaxTopicAlias }, &c.MaxTopicAlias},
	} {
		var first *Listener
		for _, l := range c.Listeners {
			l := l
			if first == nil {
				first, *o.dst = &l, o.get(&l)
				continue
			}
			if v := o.get(&l); v != *o.dst {
				at := l.Where[o.name]
				if _, set := l.Where[o.name]; !set {
					at = l.Pos
				}
				in.ds.errorf(at, o.name, fmt.Sprintf("cannot apply on this box: %d here and %d on the listener at %s; this broker has one %s for all listeners, so give every listener the same value", v, *o.dst, first.Pos, o.name))
			}
		}
	}
}
