package webui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/homebox/gateway/webui/api"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/webui/confflow"
)

func (h *handlers) bridgeView(f *confflow.Flow, b mosquittoconf.Bridge, live map[string]sysstats.Bridge) api.Bridge {
	v := api.Bridge{
		Name: b.Name, Line: b.Pos.Line, Addresses: []api.BridgeAddress{}, Topics: []api.BridgeTopic{},
		RemoteUsername: b.RemoteUsername, HasPassword: b.RemotePassword != "",
		RemoteClientID: b.RemoteClientID, LocalClientID: b.LocalClientID, ProtocolVersion: b.ProtocolVersion,
		CleanSession: b.CleanSession, KeepaliveInterval: b.KeepaliveInterval, Notifications: b.Notifications,
		TryPrivate: b.TryPrivate, StartType: b.StartType, CAFile: b.CAFile, Insecure: b.Insecure,
	}
	if b.Pos.File != filepath.Base(f.ConfPath()) {
		v.File = b.Pos.File
	}
	for _, a := range b.Addresses {
		v.Addresses = append(v.Addresses, api.BridgeAddress{Host: a.Host, Port: a.Port})
	}
	for _, t := range b.Topics {
		v.Topics = append(v.Topics, api.BridgeTopic{Pattern: t.Pattern, Direction: t.Direction, QoS: int(t.QoS),
			LocalPrefix: t.LocalPrefix, RemotePrefix: t.RemotePrefix})
	}
	if con := h.console(); con != nil && con.CertsDir != "" && b.CAFile != "" {
		if filepath.Dir(f.Resolve(b.CAFile)) == filepath.Clean(con.CertsDir) {
			v.CACert = filepath.Base(b.CAFile)
		}
	}
	if l, ok := live[b.Name]; ok {
		live := api.BridgeLive(l)
		v.Live = &live
	}
	return v
}

func (h *handlers) bridges(c echo.Context) error {
	f, cfg, err := h.flowAndConf()
	if err != nil {
		return err
	}
	var live map[string]sysstats.Bridge
	if con := h.console(); con != nil && con.Stats != nil {
		live = con.Stats.Snapshot().Bridges
	}
	out := []api.Bridge{}
	for _, b := range cfg.Bridges {
		out = append(out, h.bridgeView(f, b, live))
	}
	return c.JSON(http.StatusOK, out)
}

func readBridgeInput(c echo.Context) (api.BridgeInput, error) {
	var in api.BridgeInput
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, newError(http.StatusBadRequest, "body: a bridge as JSON: "+err.Error())
	}
	return in, nil
}

func (h *handlers) addBridge(c echo.Context) error {
	in, err := readBridgeInput(c)
	if err != nil {
		return err
	}
	if in.Name == nil || *in.Name == "" {
		return newError(http.StatusBadRequest, "name: required", api.LineError{Field: "name", Message: "required"})
	}
	return h.changeBridge(c, *in.Name, &in, true, http.StatusCreated)
}

func (h *handlers) putBridge(c echo.Context) error {
	in, err := readBridgeInput(c)
	if err != nil {
		return err
	}
	name := c.Param("name")
	if in.Name != nil && *in.Name != name {
		return newError(http.StatusBadRequest, "name: a bridge cannot be renamed; add a new one and delete this one",
			api.LineError{Field: "name", Message: "differs from the bridge in the path"})
	}
	return h.changeBridge(c, name, &in, false, http.StatusOK)
}

func (h *handlers) deleteBridge(c echo.Context) error {
	return h.changeBridge(c, c.Param("name"), nil, false, http.StatusOK)
}

// changeBridge patches the conf's `connection name` block: added (create),
// changed (in != nil) or removed (in == nil), then runs the flow.
func (h *handlers) changeBridge(c echo.Context, name string, in *api.BridgeInput, create bool, okCode int) error {
	f, err := h.flow()
	if err != nil {
		return err
	}
	con := h.console()
	res, err := f.Run(c.Request().Context(), "bridge", func() ([]confflow.File, error) {
		data, cfg, err := currentConf(f)
		if err != nil {
			return nil, err
		}
		var cur *mosquittoconf.Bridge
		for i := range cfg.Bridges {
			if cfg.Bridges[i].Name == name {
				cur = &cfg.Bridges[i]
			}
		}
		switch {
		case create && cur != nil:
			return nil, newError(http.StatusConflict, fmt.Sprintf("a bridge named %q is already there", name),
				api.LineError{Field: "name", Message: "already there"})
		case !create && cur == nil:
			return nil, newError(http.StatusNotFound, fmt.Sprintf("no bridge named %q", name))
		case cur != nil && cur.Pos.File != filepath.Base(f.ConfPath()):
			return nil, newError(http.StatusConflict, fmt.Sprintf("bridge %q is written in %s (an included file): change it there", name, cur.Pos.File))
		}
		doc := mosquittoconf.ParseDocument(filepath.Base(f.ConfPath()), data)
		if in == nil {
			if err := doc.RemoveBridge(name); err != nil {
				return nil, newError(http.StatusNotFound, err.Error())
			}
		} else {
			b := mosquittoconf.NewBridge(name)
			if cur != nil {
				b = *cur
			}
			certs := ""
			if con != nil {
				certs = con.CertsDir
			}
			if errs := applyBridge(&b, in, certs); len(errs) > 0 {
				return nil, newError(http.StatusBadRequest, fmt.Sprintf("bridge %q: %s: %s", name, errs[0].Field, errs[0].Message), errs...)
			}
			if err := doc.UpsertBridge(b); err != nil {
				return nil, newError(http.StatusBadRequest, err.Error(), api.LineError{Message: err.Error()})
			}
		}
		return []confflow.File{{Path: f.ConfPath(), Kind: confflow.KindConf, Data: doc.Bytes()}}, nil
	})
	return flowAnswer(c, okCode, res, err)
}

// validBridgeName: 1 to 64 of A-Z a-z 0-9 _ . -
func validBridgeName(s string) bool { return asciiWord(s, 1, 64, "_.-") }

// validHost: 1 to 253 of A-Z a-z 0-9 . : _ % - (names, IPv4, IPv6 with a zone)
func validHost(s string) bool { return asciiWord(s, 1, 253, ".:_%-") }

// asciiWord reports whether s is min to max bytes of ASCII letters, digits
// and the bytes of extra. (These checks were regexps; bounded repetitions
// such as {1,253} compile to large programs, ~130 KiB of heap kept from
// package init on in every gatewayd process, the broker's included.)
func asciiWord(s string, min, max int, extra string) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// applyBridge sets the fields given in in on b, checking each; the
// mistakes name their fields.
func applyBridge(b *mosquittoconf.Bridge, in *api.BridgeInput, certsDir string) []api.LineError {
	var errs []api.LineError
	bad := func(field, format string, args ...any) {
		errs = append(errs, api.LineError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if !validBridgeName(b.Name) {
		bad("name", "use 1 to 64 letters, digits, '-', '_' or '.'")
	}
	oneLine := func(field string, v *string, dst *string) {
		if v == nil {
			return
		}
		if strings.ContainsAny(*v, "\r\n\x00") || strings.TrimSpace(*v) != *v {
			bad(field, "no line breaks, and no blanks at either end")
			return
		}
		*dst = *v
	}
	oneOf := func(field string, v *string, dst *string, allowed ...string) {
		if v == nil {
			return
		}
		for _, a := range allowed {
			if *v == a {
				*dst = *v
				return
			}
		}
		bad(field, "%q: one of %s", *v, strings.Join(allowed, ", "))
	}
	if in.Addresses != nil {
		if len(*in.Addresses) == 0 {
			bad("addresses", "give at least one host and port")
		}
		var as []mosquittoconf.BridgeAddress
		for i, a := range *in.Addresses {
			if !validHost(a.Host) {
				bad(fmt.Sprintf("addresses[%d].host", i), "%q is not a host name or address", a.Host)
			}
			if a.Port < 1 || a.Port > 65535 {
				bad(fmt.Sprintf("addresses[%d].port", i), "%d: give a port from 1 to 65535", a.Port)
			}
			as = append(as, mosquittoconf.BridgeAddress{Host: a.Host, Port: a.Port})
		}
		b.Addresses = as
	} else if len(b.Addresses) == 0 {
		bad("addresses", "give at least one host and port")
	}
	if in.Topics != nil {
		if len(*in.Topics) == 0 {
			bad("topics", "give at least one topic row")
		}
		var ts []mosquittoconf.BridgeTopic
		for i, t := range *in.Topics {
			field := fmt.Sprintf("topics[%d]", i)
			if t.Pattern == "" || strings.ContainsAny(t.Pattern, " \t\r\n\x00") {
				bad(field+".pattern", "%q: a topic pattern without blanks, e.g. sensors/#", t.Pattern)
			}
			dir := t.Direction
			if dir == "" {
				dir = "out"
			}
			if dir != "in" && dir != "out" && dir != "both" {
				bad(field+".direction", "%q: one of in, out, both", t.Direction)
			}
			if t.QoS < 0 || t.QoS > 2 {
				bad(field+".qos", "%d: 0, 1 or 2", t.QoS)
			}
			for _, p := range []struct{ f, v string }{{"local_prefix", t.LocalPrefix}, {"remote_prefix", t.RemotePrefix}} {
				if strings.ContainsAny(p.v, " \t\r\n\x00#+") {
					bad(field+"."+p.f, "%q: no blanks and no wildcards", p.v)
				}
			}
			ts = append(ts, mosquittoconf.BridgeTopic{Pattern: t.Pattern, Direction: dir, QoS: byte(max(0, min(2, t.QoS))),
				LocalPrefix: t.LocalPrefix, RemotePrefix: t.RemotePrefix})
		}
		b.Topics = ts
	} else if len(b.Topics) == 0 {
		bad("topics", "give at least one topic row")
	}
	oneLine("remote_username", in.RemoteUsername, &b.RemoteUsername)
	oneLine("remote_password", in.RemotePassword, &b.RemotePassword)
	oneLine("remote_clientid", in.RemoteClientID, &b.RemoteClientID)
	oneLine("local_clientid", in.LocalClientID, &b.LocalClientID)
	oneOf("protocol_version", in.ProtocolVersion, &b.ProtocolVersion, "mqttv31", "mqttv311", "mqttv50")
	oneOf("start_type", in.StartType, &b.StartType, "automatic", "lazy", "once")
	if in.KeepaliveInterval != nil {
		if k := *in.KeepaliveInterval; k < 5 || k > 65535 {
			bad("keepalive_interval", "%d: from 5 to 65535 seconds", k)
		} else {
			b.KeepaliveInterval = k
		}
	}
	set := func(v *bool, dst *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(in.CleanSession, &b.CleanSession)
	set(in.Notifications, &b.Notifications)
	set(in.TryPrivate, &b.TryPrivate)
	set(in.Insecure, &b.Insecure)
	if in.CACert != nil {
		switch name := *in.CACert; {
		case name == "":
			b.CAFile = ""
		case certsDir == "":
			bad("ca_cert", "certificate uploads are not running")
		case !validCertName(name):
			bad("ca_cert", "%q: the name of an uploaded certificate", name)
		default:
			p := filepath.Join(certsDir, name)
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				bad("ca_cert", "%q: no such uploaded certificate; upload it first", name)
			} else {
				b.CAFile = p
			}
		}
	}
	return errs
}
