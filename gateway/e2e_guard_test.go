package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// websockets_origin of the conf reaches the listener it is written under:
// that origin upgrades, a foreign one gets 403, no Origin upgrades.
func TestWebsocketsOriginFromTheConf(t *testing.T) {
	b := startBroker(t, `allow_anonymous true
listener 0 127.0.0.1
listener 0 127.0.0.1
protocol websockets
websockets_origin https://dash.example
`)
	url := "ws://127.0.0.1:" + b.ports["websockets"][0] + "/mqtt"
	for origin, want := range map[string]bool{
		"https://dash.example":  true,
		"http://localhost:8080": true,
		"":                      true,
		"http://evil.example":   false,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		ws, resp, err := d.Dial(url, h)
		if ws != nil {
			_ = ws.Close()
		}
		if got := err == nil; got != want {
			t.Errorf("Origin %q: upgraded=%v (%v, %v), want %v", origin, got, err, resp, want)
		}
		if !want && (resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("Origin %q: want 403, got %v", origin, resp)
		}
	}
}
