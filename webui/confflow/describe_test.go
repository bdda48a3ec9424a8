package confflow

import "testing"

func TestDescribeChange(t *testing.T) {
	for _, c := range []struct{ name, kind, before, after, want string }{
		{"options", KindConf, "listener 1883\nallow_anonymous true\n", "listener 1883\n# open\nallow_anonymous   false\n",
			"+ allow_anonymous false; − allow_anonymous true"},
		{"moved and comments", KindConf, "a 1\nb 2\n", "# x\nb 2\n\na 1\n", "comments or blank lines only"},
		{"many", KindConf, "", "a\nb\nc\nd\ne\nf\n", "+ a; + b; + c; + d; and 2 more"},
		{"users, no hashes", KindPasswords, "alice:$7$1\nbob:$7$2\n", "alice:$7$9\ncarol:$7$3\n",
			"new password for alice; user carol added; user bob removed"},
		{"long line cut", KindConf, "", "topic a/very/long/topic/that/goes/on/and/on/and/on/and/on/and/on/for/a/while/more/than/eighty # x\n",
			"+ topic a/very/long/topic/that/goes/on/and/on/and/on/and/on/and/on/for/a/while/…"},
	} {
		if got := describeChange(c.kind, []byte(c.before), []byte(c.after)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
