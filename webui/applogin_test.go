package webui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/homebox/gateway/webui/api"
)

// The broker login the box made for an app, for its page: over the socket
// (gwctl's side) here; the LAN side needs the console login as every route.
func TestAppLoginForItsPage(t *testing.T) {
	h := New(Deps{AppLogins: func(app string) (api.MQTTLogin, bool) {
		if app != "home-assistant" {
			return api.MQTTLogin{}, false
		}
		return api.MQTTLogin{Host: "127.0.0.1", Port: 1883, Username: "homeassistant", Password: "s3cret"}, true
	}})
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://gatewayd"+path, nil)
		req = req.WithContext(ConnContext(OriginSocket)(req.Context(), nil))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := get("/api/apps/home-assistant/mqtt")
	var l api.MQTTLogin
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &l) != nil || l.Username != "homeassistant" || l.Password != "s3cret" || l.Port != 1883 {
		t.Errorf("home-assistant: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/api/apps/mqtt/mqtt"); rec.Code != http.StatusNotFound {
		t.Errorf("an app without a login: %d %s", rec.Code, rec.Body)
	}
}
