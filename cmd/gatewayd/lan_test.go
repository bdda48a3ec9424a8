package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/homebox/gateway/supervisor/config"
	"github.com/homebox/gateway/webui"
)

// TestGuardRefusesOutsiders serves the console with a lan.allow that
// leaves loopback out: the test's own connections are closed at accept.
// A reload that lets loopback in opens the door.
func TestGuardRefusesOutsiders(t *testing.T) {
	cfg := &config.Config{Console: config.Console{Listen: "127.0.0.1:0"}, LAN: config.LAN{Allow: []string{"192.0.2.0/24"}}}
	l, err := serveLAN(cfg, webui.New(webui.Deps{}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close(t.Context()) })

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + l.addr() + "/api/health")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a loopback client outside lan.allow got an answer: %s", resp.Status)
	}

	cfg2 := cfg.Clone()
	cfg2.LAN.Allow = []string{"loopback"}
	if err := l.reload(cfg2); err != nil {
		t.Fatal(err)
	}
	resp, err = client.Get("http://" + l.addr() + "/api/health")
	if err != nil {
		t.Fatalf("allowed client: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health: %s", resp.Status)
	}
	// The LAN side of the API needs a login part; without one the door is
	// closed, not open.
	resp, err = client.Get("http://" + l.addr() + "/api/apps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("apps without a login part: %s", resp.Status)
	}
	before := l.addr()
	if err := l.reload(&config.Config{Console: cfg2.Console, LAN: config.LAN{Allow: []string{"nonsense!"}}}); err == nil {
		t.Error("bad lan.allow accepted on reload")
	}
	if l.addr() != before {
		t.Errorf("a refused reload changed the listener: %s -> %s", before, l.addr())
	}
}
