package auth

import "strings"

// matchTopic reports whether filter matches the topic name by MQTT rules:
// "+" is one level, "#" is the rest including the parent ("a/#" matches "a"),
// and a wildcard in the first level never matches a topic starting with "$".
func matchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
		return false
	}
	f := strings.Split(filter, "/")
	t := strings.Split(topic, "/")
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(t) {
			return false
		}
		if fl != "+" && fl != t[i] {
			return false
		}
	}
	return len(f) == len(t)
}

// covers reports whether every topic that filter sub matches is also matched
// by rule: the test a subscription filter must pass against a read rule.
// "a/#" covers "a/+/b" and "a"; "a/+" does not cover "a/#".
func covers(rule, sub string) bool {
	if strings.HasPrefix(sub, "$") && !strings.HasPrefix(rule, "$") {
		return false
	}
	r := strings.Split(rule, "/")
	s := strings.Split(sub, "/")
	for i, rl := range r {
		if rl == "#" {
			return true
		}
		if i >= len(s) {
			return false
		}
		sl := s[i]
		switch {
		case sl == "#":
			return false
		case rl == "+":
			continue
		case sl == "+" || rl != sl:
			return false
		}
	}
	return len(r) == len(s)
}

// checkFilter says what is wrong with a topic filter, or returns "" when it is
// a valid subscription filter: "#" only as a whole last level, "+" only as a
// whole level, not empty, at most 65535 bytes.
func checkFilter(filter string) string {
	if filter == "" {
		return "empty topic"
	}
	if len(filter) > 65535 {
		return "topic longer than 65535 bytes"
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return "'#' must be a whole level at the end of the topic"
		}
		if strings.Contains(l, "+") && l != "+" {
			return "'+' must be a whole level"
		}
	}
	return ""
}

// isFilter reports whether a topic handed to an ACL check on the reading side
// is a subscription filter (wildcards or a shared subscription) rather than
// the name of a topic being delivered.
func isFilter(topic string) bool {
	return strings.ContainsAny(topic, "+#") || strings.HasPrefix(topic, "$share/")
}

// unshare strips "$share/GROUP/" from a shared subscription filter; ok is
// false when the filter is malformed.
func unshare(filter string) (inner string, ok bool) {
	rest, found := strings.CutPrefix(filter, "$share/")
	if !found {
		return filter, true
	}
	group, inner, found := strings.Cut(rest, "/")
	if !found || group == "" || inner == "" || strings.ContainsAny(group, "+#") {
		return "", false
	}
	return inner, true
}
