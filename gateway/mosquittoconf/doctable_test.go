package mosquittoconf

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEveryOptionHasARow: docs/BROKER.md's table of options names every
// option this package knows, with the verdict the code gives it, so the
// table stays complete and true as options are added or honoured.
func TestEveryOptionHasARow(t *testing.T) {
	doc, err := os.ReadFile("../../docs/BROKER.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "## Every mosquitto.conf option")
	if !ok {
		t.Fatal(`docs/BROKER.md has no "## Every mosquitto.conf option" section`)
	}
	if i := strings.Index(table, "\n## "); i >= 0 {
		table = table[:i]
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)`[^|]* \\| ([^|]*) \\|")
	verdicts := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		verdicts[m[1]] = strings.TrimSpace(m[2])
	}
	check := func(name string, o option) {
		got, ok := verdicts[name]
		switch {
		case !ok:
			t.Errorf("%s has no row in docs/BROKER.md's option table", name)
		case o.scope == scopeBridge:
			// The bridge table (and its own test) says more.
		case refusal(name) != "":
			if !strings.HasPrefix(got, "refused") {
				t.Errorf("%s: the table says %q; the check refuses it", name, got)
			}
		case o.supported:
			if !strings.HasPrefix(got, "honoured") {
				t.Errorf("%s: the table says %q; the broker honours it", name, got)
			}
		default:
			if !strings.HasPrefix(got, "not yet") {
				t.Errorf("%s: the table says %q; the check warns and ignores it", name, got)
			}
		}
	}
	for name, o := range options {
		check(name, o)
	}
	o, _ := lookup("plugin_opt_x")
	check("plugin_opt_*", o)
}
