package webui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A DNS-rebinding page names its own site in Host: 421 before any handler,
// setup included, even when its Origin agrees with its Host. The socket is
// not asked.
func TestForeignHostIsMisdirected(t *testing.T) {
	h := New(Deps{Hosts: &OwnHosts{Hostname: func() (string, error) { return "gateway", nil }}})
	for _, target := range []string{"/api/setup", "/api/login", "/api/health", "/"} {
		req := httptest.NewRequest("POST", "http://evil.example:8080"+target, strings.NewReader(`{"password":"takeover123"}`))
		req.Header.Set("Origin", "http://evil.example:8080")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusMisdirectedRequest || !strings.Contains(rec.Body.String(), "evil.example:8080") {
			t.Errorf("%s with a foreign Host: %d %s", target, rec.Code, rec.Body)
		}
	}
	req := httptest.NewRequest("GET", "http://gateway.local:8080/api/health", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("own name: %d %s", rec.Code, rec.Body)
	}
	req = httptest.NewRequest("GET", "http://gatewayd/api/health", nil)
	req = req.WithContext(t.Context())
	srvCtx := ConnContext(OriginSocket)(req.Context(), nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(srvCtx))
	if rec.Code != http.StatusOK {
		t.Errorf("socket: %d %s", rec.Code, rec.Body)
	}
}
