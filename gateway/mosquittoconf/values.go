package mosquittoconf

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

func unquoteEmpty(s string) string {
	if s == `""` {
		return ""
	}
	return s
}

// checkFilter returns why f is not a valid MQTT topic filter, or "".
func checkFilter(f string) string {
	if len(f) > 65535 {
		return "longer than 65535 bytes"
	}
	levels := strings.Split(f, "/")
	for i, lv := range levels {
		if strings.Contains(lv, "+") && lv != "+" {
			return "+ must be a whole level"
		}
		if strings.Contains(lv, "#") && (lv != "#" || i != len(levels)-1) {
			return "# must be the whole last level"
		}
	}
	return ""
}

// parseBridgeAddress reads HOST[:PORT], [IPV6][:PORT] or, as Mosquitto,
// an IPv6 address whose last colon separates the port.
func parseBridgeAddress(s string) (BridgeAddress, string) {
	host, portStr, hasPort := s, "", false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return BridgeAddress{}, fmt.Sprintf("invalid address %q: missing ]", s)
		}
		host = s[1:end]
		if after := s[end+1:]; after != "" {
			if after[0] != ':' {
				return BridgeAddress{}, fmt.Sprintf("invalid address %q: want [HOST]:PORT", s)
			}
			portStr, hasPort = after[1:], true
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, portStr, hasPort = s[:i], s[i+1:], true
	}
	a := BridgeAddress{Host: host, Port: 1883}
	if hasPort {
		n, err := strconv.Atoi(portStr)
		if err != nil {
			return a, fmt.Sprintf("invalid port %q in address %q", portStr, s)
		}
		if n < 1 || n > 65535 {
			return a, fmt.Sprintf("port %d out of range 1-65535 in address %q", n, s)
		}
		a.Port = n
	}
	if host == "" {
		return a, fmt.Sprintf("missing host in address %q", s)
	}
	if !validHost(host) {
		return a, fmt.Sprintf("invalid host %q in address %q", host, s)
	}
	return a, ""
}

// validHost accepts an IP address or a DNS name (checked for form only:
// a name that does not resolve yet is not a config error).
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Value readers. Each reports its own error and returns ok=false.

func (in *interp) extra(pos Pos, l *Line, w []string) {
	in.ds.warnf(pos, l.Option, fmt.Sprintf("extra text %q ignored", strings.Join(w, " ")))
}

// word reads the one word an option takes.
func (in *interp) word(pos Pos, l *Line) (string, bool) {
	w := l.Words()
	if len(w) == 0 {
		in.ds.errorf(pos, l.Option, "missing value")
		return "", false
	}
	if len(w) > 1 {
		in.extra(pos, l, w[1:])
	}
	return w[0], true
}

// rest reads a value that is the rest of the line (paths, names,
// passwords), as Mosquitto does.
func (in *interp) rest(pos Pos, l *Line) (string, bool) {
	if l.Rest == "" {
		in.ds.errorf(pos, l.Option, "missing value")
		return "", false
	}
	return l.Rest, true
}

func (in *interp) boolean(pos Pos, l *Line) (bool, bool) {
	v, ok := in.word(pos, l)
	if !ok {
		return false, false
	}
	switch v {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want true or false", v))
	return false, false
}

func (in *interp) integer(pos Pos, l *Line, lo, hi int) (int, bool) {
	v, ok := in.word(pos, l)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
		in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid number %q", v))
		return 0, false
	}
	if n < lo || n > hi {
		switch {
		case lo == math.MinInt32:
			in.ds.errorf(pos, l.Option, fmt.Sprintf("%d is too big: want %d or less", n, hi))
		case hi == math.MaxInt32:
			in.ds.errorf(pos, l.Option, fmt.Sprintf("%d is too small: want %d or more", n, lo))
		default:
			in.ds.errorf(pos, l.Option, fmt.Sprintf("%d out of range %d-%d", n, lo, hi))
		}
		return 0, false
	}
	return n, true
}

func (in *interp) setBool(pos Pos, l *Line, dst *bool) {
	if v, ok := in.boolean(pos, l); ok {
		*dst = v
	}
}

func (in *interp) setInt(pos Pos, l *Line, lo, hi int, dst *int) {
	if v, ok := in.integer(pos, l, lo, hi); ok {
		*dst = v
	}
}

func (in *interp) atLeastOne(pos Pos, l *Line, dst *int) {
	if n, ok := in.integer(pos, l, math.MinInt32, math.MaxInt32); ok {
		if n < 1 {
			in.ds.warnf(pos, l.Option, fmt.Sprintf("%d is too low, using 1", n))
			n = 1
		}
		*dst = n
	}
}

// setString sets a rest-of-line value that, as in Mosquitto, may be given
// only once in its scope.
func (in *interp) setString(pos Pos, l *Line, owner any, key string, dst *string) bool {
	v, ok := in.rest(pos, l)
	if !ok {
		return false
	}
	k := dupKey{owner, key}
	if first, dup := in.strSet[k]; dup {
		in.ds.errorf(pos, l.Option, fmt.Sprintf("set twice (first at %s)", first))
		return false
	}
	in.strSet[k] = pos
	*dst = v
	return true
}

// setFile is setString for a file (or, with dir, a folder) that must
// exist when the config is checked.
func (in *interp) setFile(pos Pos, l *Line, owner any, key string, dst *string, dir bool) {
	if in.setString(pos, l, owner, key, dst) && !in.refused {
		in.refs = append(in.refs, fileRef{option: l.Option, path: *dst, pos: pos, dir: dir})
	}
}

func (in *interp) tlsVersion(pos Pos, l *Line, dst *string) {
	if v, ok := in.word(pos, l); ok {
		if v != "tlsv1.3" && v != "tlsv1.2" && v != "tlsv1.1" {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("invalid value %q: want tlsv1.3, tlsv1.2 or tlsv1.1", v))
			return
		}
		*dst = v
	}
}
