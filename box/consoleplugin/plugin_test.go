package consoleplugin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/homebox/gateway/box"
	"github.com/homebox/gateway/supervisor/config"
	"github.com/homebox/gateway/webui"
)

// TestGuardRefusesOutsiders serves the console with a lan.allow that
// leaves loopback out: the test's own connections are closed at accept.
// A reload that lets loopback in opens the door.
func TestGuardRefusesOutsiders(t *testing.T) {
	root := t.TempDir()
	cfg := &config.Config{Console: config.Console{Listen: "127.0.0.1:0"}, LAN: config.LAN{Allow: []string{"192.0.2.0/24"}}}
	api := webui.New(webui.Deps{})
	p := New(Options{})
	h := &box.Host{Root: root, Config: cfg, API: api, Logger: slog.New(slog.DiscardHandler)}
	if err := p.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background()) })

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + p.Addr().String() + "/api/health"
	resp, err := client.Get(url)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a loopback client outside lan.allow got an answer: %s", resp.Status)
	}

	cfg2 := cfg.Clone()
	cfg2.LAN.Allow = []string{"loopback"}
	if err := p.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	url = "http://" + p.Addr().String() + "/api/health"
	resp, err = client.Get(url)
	if err != nil {
		t.Fatalf("allowed client: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health: %s", resp.Status)
	}
	// The LAN side of the API needs a login; the session says setup is due.
	resp, err = client.Get("http://" + p.Addr().String() + "/api/apps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("apps without login: %s", resp.Status)
	}
	if err := p.Reload(&config.Config{Console: cfg2.Console, LAN: config.LAN{Allow: []string{"nonsense!"}}}); err == nil {
		t.Error("bad lan.allow accepted on reload")
	}
}
