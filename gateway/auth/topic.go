package auth

import "strings"

// matchTopic reports whether filter matches the topic name by MQTT rules:
// "+" is one level, "#" is the rest including the parent ("a/#" matches "a"),
// and a wildcard in the first level never matches a topic starting with "$".
// It walks both strings level by level without allocating: it runs for
// every publish and every delivery.
func matchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
		return false
	}
	topicDone := false
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		if topicDone {
			return false
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore {
			return !tmore
		}
		filter = frest
		if tmore {
			topic = trest
		} else {
			topicDone = true
		}
	}
}

// covers reports whether every topic that filter sub matches is also matched
// by rule: the test a subscription filter must pass against a read rule.
// "a/#" covers "a/+/b" and "a"; "a/+" does not cover "a/#".
func covers(rule, sub string) bool {
	if strings.HasPrefix(sub, "$") && !strings.HasPrefix(rule, "$") {
		return false
	}
	subDone := false
	for {
		rl, rrest, rmore := strings.Cut(rule, "/")
		if rl == "#" {
			return true
		}
		if subDone {
			return false
		}
		sl, srest, smore := strings.Cut(sub, "/")
		switch {
		case sl == "#":
			return false
		case rl == "+":
		case sl == "+" || rl != sl:
			return false
		}
		if !rmore {
			return !smore
		}
		rule = rrest
		if smore {
			sub = srest
		} else {
			subDone = true
		}
	}
}

// expand replaces %c by the client id and %u by the user name in one pass,
// so an id that itself contains "%u" stays as it is.
func expand(pattern, clientID, username string) string {
	var b strings.Builder
	b.Grow(len(pattern) + len(clientID) + len(username))
	for {
		i := strings.IndexByte(pattern, '%')
		if i < 0 || i == len(pattern)-1 {
			b.WriteString(pattern)
			return b.String()
		}
		b.WriteString(pattern[:i])
		switch pattern[i+1] {
		case 'c':
			b.WriteString(clientID)
		case 'u':
			b.WriteString(username)
		default:
			b.WriteString(pattern[i : i+2])
		}
		pattern = pattern[i+2:]
	}
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
