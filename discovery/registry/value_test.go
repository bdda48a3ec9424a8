package registry

import "testing"

func TestValueThroughTemplates(t *testing.T) {
	for _, c := range []struct{ tpl, payload, want string }{
		{"", " 21.4\n", "21.4"},
		{"{{ value_json.temperature }}", `{"temperature":21.4}`, "21.4"},
		{"{{ value_json['a b'].c | float }}", `{"a b":{"c":"x"}}`, "x"},
		{"{{ value_json.list[1] }}", `{"list":[1,2]}`, "2"},
		{"{{ value_json.missing }}", `{"t":1}`, `{"t":1}`},
		{"{{ value_json.t }}", "not json", "not json"},
		{"{{ value_json.o }}", `{"o":{"k":true}}`, `{"k":true}`},
		{"{{ value | int }}", "7", "7"},
	} {
		if got := Value(c.tpl, c.payload); got != c.want {
			t.Errorf("Value(%q, %q) = %q, want %q", c.tpl, c.payload, got, c.want)
		}
	}
}
