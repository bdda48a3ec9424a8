package webui

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOwnHosts(t *testing.T) {
	own := &OwnHosts{
		Names:    []string{"hub.example.lan"},
		Hostname: func() (string, error) { return "Gateway", nil },
		Addrs: func() ([]net.Addr, error) {
			return []net.Addr{
				&net.IPNet{IP: net.ParseIP("192.0.2.10"), Mask: net.CIDRMask(24, 32)},
				&net.IPNet{IP: net.ParseIP("2001:db8::10"), Mask: net.CIDRMask(64, 128)},
			}, nil
		},
	}
	for host, want := range map[string]bool{
		"192.0.2.10:8080": true, "192.0.2.10": true, "[2001:db8::10]:8080": true, "[::ffff:192.0.2.10]:80": true,
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST": true,
		"gateway": true, "gateway.local:8080": true, "GATEWAY.LOCAL.": true, "hub.example.lan": true,
		"evil.example:8080": false, "192.0.2.11:8080": false, "gateway.evil.example": false, "evil.gateway.local": false,
		"": false, "[2001:db8::11]": false, "0.0.0.0:8080": false,
	} {
		if got := own.Allowed(host); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", host, got, want)
		}
	}
	broken := &OwnHosts{Hostname: func() (string, error) { return "", errors.New("no") }, Addrs: func() ([]net.Addr, error) { return nil, errors.New("no netlink") }}
	if broken.Allowed("192.0.2.10") || !broken.Allowed("127.0.0.1") {
		t.Error("with no interface listing only loopback and localhost are the box's own")
	}
}

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
