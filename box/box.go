// Package box is what `gatewayd run` does: it lays the root down, reads
// gateway.yaml, starts the supervisor with the declared apps, serves the
// control API on the root-only socket, and keeps running until told to stop.
// It is the one place that wires the parts together, so that cmd/gatewayd
// stays a thin main and each part stays ignorant of the others. Parts that
// come later (discovery, the LAN console) plug in as Plugins.
package box

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/rootfs"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/supervisor/config"
	"github.com/homebox/gateway/webui"
)

// ConsolePlugin is the Name of the plugin that serves the LAN console.
const ConsolePlugin = "console"

// DevConsole is where --dev serves the console: loopback only.
const DevConsole = "127.0.0.1:8080"

// SocketPath is the control socket of a root.
func SocketPath(root string) string { return paths.Root(root).Join(paths.Socket) }

// Plugin is a part of the box that lives as long as gatewayd runs, such as
// discovery or the LAN console listener. Plugins start after the supervisor
// and the API, in order, and stop before them, in reverse order.
type Plugin interface {
	Name() string
	Start(ctx context.Context, h *Host) error
	Stop(ctx context.Context) error
}

// Reloader is a Plugin that takes a new gateway.yaml on SIGHUP. An error
// is logged; the plugin keeps what it had.
type Reloader interface {
	Reload(cfg *config.Config) error
}

// Host is what a Plugin gets to work with.
type Host struct {
	Root       string
	Dev        bool
	Config     *config.Config // as loaded at start, with --dev overrides applied
	Supervisor *supervisor.Supervisor
	// API is the one echo app; the LAN console serves it on its own
	// listener (marking connections with webui.ConnContext(webui.OriginLAN)).
	API    http.Handler
	Logger *slog.Logger
}

// Options configure a Box.
type Options struct {
	Root    string
	Dev     bool      // `make run`: console on 127.0.0.1:8080, mDNS off, a banner on Stderr
	Self    string    // gatewayd's own path, for apps whose command is "gatewayd"; default os.Executable
	Stderr  io.Writer // gatewayd's log goes here and to its log file; default os.Stderr
	Version string
	Plugins []Plugin
	// Devices, when set, serves /api/devices (discovery's registry).
	Devices webui.Devices
	// ShutdownTimeout bounds the whole stop; apps past their kill_timeout
	// are SIGKILLed by the supervisor well before it. Default 2 minutes.
	ShutdownTimeout time.Duration
}

// Box is a running gatewayd.
type Box struct {
	opts   Options
	root   string
	log    *slog.Logger
	logw   io.WriteCloser
	lock   *os.File
	sup    *supervisor.Supervisor
	srv    *http.Server
	sock   string
	host   *Host
	served chan error

	mu      sync.Mutex
	cfg     *config.Config
	started []Plugin
}

// Run starts the box and blocks until ctx ends, then stops everything:
// plugins, the API, then the apps in reverse dependency order. The error
// is nil after a clean stop.
func Run(ctx context.Context, opts Options) error {
	b, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return b.Stop()
}

// Start brings the box up and returns once the apps are started and the
// API is served. Call Stop to end it.
func Start(ctx context.Context, opts Options) (*Box, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 2 * time.Minute
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", opts.Root, err)
	}
	if opts.Self == "" {
		if opts.Self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find gatewayd's own path: %w", err)
		}
	}
	b := &Box{opts: opts, root: root, sock: SocketPath(root), served: make(chan error, 1)}
	b.logw = supervisor.NewRotatingWriter(filepath.Join(root, paths.Logs, paths.OwnLogName), 0, 0)
	b.log = slog.New(slog.NewTextHandler(io.MultiWriter(opts.Stderr, b.logw), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ok := false
	defer func() {
		if !ok {
			_ = b.Stop() // undoes whatever part of the start happened
		}
	}()

	wrote, err := rootfs.Seed(root)
	if err != nil {
		return nil, fmt.Errorf("lay the root down: %w", err)
	}
	for _, f := range wrote {
		b.log.Info("wrote shipped default", "file", f)
	}

	// One gatewayd per root: the lock is taken before anything else, and
	// above all before the supervisor ends "strays", which would be the
	// apps of a gatewayd that is still running.
	if err := b.takeLock(); err != nil {
		return nil, err
	}

	cfg, err := config.Load(root)
	if err != nil {
		return nil, err
	}
	if opts.Dev {
		cfg = cfg.Clone()
		cfg.Console.Listen = DevConsole
		cfg.Discovery.MDNS.Enabled = false
	}
	b.cfg = cfg

	b.sup, err = supervisor.New(supervisor.Options{
		LogDir:   paths.Root(root).Join(paths.Logs),
		StateDir: paths.Root(root).Join(paths.Run),
		Logger:   b.log.With("part", "supervisor"),
	})
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	// The API goes up before the apps start so that gwctl can watch a slow
	// start; its handlers only read the supervisor.
	api := webui.New(webui.Deps{Apps: b.sup, Devices: opts.Devices, Version: opts.Version, Logger: b.log.With("part", "api")})
	if err := b.serveSocket(api); err != nil {
		return nil, err
	}
	if err := b.sup.Start(ctx, cfg.Specs(root, opts.Self)); err != nil {
		return nil, fmt.Errorf("start apps: %w", err)
	}

	b.host = &Host{Root: root, Dev: opts.Dev, Config: cfg, Supervisor: b.sup, API: api, Logger: b.log}
	for _, p := range opts.Plugins {
		if err := p.Start(ctx, b.host); err != nil {
			return nil, fmt.Errorf("start %s: %w", p.Name(), err)
		}
		b.mu.Lock()
		b.started = append(b.started, p)
		b.mu.Unlock()
	}
	b.log.Info("gatewayd running", "root", root, "socket", b.sock, "apps", len(cfg.Apps), "version", opts.Version)
	if opts.Dev {
		b.banner()
	}
	ok = true
	return b, nil
}

// Root is the box's root folder, absolute.
func (b *Box) Root() string { return b.root }

// Logger is gatewayd's own logger.
func (b *Box) Logger() *slog.Logger { return b.log }

// Reload re-reads gateway.yaml and applies it: changed apps restart, new
// ones start, removed ones stop, others are left alone. A file with
// mistakes changes nothing; the error names them with their lines.
func (b *Box) Reload() error {
	cfg, err := config.Load(b.root)
	if err != nil {
		b.log.Error("reload refused: gateway.yaml has mistakes; everything keeps running as before", "error", err)
		return err
	}
	if b.opts.Dev {
		cfg = cfg.Clone()
		cfg.Console.Listen = DevConsole
		cfg.Discovery.MDNS.Enabled = false
	}
	if err := b.sup.Apply(cfg.Specs(b.root, b.opts.Self)); err != nil {
		b.log.Error("reload refused by the supervisor; everything keeps running as before", "error", err)
		return err
	}
	b.mu.Lock()
	b.cfg = cfg
	plugins := append([]Plugin(nil), b.started...)
	b.mu.Unlock()
	var errs []error
	for _, p := range plugins {
		if r, ok := p.(Reloader); ok {
			if err := r.Reload(cfg); err != nil {
				b.log.Error("reload", "plugin", p.Name(), "error", err)
				errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
			}
		}
	}
	b.log.Info("gateway.yaml reloaded", "apps", len(cfg.Apps))
	return errors.Join(errs...)
}

// Config is the gateway.yaml in force.
func (b *Box) Config() *config.Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// Stop ends the box: plugins in reverse order, the API, then the apps in
// reverse dependency order.
func (b *Box) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ShutdownTimeout)
	defer cancel()
	if b.sup != nil {
		b.log.Info("stopping")
	}
	var errs []error
	b.mu.Lock()
	plugins := b.started
	b.started = nil
	b.mu.Unlock()
	for i := len(plugins) - 1; i >= 0; i-- {
		if err := plugins[i].Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", plugins[i].Name(), err))
		}
	}
	if b.sup != nil {
		if err := b.sup.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop apps: %w", err))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		b.log.Error("stopped with errors", "error", err)
	} else {
		b.log.Info("stopped")
	}
	b.release()
	return err
}

// release closes what Start opened, in reverse.
func (b *Box) release() {
	if b.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = b.srv.Shutdown(ctx)
		cancel()
		<-b.served
		_ = os.Remove(b.sock)
		b.srv = nil
	}
	if b.lock != nil {
		_ = b.lock.Close() // drops the flock
		b.lock = nil
	}
	if b.logw != nil {
		_ = b.logw.Close()
	}
}

// takeLock makes sure no other gatewayd runs on this root.
func (b *Box) takeLock() error {
	path := paths.Root(b.root).Join(paths.Lock)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("another gatewayd runs on root %s (it holds %s; its socket is %s)", b.root, path, b.sock)
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	b.lock = f
	return nil
}

// serveSocket serves api on the control socket, mode 0600: the socket is
// the root-only door, so it needs no login.
func (b *Box) serveSocket(api http.Handler) error {
	// A gatewayd that answers on the socket without holding the lock
	// (another root mounted over this one, an old version) must not be cut
	// off: refuse rather than remove its socket.
	if c, err := net.DialTimeout("unix", b.sock, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another gatewayd answers on %s: stop it first", b.sock)
	}
	if err := os.Remove(b.sock); err == nil {
		b.log.Info("removed a stale control socket", "socket", b.sock)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	// The umask narrows the socket's mode from its creation on, leaving no
	// moment where others could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", b.sock)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(b.sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	b.srv = &http.Server{
		Handler:           api,
		ConnContext:       webui.ConnContext(webui.OriginSocket),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	go func() {
		err := b.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		b.served <- err
	}()
	return nil
}

// banner says, for a developer's `make run`, where everything is.
func (b *Box) banner() {
	w := b.opts.Stderr
	fmt.Fprintf(w, "\ngatewayd %s running in development mode\n", b.opts.Version)
	fmt.Fprintf(w, "  root:     %s\n", b.root)
	fmt.Fprintf(w, "  socket:   %s   (gwctl --root %s status)\n", b.sock, b.root)
	fmt.Fprintf(w, "  logs:     %s\n", paths.Root(b.root).Join(paths.Logs))
	if a, ok := b.cfg.App("mqtt"); ok && a.ReadyTCP != "" {
		fmt.Fprintf(w, "  broker:   %s\n", a.ReadyTCP)
	} else {
		fmt.Fprintf(w, "  broker:   no app named mqtt with a ready tcp address in gateway.yaml\n")
	}
	console := false
	for _, p := range b.opts.Plugins {
		console = console || p.Name() == ConsolePlugin
	}
	if console {
		fmt.Fprintf(w, "  console:  http://%s/\n", b.cfg.Console.Listen)
	} else {
		fmt.Fprintf(w, "  console:  http://%s/ (not served by this build yet: no %q plugin)\n", b.cfg.Console.Listen, ConsolePlugin)
	}
	fmt.Fprintf(w, "  mDNS is off on a development machine\n\n")
}
