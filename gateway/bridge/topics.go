package bridge

import (
	"fmt"
	"strings"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// route is one `topic` line with its full local and remote filters, as
// Mosquitto builds them: prefix + pattern, or the prefix alone when the
// pattern is "".
type route struct {
	in, out      bool
	qos          byte
	local        string // local filter
	remote       string // remote filter
	localPrefix  string
	remotePrefix string
	where        string
}

func newRoute(t mosquittoconf.BridgeTopic) (route, error) {
	where := fmt.Sprintf("%s:%d", t.Pos.File, t.Pos.Line)
	r := route{qos: t.QoS, localPrefix: t.LocalPrefix, remotePrefix: t.RemotePrefix, where: where}
	switch t.Direction {
	case "", "out":
		r.out = true
	case "in":
		r.in = true
	case "both":
		r.in, r.out = true, true
	default:
		return r, fmt.Errorf("%s: topic %q: direction %q is not out, in or both", where, t.Pattern, t.Direction)
	}
	if t.QoS > 2 {
		return r, fmt.Errorf("%s: topic %q: qos %d is not 0, 1 or 2", where, t.Pattern, t.QoS)
	}
	if t.Pattern == "" && t.LocalPrefix == "" && t.RemotePrefix == "" {
		return r, fmt.Errorf("%s: topic: an empty pattern needs a local or remote prefix", where)
	}
	for _, p := range []string{t.LocalPrefix, t.RemotePrefix} {
		if strings.ContainsAny(p, "+#") {
			return r, fmt.Errorf("%s: topic %q: prefix %q must not contain wildcards", where, t.Pattern, p)
		}
	}
	r.local = t.LocalPrefix + t.Pattern
	r.remote = t.RemotePrefix + t.Pattern
	if !validFilter(r.local) || !validFilter(r.remote) {
		return r, fmt.Errorf("%s: topic %q: %q / %q is not a valid topic filter", where, t.Pattern, r.local, r.remote)
	}
	return r, nil
}

// toRemote maps a local topic the route matched to its remote topic.
func (r route) toRemote(topic string) string {
	return r.remotePrefix + strings.TrimPrefix(topic, r.localPrefix)
}

// toLocal maps a remote topic the route matched to its local topic.
func (r route) toLocal(topic string) string {
	return r.localPrefix + strings.TrimPrefix(topic, r.remotePrefix)
}

// firstIn is the first `in` route whose remote filter matches topic
// (Mosquitto remaps with the first match).
func firstIn(routes []route, topic string) (route, bool) {
	for _, r := range routes {
		if r.in && matches(r.remote, topic) {
			return r, true
		}
	}
	return route{}, false
}

// firstOut is the index of the first `out` route matching a local topic.
func firstOut(routes []route, topic string) int {
	for i, r := range routes {
		if r.out && matches(r.local, topic) {
			return i
		}
	}
	return -1
}

// validFilter checks the wildcard rules of a subscription filter.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if l == "#" && i != len(levels)-1 {
			return false
		}
		if len(l) > 1 && strings.ContainsAny(l, "+#") {
			return false
		}
	}
	return true
}

// matches reports whether topic matches filter under MQTT's rules, with
// "$" topics not matched by a leading wildcard.
func matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" too.
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}
