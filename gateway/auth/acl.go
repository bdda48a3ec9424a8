package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Access is what a client wants to do with a topic.
type Access uint8

const (
	// Read is receiving a message published on a topic name.
	Read Access = 1 << iota
	// Write is publishing to a topic name (a will counts as one).
	Write
	// Subscribe is subscribing with a topic filter, possibly shared
	// ("$share/GROUP/FILTER", judged as FILTER).
	Subscribe

	// ReadWrite is what "topic T" and "topic readwrite T" grant.
	ReadWrite = Read | Write
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	case Subscribe:
		return "subscribe"
	case 0:
		return "deny"
	}
	return fmt.Sprintf("access(%d)", uint8(a))
}

// rule is one topic or pattern line; access 0 is deny.
type rule struct {
	topic  string
	access Access
	line   int
	subst  bool // pattern with %c or %u
	needsU bool // pattern with %u: skipped for clients without a user name
}

// ACL is a loaded acl_file.
//
// How it judges (Mosquitto 2's default ACL check, with the differences
// marked):
//   - A client with a user name gets the topic lines of its "user" blocks
//     (all blocks of that name); a client without one gets the topic lines
//     written before the first "user" line. Pattern lines apply to everyone,
//     wherever they stand, with %c replaced by the client id and %u by the
//     user name; a pattern using %u never applies to a client without one.
//   - What no line grants is refused.
//   - deny wins: a deny line that matches refuses, whatever else grants.
//     (Mosquitto lets a user's topic grant win over a pattern deny.)
//   - A client whose id or user name contains '+' or '#' gets nothing from
//     patterns (Mosquitto refuses it outright once patterns exist); pattern
//     denies still apply to it.
//   - ACL topics may hold wildcards; they match topic names by MQTT rules,
//     and a rule starting with a wildcard never matches a "$" topic, so
//     $SYS needs its own "topic read $SYS/#".
//   - Writes to $SYS are refused except $SYS/broker/connection/+/state
//     (bridge state); publishing to $share/... is refused. This holds even
//     without an acl_file, as in Mosquitto.
//   - Subscribe (Mosquitto 2.0 does not check subscriptions at all): a
//     filter is refused when a deny line covers it, and allowed when a read
//     or readwrite line covers it, where a rule covers a filter if every
//     topic name the filter matches is matched by the rule: "a/#" covers
//     "a/+/b", "a/+" does not cover "a/#". A filter a deny only partly
//     overlaps is allowed; the messages the deny covers are withheld at
//     delivery, which is judged as Read per message. Shared subscriptions
//     are judged on the filter after "$share/GROUP/".
type ACL struct {
	path     string
	anon     []rule
	users    map[string][]rule
	patterns []rule
}

// LoadACLFile reads a Mosquitto acl_file. Lines are "user NAME",
// "topic [read|write|readwrite|deny] TOPIC" and
// "pattern [read|write|readwrite|deny] TOPIC"; blank lines and lines starting
// with '#' are ignored. Any other line is an error "FILE:LINE: reason".
func LoadACLFile(path string) (*ACL, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("acl_file: %w", err)
	}
	return parseACL(path, data)
}

// ACLError is a line of an acl_file the broker cannot read.
type ACLError struct {
	File   string
	Line   int
	Reason string
}

func (e *ACLError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// CheckACL reads ACL text as the broker reads an acl_file named name; the
// error, when not nil, is an *ACLError.
func CheckACL(name string, data []byte) (*ACL, error) { return parseACL(name, data) }

func parseACL(path string, data []byte) (*ACL, error) {
	a := &ACL{path: path, users: make(map[string][]rule)}
	user, inUser := "", false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keyword, rest := cutWord(line)
		switch keyword {
		case "user":
			if rest == "" {
				return nil, &ACLError{path, n, "user: missing user name"}
			}
			user, inUser = rest, true
			if _, ok := a.users[user]; !ok {
				a.users[user] = nil
			}
		case "topic", "pattern":
			r, err := parseRule(keyword, rest)
			if err != nil {
				return nil, &ACLError{path, n, err.Error()}
			}
			r.line = n
			switch {
			case keyword == "pattern":
				a.patterns = append(a.patterns, r)
			case inUser:
				a.users[user] = append(a.users[user], r)
			default:
				a.anon = append(a.anon, r)
			}
		default:
			return nil, &ACLError{path, n, fmt.Sprintf("unknown keyword %q (want user, topic or pattern)", keyword)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ACLError{path, n + 1, err.Error()}
	}
	return a, nil
}

// cutWord splits off the first blank-separated word; rest is trimmed.
func cutWord(s string) (word, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

func parseRule(keyword, rest string) (rule, error) {
	r := rule{access: ReadWrite}
	word, after := cutWord(rest)
	switch word {
	case "read":
		r.access, rest = Read, after
	case "write":
		r.access, rest = Write, after
	case "readwrite":
		r.access, rest = ReadWrite, after
	case "deny":
		r.access, rest = 0, after
	}
	if rest == "" {
		return r, fmt.Errorf("%s: missing topic", keyword)
	}
	r.topic = rest
	check := rest
	if keyword == "pattern" {
		r.needsU = strings.Contains(rest, "%u")
		r.subst = r.needsU || strings.Contains(rest, "%c")
		// Judge the shape with the substitutions made, as a client will see it.
		check = expand(rest, "c", "u")
	}
	if why := checkFilter(check); why != "" {
		return r, fmt.Errorf("%s %q: %s", keyword, rest, why)
	}
	return r, nil
}

// dollarAllowed applies Mosquitto's fixed rules for "$" topics, which hold
// with or without an acl_file.
func dollarAllowed(topic string, access Access) bool {
	switch {
	case !strings.HasPrefix(topic, "$"):
		return true
	case strings.HasPrefix(topic, "$SYS"):
		if access == Write {
			return matchTopic("$SYS/broker/connection/+/state", topic)
		}
		return true
	case strings.HasPrefix(topic, "$share"):
		return access == Subscribe
	}
	return true
}

// Allowed reports whether the client (user name "" for a client without
// one) may have access to topic; for Subscribe, topic is the filter. A nil
// *ACL is Mosquitto without an acl_file: everything is allowed but the fixed
// "$" rules.
func (a *ACL) Allowed(username, clientID, topic string, access Access) bool {
	if !dollarAllowed(topic, access) {
		return false
	}
	need := access
	test := matchTopic
	if access == Subscribe {
		inner, ok := unshare(topic)
		if !ok || checkFilter(inner) != "" {
			return false
		}
		topic, need, test = inner, Read, covers
	} else if access != Read && access != Write {
		return false
	}
	if a == nil {
		return true
	}

	own := a.anon
	if username != "" {
		own = a.users[username]
	}
	// An id or name with wildcards would widen a pattern into other
	// clients' topics, so such a client gets no grant from patterns.
	grantPatterns := !strings.ContainsAny(username, "+#") && !strings.ContainsAny(clientID, "+#")
	expandRule := func(r rule) (string, bool) {
		if !r.subst {
			return r.topic, true
		}
		if r.needsU && username == "" {
			return "", false
		}
		return expand(r.topic, clientID, username), true
	}

	for _, r := range own {
		if r.access == 0 && test(r.topic, topic) {
			return false
		}
	}
	for _, r := range a.patterns {
		if r.access != 0 {
			continue
		}
		if t, ok := expandRule(r); ok && test(t, topic) {
			return false
		}
	}
	for _, r := range own {
		if r.access&need != 0 && test(r.topic, topic) {
			return true
		}
	}
	if !grantPatterns {
		return false
	}
	for _, r := range a.patterns {
		if r.access&need == 0 {
			continue
		}
		if t, ok := expandRule(r); ok && test(t, topic) {
			return true
		}
	}
	return false
}
