package mosquittoconf

import (
	"bytes"
	"reflect"
	"testing"
)

func TestDocumentRoundTrip(t *testing.T) {
	inputs := map[string]string{
		"empty":              "",
		"one newline":        "\n",
		"no final newline":   "listener 1883\nprotocol mqtt",
		"crlf":               "listener 1883\r\nprotocol websockets\r\n",
		"mixed endings":      "a 1\r\nb 2\nc 3\r\n\r\n\n",
		"lone cr":            "port 1883\rsys_interval 10\n\r",
		"trailing blanks":    "listener 1883   \t\n  \n\t\n",
		"tabs":               "\tlistener\t1883\t127.0.0.1\n",
		"comments":           "# a comment\n  # indented\n#\n##\n",
		"unicode":            "# Café ☕ 日本語\nremote_password pässwörd ✓\n",
		"byte order mark":    "\ufefflistener 1883\n",
		"invalid utf-8":      "listener \xff\xfe 1883\n\xc3\n",
		"nul bytes":          "list\x00ener 1883\n\x00\n",
		"only blanks":        "   ",
		"many empty lines":   "\n\n\n\n",
		"cr before crlf":     "listener 1883\r\r\n",
		"inline hash":        "port 1883 # the old way\n",
		"bridge empty quote": "topic \"\" both 0 local/ remote/\n",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			d := ParseDocument("x.conf", []byte(in))
			if got := d.Bytes(); !bytes.Equal(got, []byte(in)) {
				t.Fatalf("Bytes() = %q, want %q", got, in)
			}
			for i, l := range d.Lines {
				if l.Num != i+1 {
					t.Errorf("line %d has Num %d", i+1, l.Num)
				}
			}
		})
	}
}

func TestTokenise(t *testing.T) {
	cases := []struct {
		in     string
		option string
		args   []string
		rest   string
		words  []string
	}{
		{"listener 1883", "listener", []string{"1883"}, "1883", []string{"1883"}},
		{"  listener   8883  ::1  ", "listener", []string{"8883", "::1"}, "8883  ::1", []string{"8883", "::1"}},
		{"\tport\t1883\r", "port", []string{"1883"}, "1883", []string{"1883"}},
		{"# listener 1883", "", nil, "", nil},
		{"   # indented comment", "", nil, "", nil},
		{"", "", nil, "", nil},
		{" \t ", "", nil, "", nil},
		{"password_file /etc/mosquitto/my passwords ", "password_file", []string{"/etc/mosquitto/my", "passwords"}, "/etc/mosquitto/my passwords", []string{"/etc/mosquitto/my", "passwords"}},
		{"port 1883 # default", "port", []string{"1883", "#", "default"}, "1883 # default", []string{"1883"}},
		{`topic # both 0 "" remote/`, "topic", []string{"#", "both", "0", `""`, "remote/"}, `# both 0 "" remote/`, nil},
		{"persistence", "persistence", nil, "", nil},
	}
	for _, c := range cases {
		l := tokenise(1, c.in, "\n")
		if l.Option != c.option || !reflect.DeepEqual(l.Args, c.args) || l.Rest != c.rest || !reflect.DeepEqual(l.Words(), c.words) {
			t.Errorf("tokenise(%q) = option %q args %q rest %q words %q; want %q %q %q %q",
				c.in, l.Option, l.Args, l.Rest, l.Words(), c.option, c.args, c.rest, c.words)
		}
	}
	// A byte order mark is not part of the first option.
	d := ParseDocument("x.conf", []byte("\ufeffsys_interval 5\n"))
	if d.Lines[0].Option != "sys_interval" {
		t.Errorf("option after BOM = %q", d.Lines[0].Option)
	}
}

func TestLineEndings(t *testing.T) {
	d := ParseDocument("x.conf", []byte("a 1\r\nb 2\nc 3"))
	want := []Line{
		{Num: 1, Raw: "a 1", EOL: "\r\n", Option: "a", Args: []string{"1"}, Rest: "1"},
		{Num: 2, Raw: "b 2", EOL: "\n", Option: "b", Args: []string{"2"}, Rest: "2"},
		{Num: 3, Raw: "c 3", EOL: "", Option: "c", Args: []string{"3"}, Rest: "3"},
	}
	if !reflect.DeepEqual(d.Lines, want) {
		t.Fatalf("lines = %#v\nwant %#v", d.Lines, want)
	}
}
