package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/homebox/gateway/gateway/languard"
	"github.com/homebox/gateway/supervisor/config"
	"github.com/homebox/gateway/webui"
)

// lanConsole serves the API on console.listen of gateway.yaml, behind the
// LAN guard of lan.allow, which judges each connection on its TCP peer
// alone before a byte is read.
type lanConsole struct {
	api http.Handler
	log *slog.Logger

	mu     sync.Mutex
	srv    *server
	listen string
	allow  []string
}

func serveLAN(cfg *config.Config, api http.Handler, log *slog.Logger) (*lanConsole, error) {
	l := &lanConsole{api: api, log: log}
	return l, l.open(cfg)
}

func (l *lanConsole) open(cfg *config.Config) error {
	guard, err := languard.ParseNetworks(cfg.LAN.Allow)
	if err != nil {
		return fmt.Errorf("lan.allow: %w", err)
	}
	guard.SetLogger(l.log)
	ln, err := net.Listen("tcp", cfg.Console.Listen)
	if err != nil {
		return fmt.Errorf("console.listen %s: %w", cfg.Console.Listen, err)
	}
	srv := serve(guard.Listener(ln, "console"), l.api, webui.OriginLAN, l.log)
	l.mu.Lock()
	l.srv, l.listen, l.allow = srv, cfg.Console.Listen, slices.Clone(cfg.LAN.Allow)
	l.mu.Unlock()
	l.log.Info("console listening", "addr", srv.addr, "allow", guard.String())
	return nil
}

// addr is where the console listens ("" when closed).
func (l *lanConsole) addr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return ""
	}
	return l.srv.addr
}

// reload opens the listener again when console.listen or lan.allow changed.
// A bad lan.allow keeps the listener that runs.
func (l *lanConsole) reload(cfg *config.Config) error {
	l.mu.Lock()
	same := l.listen == cfg.Console.Listen && slices.Equal(l.allow, cfg.LAN.Allow)
	l.mu.Unlock()
	if same {
		return nil
	}
	if _, err := languard.ParseNetworks(cfg.LAN.Allow); err != nil {
		return fmt.Errorf("lan.allow: %w", err)
	}
	l.close(context.Background())
	return l.open(cfg)
}

func (l *lanConsole) close(ctx context.Context) {
	l.mu.Lock()
	srv := l.srv
	l.srv = nil
	l.mu.Unlock()
	if srv != nil {
		srv.close(ctx)
	}
}
