package webui

import (
	"os"
	"strings"
	"testing"
)

// TestConsoleRefusesOptionsThatCannotApply: the console checks with the
// broker's own check, so an option refused there (here psk_hint: Go's TLS
// has no PSK) is an error with its line and reason, and the save is
// refused; the file stays as it was.
func TestConsoleRefusesOptionsThatCannotApply(t *testing.T) {
	env := newConsole(t, baseConf)
	b := env.browser(t)
	b.setup("correct horse")

	text := baseConf + "psk_hint box\nmax_qos 1\n"
	a := b.req("POST", "/api/broker/config/check", map[string]string{"text": text})
	errs, _ := a.m["errors"].([]any)
	if a.code != 200 || a.m["ok"] != false || len(errs) != 1 {
		t.Fatalf("check: %d %s", a.code, a.raw)
	}
	e := errs[0].(map[string]any)
	if e["line"] != float64(5) || !strings.Contains(e["message"].(string), "cannot apply on this box: Go's crypto/tls has no pre-shared-key (PSK) cipher suites") {
		t.Fatalf("error: %v", e)
	}
	if a := b.req("PUT", "/api/broker/config", map[string]string{"text": text}); a.code != 422 {
		t.Fatalf("PUT: %d %s", a.code, a.raw)
	}
	if got, _ := os.ReadFile(env.conf); string(got) != baseConf {
		t.Fatalf("file changed by a refused PUT:\n%s", got)
	}
	// The honoured option alone is accepted, with no warning.
	a = b.req("POST", "/api/broker/config/check", map[string]string{"text": baseConf + "max_qos 1\n"})
	if w, _ := a.m["warnings"].([]any); a.code != 200 || a.m["ok"] != true || len(w) != 0 {
		t.Fatalf("honoured option: %d %s", a.code, a.raw)
	}
}
