package registry

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// valueJSONPath finds the value_json path of a Home Assistant value
// template, the form nearly every announce uses: {{ value_json.a.b }},
// {{ value_json['a'] }}, with or without filters after a '|'.
var valueJSONPath = regexp.MustCompile(`value_json((?:\.[A-Za-z_][A-Za-z0-9_]*|\[['"][^'"]+['"]\]|\[\d+\])+)`)

var pathPart = regexp.MustCompile(`\.([A-Za-z_][A-Za-z0-9_]*)|\[['"]([^'"]+)['"]\]|\[(\d+)\]`)

// Value is what a state payload shows through template: the field a
// value_json template names, or the payload itself (trimmed) when there is
// no template, it is of another form, or the field is missing.
func Value(template, payload string) string {
	payload = strings.TrimSpace(payload)
	m := valueJSONPath.FindStringSubmatch(template)
	if m == nil {
		return payload
	}
	var v any
	if json.Unmarshal([]byte(payload), &v) != nil {
		return payload
	}
	for _, p := range pathPart.FindAllStringSubmatch(m[1], -1) {
		switch cur := v.(type) {
		case map[string]any:
			key := p[1] + p[2]
			if v = cur[key]; v == nil {
				return payload
			}
		case []any:
			i, _ := strconv.Atoi(p[3])
			if p[3] == "" || i >= len(cur) {
				return payload
			}
			v = cur[i]
		default:
			return payload
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
