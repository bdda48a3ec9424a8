package auth

import (
	"strings"
	"testing"
)

func TestMatchTopic(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"a/+", "a/", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"#", "/a", true},
		{"+/+", "/a", true},
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"$SYS/+/uptime", "$SYS/broker/uptime", true},
		{"a/+/c", "a//c", true},
		{"A/b", "a/b", false},
	}
	for _, c := range cases {
		if got := matchTopic(c.filter, c.topic); got != c.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestCovers(t *testing.T) {
	cases := []struct {
		rule, sub string
		want      bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+/c", true},
		{"a/#", "+/b", false},
		{"#", "#", true},
		{"#", "+/x", true},
		{"+/x", "+/x", true},
		{"+/x", "#", false},
		{"a/b", "a/+", false},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/+/#", false},
		{"#", "$SYS/#", false},
		{"+/#", "$SYS/broker", false},
		{"$SYS/#", "$SYS/broker/+", true},
		{"$SYS/broker/#", "$SYS/#", false},
	}
	for _, c := range cases {
		if got := covers(c.rule, c.sub); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.rule, c.sub, got, c.want)
		}
	}
}

const aclText = `# anonymous clients
topic read public/#
topic write public/in
topic deny public/secret/#

user alice
topic readwrite alice/#
topic read sensors/+/temp
topic write cmd/light
topic deny alice/private/#

user bob
topic sensors/#
topic read $SYS/broker/#

# patterns apply to everyone, even written after a user block
pattern readwrite devices/%c/#
pattern read users/%u/inbox/#
pattern write out/%u/%c
pattern deny devices/+/locked
pattern deny forbidden/#

user alice
topic read extra/alice
`

func TestACLJudgement(t *testing.T) {
	acl, err := parseACL("acl", []byte(aclText))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, id, topic string
		access          Access
		want            bool
	}{
		// anonymous: only the lines before the first user line
		{"", "c1", "public/news", Read, true},
		{"", "c1", "public/news", Write, false},
		{"", "c1", "public/in", Write, true},
		{"", "c1", "public/secret/x", Read, false},
		{"", "c1", "alice/x", Read, false},
		{"", "c1", "sensors/k/temp", Read, false},
		// a user's blocks, merged; not the anonymous lines
		{"alice", "a1", "alice/notes", Write, true},
		{"alice", "a1", "alice/notes", Read, true},
		{"alice", "a1", "alice", Read, true},
		{"alice", "a1", "alice/private/diary", Read, false},
		{"alice", "a1", "sensors/kitchen/temp", Read, true},
		{"alice", "a1", "sensors/kitchen/temp", Write, false},
		{"alice", "a1", "sensors/kitchen/hum", Read, false},
		{"alice", "a1", "cmd/light", Write, true},
		{"alice", "a1", "cmd/light", Read, false},
		{"alice", "a1", "extra/alice", Read, true},
		{"alice", "a1", "public/news", Read, false},
		// bare "topic T" is readwrite
		{"bob", "b1", "sensors/x/y", Write, true},
		{"bob", "b1", "sensors/x/y", Read, true},
		// unknown user: patterns only
		{"carol", "k1", "sensors/x", Read, false},
		{"carol", "k1", "devices/k1/state", Write, true},
		// %c and %u
		{"alice", "a1", "devices/a1/state", Write, true},
		{"alice", "a1", "devices/a2/state", Write, false},
		{"", "anon7", "devices/anon7/state", Read, true},
		{"alice", "a1", "users/alice/inbox/1", Read, true},
		{"alice", "a1", "users/bob/inbox/1", Read, false},
		{"", "alice", "users/alice/inbox/1", Read, false}, // %u never applies without a user name
		{"", "alice", "users//inbox/1", Read, false},
		{"alice", "a1", "out/alice/a1", Write, true},
		{"alice", "a1", "out/alice/a2", Write, false},
		// deny wins, patterns included
		{"alice", "locked", "devices/locked/locked", Write, false},
		{"bob", "b1", "forbidden/x", Read, false},
		// wildcards in ids or names get nothing from patterns
		{"alice", "a+", "devices/a+/x", Write, false},
		{"ali#", "a1", "users/ali#/inbox/x", Read, false},
		{"alice", "#", "alice/notes", Write, true}, // own topic lines still apply
		// $ topics
		{"bob", "b1", "$SYS/broker/uptime", Read, true},
		{"alice", "a1", "$SYS/broker/uptime", Read, false},
		{"bob", "b1", "$SYS/broker/uptime", Write, false},
		{"bob", "b1", "$share/g/sensors/x", Write, false},
		// subscriptions: covered by a read rule, not by a partial overlap
		{"alice", "a1", "sensors/+/temp", Subscribe, true},
		{"alice", "a1", "sensors/kitchen/temp", Subscribe, true},
		{"alice", "a1", "sensors/#", Subscribe, false},
		{"alice", "a1", "sensors/+/+", Subscribe, false},
		{"alice", "a1", "alice/#", Subscribe, true},
		{"alice", "a1", "alice/private/#", Subscribe, false}, // a deny covers it
		{"alice", "a1", "cmd/light", Subscribe, false},       // write only
		{"alice", "a1", "#", Subscribe, false},
		{"alice", "a1", "$share/grp/sensors/+/temp", Subscribe, true},
		{"alice", "a1", "$share/grp/sensors/#", Subscribe, false},
		{"alice", "a1", "$share/grp", Subscribe, false},
		{"alice", "a1", "a/#/b", Subscribe, false},
		{"bob", "b1", "$SYS/broker/#", Subscribe, true},
		{"bob", "b1", "$SYS/#", Subscribe, false},
		{"bob", "b1", "#", Subscribe, false},
		{"", "c1", "public/#", Subscribe, true}, // deny overlaps only part of it
		{"", "c1", "public/secret/+", Subscribe, false},
		{"alice", "a1", "devices/a1/#", Subscribe, true},
		{"alice", "a1", "devices/+/#", Subscribe, false},
	}
	for _, c := range cases {
		if got := acl.Allowed(c.user, c.id, c.topic, c.access); got != c.want {
			t.Errorf("Allowed(user %q, id %q, %q, %v) = %v, want %v", c.user, c.id, c.topic, c.access, got, c.want)
		}
	}
}

func TestNoACLAllowsAllButDollarRules(t *testing.T) {
	var acl *ACL
	cases := []struct {
		topic  string
		access Access
		want   bool
	}{
		{"a/b", Write, true},
		{"a/b", Read, true},
		{"#", Subscribe, true},
		{"$SYS/broker/uptime", Read, true},
		{"$SYS/broker/uptime", Write, false},
		{"$SYS/broker/connection/bridge1/state", Write, true},
		{"$share/g/a", Write, false},
		{"$share/g/#", Subscribe, true},
		{"$share/g", Subscribe, false},
		{"$other/x", Write, true},
	}
	for _, c := range cases {
		if got := acl.Allowed("u", "c", c.topic, c.access); got != c.want {
			t.Errorf("nil ACL Allowed(%q, %v) = %v, want %v", c.topic, c.access, got, c.want)
		}
	}
}

func TestACLMalformedLines(t *testing.T) {
	cases := []struct{ line, want string }{
		{"topic", "topic: missing topic"},
		{"topic read", "topic: missing topic"},
		{"pattern deny   ", "pattern: missing topic"},
		{"user", "user: missing user name"},
		{"user   ", "user: missing user name"},
		{"topik read a", `unknown keyword "topik"`},
		{"Topic read a", `unknown keyword "Topic"`},
		{"topic read a/#/b", "'#' must be a whole level"},
		{"topic read a/b#", "'#' must be a whole level"},
		{"topic read a/b+/c", "'+' must be a whole level"},
		{"pattern read dev/%c+/x", "'+' must be a whole level"},
	}
	for _, c := range cases {
		text := "user alice\ntopic read ok/#\n" + c.line + "\n"
		_, err := parseACL("/etc/acl", []byte(text))
		if err == nil {
			t.Errorf("line %q: no error", c.line)
			continue
		}
		if !strings.HasPrefix(err.Error(), "/etc/acl:3: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("line %q: error %q, want /etc/acl:3: ... %s", c.line, err, c.want)
		}
	}
	// Tolerated as Mosquitto does: indentation, tabs, CRLF, comments, topics with spaces.
	acl, err := parseACL("acl", []byte("  # comment\r\n\tuser  al ice \r\n topic\tread  a b/c \r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !acl.Allowed("al ice", "c", "a b/c", Read) {
		t.Error("topic with a space not granted")
	}
}

// BenchmarkAllowed measures one publish check against the test ACL: a user
// rule, a pattern with %c, and a refusal that reads every line.
func BenchmarkAllowed(b *testing.B) {
	acl, err := parseACL("acl", []byte(aclText))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, user, id, topic string }{
		{"user-rule", "alice", "a1", "alice/notes/today"},
		{"pattern", "alice", "a1", "devices/a1/state"},
		{"refused", "alice", "a1", "nowhere/at/all"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				acl.Allowed(c.user, c.id, c.topic, Write)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	cases := []struct{ pattern, id, user, want string }{
		{"dev/%c/#", "d1", "u", "dev/d1/#"},
		{"%u/%c", "d1", "alice", "alice/d1"},
		{"x/%c-%u", "%u", "alice", "x/%u-alice"}, // one pass: an id holding %u stays
		{"100%/x%", "d", "u", "100%/x%"},
		{"a%%c", "d", "u", "a%%c"},
		{"%c%c", "ab", "u", "abab"},
	}
	for _, c := range cases {
		if got := expand(c.pattern, c.id, c.user); got != c.want {
			t.Errorf("expand(%q, %q, %q) = %q, want %q", c.pattern, c.id, c.user, got, c.want)
		}
	}
}
