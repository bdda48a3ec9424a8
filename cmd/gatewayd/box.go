package main

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
	"time"

	"golang.org/x/sys/unix"

	"github.com/homebox/gateway/discovery"
	brokerauth "github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/internal/account"
	"github.com/homebox/gateway/internal/brokerlink"
	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/rootfs"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/supervisor/config"
	"github.com/homebox/gateway/webui"
	"github.com/homebox/gateway/webui/api"
	"github.com/homebox/gateway/webui/auth"
	"github.com/homebox/gateway/webui/confflow"
	"github.com/homebox/gateway/webui/pages"
	"github.com/homebox/gateway/webui/topics"
)

// devConsole is where --dev serves the console: loopback only.
const devConsole = "127.0.0.1:8080"

// brokerApp is the supervisor's name of the broker.
const brokerApp = "mqtt"

// boxOptions configure `gatewayd run`.
type boxOptions struct {
	Root    string
	Dev     bool      // `make run`: console on 127.0.0.1:8080, mDNS off, a banner on Stderr
	Self    string    // gatewayd's own path, for apps whose command is "gatewayd"; default os.Executable
	Stderr  io.Writer // gatewayd's log goes here and to its log file; default os.Stderr
	Version string
	// DevConsole is where --dev serves the console [devConsole].
	DevConsole string
	// TrialTimeout is how long a newly updated slot gets to prove itself
	// [defaultTrialTimeout].
	TrialTimeout time.Duration
	// ShutdownTimeout bounds the whole stop; apps past their kill_timeout
	// are SIGKILLed by the supervisor well before it. Default 2 minutes.
	ShutdownTimeout time.Duration
}

// box is a running `gatewayd run`: the supervisor and its apps, the one API
// (served on the root-only socket and, behind the LAN guard, on
// console.listen), discovery and the broker's statistics. It is the one
// place that wires the parts together, so each part stays ignorant of the
// others.
type box struct {
	opts boxOptions
	root string
	log  *slog.Logger
	logw io.WriteCloser
	lock *os.File

	sup     *supervisor.Supervisor
	disc    *discovery.Service
	stats   *sysstats.Collector
	topics  *topics.Explorer
	stopSSE chan struct{} // closed at stop: the event streams end
	api     http.Handler
	system  *slotSystem
	hosts   *webui.OwnHosts
	socket  *server
	lan     *lanConsole

	accounts brokerauth.BoxSecrets // the box's own broker logins (accounts.go)
	link     *brokerlink.Link      // how the box's own clients reach the broker

	mu  sync.Mutex
	cfg *config.Config
}

// startBox brings the box up and returns once the apps are started and the
// API is served on the socket and the LAN. Whatever part of a failed start
// happened is undone. Call stop to end it.
func startBox(ctx context.Context, opts boxOptions) (*box, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.TrialTimeout <= 0 {
		opts.TrialTimeout = defaultTrialTimeout
	}
	if opts.DevConsole == "" {
		opts.DevConsole = devConsole
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
	at := paths.Root(root)
	b := &box{opts: opts, root: root, stopSSE: make(chan struct{})}
	b.logw = supervisor.NewRotatingWriter(filepath.Join(at.Join(paths.Logs), paths.OwnLogName), 0, 0)
	b.log = slog.New(slog.NewTextHandler(io.MultiWriter(opts.Stderr, b.logw), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ok := false
	defer func() {
		if !ok {
			_ = b.stop() // undoes whatever part of the start happened
		}
	}()

	wrote, err := rootfs.Seed(root)
	if err != nil {
		return nil, fmt.Errorf("lay the root down: %w", err)
	}
	for _, f := range wrote {
		b.log.Info("wrote shipped default", "file", f)
		if opts.Dev && f == at.Join(paths.MosquittoConf) {
			if err := loopbackListeners(f); err != nil {
				return nil, fmt.Errorf("development conf: %w", err)
			}
		}
	}
	// One gatewayd per root: the lock is taken before anything else, and
	// above all before the supervisor ends "strays", which would be the
	// apps of a gatewayd that is still running.
	if err := b.takeLock(); err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig()
	if err != nil {
		return nil, err
	}
	b.cfg = cfg

	b.sup, err = supervisor.New(supervisor.Options{
		LogDir:   at.Join(paths.Logs),
		StateDir: at.Join(paths.Run),
		Logger:   b.log.With("part", "supervisor"),
	})
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	// The box's own clients log in with its service account, at the
	// address the conf gives at each connection attempt.
	if b.accounts, err = brokerauth.LoadOrCreateBoxSecrets(at.Join(paths.BoxAccounts)); err != nil {
		return nil, fmt.Errorf("the box's broker accounts: %w", err)
	}
	b.link = &brokerlink.Link{
		Addr:     func() string { a, _ := brokerAddr(root); return a },
		Username: brokerauth.ServiceUser,
		Password: b.accounts[brokerauth.ServiceUser],
	}
	console, err := b.consoleParts()
	if err != nil {
		return nil, err
	}
	b.topics = topics.Start(b.link, 0, b.log.With("part", "explorer"))
	// Discovery does not wait for the broker: it connects once the broker
	// accepts.
	_, mqttPort := brokerAddr(root)
	if b.disc, err = b.startDiscovery(ctx, cfg, mqttPort); err != nil {
		return nil, fmt.Errorf("start discovery: %w", err)
	}
	b.system = newSlotSystem(root, opts.Version, b.log.With("part", "update"))
	b.hosts = &webui.OwnHosts{Names: cfg.Console.Hosts}
	b.api = webui.New(webui.Deps{
		Apps: b.sup, Devices: b.disc, Console: console, Version: opts.Version, System: b.system, Hosts: b.hosts,
		AppLogins: b.appLogin, Topics: b.topics,
		Pages:  pages.Handler(pages.Options{Version: opts.Version}),
		Logger: b.log.With("part", "api"),
	})
	// The socket goes up before the apps start so that gwctl can watch a
	// slow start.
	if b.socket, err = serveSocket(at.Join(paths.Socket), b.api, b.log); err != nil {
		return nil, err
	}
	if err := b.handOverAppFiles(cfg); err != nil {
		b.log.Warn("the broker's files stay as they are", "error", err)
	}
	if err := b.sup.Start(ctx, b.specs(cfg)); err != nil {
		return nil, fmt.Errorf("start apps: %w", err)
	}
	if b.lan, err = serveLAN(cfg, b.api, b.log.With("part", "console")); err != nil {
		return nil, err
	}
	// A slot booted for the first time after an update proves itself, or
	// the box falls back to the other one.
	go b.system.guard(ctx, opts.TrialTimeout, func() string { a, _ := brokerAddr(root); return a }, b.lan.addr)
	if console.Auth.SetupNeeded() {
		b.log.Warn("no console admin password is set: the first visitor of the console sets it (or run `gwctl console-password`)")
	}
	b.log.Info("gatewayd running", "root", root, "socket", b.socket.addr, "apps", len(cfg.Apps), "version", opts.Version)
	if opts.Dev {
		b.banner()
	}
	ok = true
	return b, nil
}

// loadConfig reads gateway.yaml, with --dev's overrides.
func (b *box) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(b.root)
	if err != nil {
		return nil, err
	}
	if b.opts.Dev {
		cfg = cfg.Clone()
		cfg.Console.Listen = b.opts.DevConsole
		cfg.Discovery.MDNS.Enabled = false
		// A development machine has no mosquitto or homeassistant
		// account: every app runs as the developer.
		for i := range cfg.Apps {
			cfg.Apps[i].User, cfg.Apps[i].Group = "", ""
		}
	}
	// Only root can run an app as another account; as anyone else the app
	// runs as gatewayd and the supervisor says so.
	if os.Geteuid() == 0 {
		if err := cfg.CheckAccounts(func(u, g string) error { _, err := account.Lookup(u, g); return err }); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// consoleParts makes what the console serves besides the apps: the admin
// login, the config-change flow (with its history and its steps on the
// event stream) and the broker's statistics.
func (b *box) consoleParts() (*webui.Console, error) {
	at := paths.Root(b.root)
	login, err := auth.New(auth.Options{Path: at.Join(paths.ConsoleLogin)})
	if err != nil {
		return nil, err
	}
	events := webui.NewEvents()
	flow := confflow.New(confflow.Options{
		Apps:     b.sup,
		App:      brokerApp,
		ConfPath: at.Join(paths.MosquittoConf),
		Root:     b.root, // files the console's edits name stay inside the box's folders
		History:  confflow.NewHistory(at.Join(paths.ConfigHistory), confflow.DefaultKeep),
		Logger:   b.log.With("part", "console"),
		OnStep:   func(s confflow.Step) { events.Publish("flow", api.FlowStep(s)) },
		// The files a change wrote (as root) go to the broker's account.
		BeforeRestart: func() error { return b.handOverAppFiles(b.config()) },
	})
	b.stats = sysstats.Start(sysstats.Options{Link: b.link, Logger: b.log.With("part", "console")})
	return &webui.Console{
		Auth: login, Flow: flow, Stats: b.stats, Events: events, Done: b.stopSSE,
		CertsDir: at.Join(paths.Certs),
	}, nil
}

// reload re-reads gateway.yaml and applies it: changed apps restart, new
// ones start, removed ones stop, others are left alone; the console's
// listener opens again when console.listen or lan.allow changed, and
// discovery takes the new ports. A file with mistakes changes nothing; the
// error names them with their lines.
func (b *box) reload() error {
	cfg, err := b.loadConfig()
	if err != nil {
		b.log.Error("reload refused: gateway.yaml has mistakes; everything keeps running as before", "error", err)
		return err
	}
	if err := b.handOverAppFiles(cfg); err != nil {
		b.log.Warn("the broker's files stay as they are", "error", err)
	}
	if err := b.sup.Apply(b.specs(cfg)); err != nil {
		b.log.Error("reload refused by the supervisor; everything keeps running as before", "error", err)
		return err
	}
	b.mu.Lock()
	b.cfg = cfg
	b.mu.Unlock()
	var errs []error
	if err := b.lan.reload(cfg); err != nil {
		b.log.Error("reload: console", "error", err)
		errs = append(errs, fmt.Errorf("console: %w", err))
	}
	b.hosts.SetNames(cfg.Console.Hosts)
	_, mqttPort := brokerAddr(b.root)
	b.disc.UpdatePorts(mqttPort, consolePort(cfg))
	b.log.Info("gateway.yaml reloaded", "apps", len(cfg.Apps))
	return errors.Join(errs...)
}

// config is the gateway.yaml in force.
func (b *box) config() *config.Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// stop ends the box: the LAN console, discovery and the statistics first,
// then the apps in reverse dependency order, then the socket.
func (b *box) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ShutdownTimeout)
	defer cancel()
	if b.sup != nil {
		b.log.Info("stopping")
	}
	var errs []error
	if b.stopSSE != nil {
		close(b.stopSSE) // event streams end, so the shutdowns do not wait on them
		b.stopSSE = nil
	}
	if b.lan != nil {
		b.lan.close(ctx)
	}
	if b.disc != nil {
		if err := b.disc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop discovery: %w", err))
		}
	}
	if b.stats != nil {
		b.stats.Close()
	}
	if b.topics != nil {
		b.topics.Close()
	}
	if b.sup != nil {
		if err := b.sup.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop apps: %w", err))
		}
	}
	err := errors.Join(errs...)
	if b.sup != nil {
		if err != nil {
			b.log.Error("stopped with errors", "error", err)
		} else {
			b.log.Info("stopped")
		}
	}
	if b.socket != nil {
		b.socket.close(context.Background())
		_ = os.Remove(b.socket.addr)
	}
	if b.lock != nil {
		_ = b.lock.Close() // drops the flock
	}
	if b.logw != nil {
		_ = b.logw.Close()
	}
	return err
}

// takeLock makes sure no other gatewayd runs on this root.
func (b *box) takeLock() error {
	at := paths.Root(b.root)
	path := at.Join(paths.Lock)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("another gatewayd runs on root %s (it holds %s; its socket is %s)", b.root, path, at.Join(paths.Socket))
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	b.lock = f
	return nil
}

// banner says, for a developer's `make run`, where everything is.
func (b *box) banner() {
	w := b.opts.Stderr
	at := paths.Root(b.root)
	fmt.Fprintf(w, "\ngatewayd %s running in development mode\n", b.opts.Version)
	fmt.Fprintf(w, "  root:     %s\n", b.root)
	fmt.Fprintf(w, "  socket:   %s   (gwctl --root %s status)\n", at.Join(paths.Socket), b.root)
	fmt.Fprintf(w, "  logs:     %s\n", at.Join(paths.Logs))
	printListeners(w, b.root)
	fmt.Fprintf(w, "  console:  http://%s/\n", b.cfg.Console.Listen)
	fmt.Fprintf(w, "  mDNS is off on a development machine\n\n")
}

// server is one http.Server of the API and its serving goroutine.
type server struct {
	srv    *http.Server
	addr   string
	served chan struct{}
}

func serve(ln net.Listener, h http.Handler, origin webui.Origin, log *slog.Logger) *server {
	s := &server{
		srv: &http.Server{
			Handler:           h,
			ConnContext:       webui.ConnContext(origin),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		addr:   ln.Addr().String(),
		served: make(chan struct{}),
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "addr", s.addr, "error", err)
		}
	}()
	return s
}

// close stops the server, waiting a few seconds for answers under way.
func (s *server) close(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.served
}

// serveSocket serves api on the control socket, mode 0600: the socket is
// the root-only door, so it needs no login.
func serveSocket(sock string, api http.Handler, log *slog.Logger) (*server, error) {
	// A gatewayd that answers on the socket without holding the lock
	// (another root mounted over this one, an old version) must not be cut
	// off: refuse rather than remove its socket.
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another gatewayd answers on %s: stop it first", sock)
	}
	if err := os.Remove(sock); err == nil {
		log.Info("removed a stale control socket", "socket", sock)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	// The umask narrows the socket's mode from its creation on, leaving no
	// moment where others could connect.
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", sock)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return serve(ln, api, webui.OriginSocket, log), nil
}
