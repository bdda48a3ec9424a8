// Package consoleplugin runs the LAN web console inside `gatewayd run`: it
// gives the box's API its console parts (the admin login, the
// config-change flow, the broker's statistics, the pages) and serves that
// API on console.listen of gateway.yaml, behind the LAN guard of
// lan.allow, which judges each connection on its TCP peer alone before a
// byte is read.
package consoleplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/homebox/gateway/box"
	"github.com/homebox/gateway/gateway/languard"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/supervisor/config"
	"github.com/homebox/gateway/webui"
	"github.com/homebox/gateway/webui/auth"
	"github.com/homebox/gateway/webui/confflow"
)

const (
	// BrokerApp is the supervisor's name of the broker.
	BrokerApp = "mqtt"
)

// Options configure the plugin.
type Options struct {
	// Pages serves the browser pages (nil: the API only).
	Pages http.Handler
	// ReadyTimeout bounds the wait for the broker after a config change
	// [15s].
	ReadyTimeout time.Duration
}

// Plugin is the console as a box plugin.
type Plugin struct {
	o Options

	mu     sync.Mutex
	host   *box.Host
	log    *slog.Logger
	stats  *sysstats.Collector
	done   chan struct{}
	srv    *http.Server
	served chan struct{}
	addr   net.Addr
	listen string
	allow  []string
}

// New returns the plugin.
func New(o Options) *Plugin { return &Plugin{o: o} }

// Name is box.ConsolePlugin.
func (p *Plugin) Name() string { return box.ConsolePlugin }

// Start attaches the console to the box's API and serves it on the LAN.
func (p *Plugin) Start(ctx context.Context, h *box.Host) error {
	log := h.Logger.With("part", "console")
	auth, err := auth.New(auth.Options{Path: paths.Root(h.Root).Join(paths.ConsoleLogin)})
	if err != nil {
		return err
	}
	events := webui.NewEvents()
	var apps confflow.Apps // a nil *Supervisor must stay a nil interface
	if h.Supervisor != nil {
		apps = h.Supervisor
	}
	flow := confflow.New(confflow.Options{
		Apps:         apps,
		App:          BrokerApp,
		ConfPath:     paths.Root(h.Root).Join(paths.MosquittoConf),
		History:      confflow.NewHistory(paths.Root(h.Root).Join(paths.ConfigHistory), confflow.DefaultKeep),
		ReadyTimeout: p.o.ReadyTimeout,
		Logger:       log,
		OnStep:       func(s confflow.Step) { events.Publish("flow", s) },
	})
	stats := sysstats.Start(sysstats.Options{BrokerURL: "mqtt://" + brokerAddr(flow), Logger: log})
	done := make(chan struct{})
	con := &webui.Console{Auth: auth, Flow: flow, Stats: stats, CertsDir: paths.Root(h.Root).Join(paths.Certs), Events: events, Done: done}
	if err := webui.Attach(h.API, con, p.o.Pages); err != nil {
		stats.Close()
		return err
	}
	p.mu.Lock()
	p.host, p.log, p.stats, p.done = h, log, stats, done
	p.mu.Unlock()
	if err := p.serve(h.Config); err != nil {
		_ = p.Stop(ctx)
		return err
	}
	if auth.SetupNeeded() {
		log.Warn("no console admin password is set: the first visitor of the console sets it (or run `gwctl console-password`)")
	}
	return nil
}

// serve opens console.listen behind the guard of lan.allow.
func (p *Plugin) serve(cfg *config.Config) error {
	guard, err := languard.ParseNetworks(cfg.LAN.Allow)
	if err != nil {
		return fmt.Errorf("lan.allow: %w", err)
	}
	guard.SetLogger(p.log)
	ln, err := net.Listen("tcp", cfg.Console.Listen)
	if err != nil {
		return fmt.Errorf("console.listen %s: %w", cfg.Console.Listen, err)
	}
	srv := &http.Server{
		Handler:           p.host.API,
		ConnContext:       webui.ConnContext(webui.OriginLAN),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(guard.Listener(ln, "console")); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("console server", "error", err)
		}
	}()
	p.mu.Lock()
	p.srv, p.served, p.addr = srv, served, ln.Addr()
	p.listen, p.allow = cfg.Console.Listen, slices.Clone(cfg.LAN.Allow)
	p.mu.Unlock()
	p.log.Info("console listening", "addr", ln.Addr().String(), "allow", guard.String())
	return nil
}

// brokerAddr is where the console's own client reaches the broker, from
// the conf as the broker reads it (relative paths from its working folder).
func brokerAddr(flow *confflow.Flow) string {
	data, err := os.ReadFile(flow.ConfPath())
	if err != nil {
		return mosquittoconf.DefaultClientAddr
	}
	cfg, ds := flow.Check(data)
	if !ds.OK() {
		return mosquittoconf.DefaultClientAddr
	}
	addr, _ := cfg.ClientAddr()
	return addr
}

// Addr is where the console listens (nil before Start).
func (p *Plugin) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *Plugin) closeServer(ctx context.Context) {
	p.mu.Lock()
	srv, served := p.srv, p.served
	p.srv, p.served, p.addr = nil, nil, nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-served
}

// Reload opens the listener again when console.listen or lan.allow
// changed.
func (p *Plugin) Reload(cfg *config.Config) error {
	p.mu.Lock()
	same := p.listen == cfg.Console.Listen && slices.Equal(p.allow, cfg.LAN.Allow)
	running := p.host != nil
	p.mu.Unlock()
	if !running {
		return errors.New("the console is not running")
	}
	if same {
		return nil
	}
	if _, err := languard.ParseNetworks(cfg.LAN.Allow); err != nil {
		return fmt.Errorf("lan.allow: %w", err)
	}
	p.closeServer(context.Background())
	return p.serve(cfg)
}

// Stop closes the LAN listener, ends the event streams and takes the
// console's parts off the API.
func (p *Plugin) Stop(ctx context.Context) error {
	p.mu.Lock()
	done, stats, h := p.done, p.stats, p.host
	p.done, p.stats, p.host = nil, nil, nil
	p.mu.Unlock()
	if done != nil {
		close(done) // event streams end, so the shutdown does not wait on them
	}
	p.closeServer(ctx)
	var err error
	if h != nil {
		err = webui.Attach(h.API, nil, nil)
	}
	if stats != nil {
		stats.Close()
	}
	return err
}
