package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// Options are what the bridges are made from.
type Options struct {
	// Server is the local broker, created with Options.InlineClient = true.
	Server   *mqtt.Server
	Bridges  []mosquittoconf.Bridge
	StoreDir string // persistence_location; "" keeps queues in memory
	// MaxQueued is max_queued_messages: the most QoS 1/2 out messages a
	// bridge keeps while its remote is away (0 = unlimited).
	MaxQueued int
	// MaxInflight is max_inflight_messages: Mosquitto's default for
	// bridge_receive_maximum (0 = unlimited: the property is not sent).
	MaxInflight int
	Hostname    string // for the default remote_clientid "<hostname>.<name>"
	Logger      *slog.Logger
}

// Manager runs the broker's bridges.
type Manager struct {
	opts    Options
	bridges []*bridge
	log     *slog.Logger

	// Warnings name, with FILE:LINE, the options that cannot be honoured
	// as written. They are logged by New as well.
	Warnings []string

	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
	stopped bool
}

// subIDBase keeps the bridges' inline subscription ids clear of others'.
const subIDBase = 0x42520000

// New checks the bridges and prepares them; nothing connects yet. Errors
// name the conf file and line.
func New(o Options) (*Manager, error) {
	if o.Server == nil {
		return nil, errors.New("bridge: no server")
	}
	if !o.Server.Options.InlineClient {
		return nil, errors.New("bridge: the server needs Options.InlineClient = true")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	m := &Manager{opts: o, log: o.Logger}
	names := map[string]bool{}
	for i, c := range o.Bridges {
		b, warns, err := prepare(c, o)
		if err != nil {
			return nil, err
		}
		if names[c.Name] {
			return nil, fmt.Errorf("%s: connection %q: the name is used twice", b.where, c.Name)
		}
		names[c.Name] = true
		b.subBase = subIDBase + i*1024
		m.bridges = append(m.bridges, b)
		m.Warnings = append(m.Warnings, warns...)
	}
	for _, w := range m.Warnings {
		m.log.Warn(w)
	}
	return m, nil
}

// prepare turns one connection block into a bridge, with its warnings.
func prepare(c mosquittoconf.Bridge, o Options) (*bridge, []string, error) {
	where := fmt.Sprintf("%s:%d", c.Pos.File, c.Pos.Line)
	b := &bridge{conf: c, where: where, server: o.Server, log: o.Logger, maxInflight: o.MaxInflight,
		qos0: make(chan message, 4096), wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
		st3: newStore3(), s5: newSession5(), refuse: map[string]bool{}, cur: -1, state: "idle"}
	var warns []string
	if c.Name == "" {
		return nil, nil, fmt.Errorf("%s: connection: a name is required", where)
	}
	if len(c.Addresses) == 0 {
		return nil, nil, fmt.Errorf("%s: connection %s: no address", where, c.Name)
	}
	for _, a := range c.Addresses {
		if a.Host == "" || a.Port < 0 || a.Port > 65535 {
			return nil, nil, fmt.Errorf("%s: connection %s: bad address %q port %d", where, c.Name, a.Host, a.Port)
		}
	}
	if len(c.Topics) == 0 {
		return nil, nil, fmt.Errorf("%s: connection %s: no topic line", where, c.Name)
	}
	for _, t := range c.Topics {
		r, err := newRoute(t)
		if err != nil {
			return nil, nil, err
		}
		b.routes = append(b.routes, r)
	}
	switch c.ProtocolVersion {
	case "mqttv31":
		b.version = 3
	case "", "mqttv311":
		b.version = 4
	case "mqttv50":
		b.version = 5
	default:
		return nil, nil, fmt.Errorf("%s: connection %s: bridge_protocol_version %q is not mqttv31, mqttv311 or mqttv50", where, c.Name, c.ProtocolVersion)
	}
	switch c.StartType {
	case "":
		b.conf.StartType = "automatic"
	case "automatic", "lazy", "once":
	default:
		return nil, nil, fmt.Errorf("%s: connection %s: start_type %q is not automatic, lazy or once", where, c.Name, c.StartType)
	}
	if c.RestartTimeoutBase < 0 || c.RestartTimeoutCap < 0 || (c.RestartTimeoutCap > 0 && c.RestartTimeoutCap < c.RestartTimeoutBase) {
		return nil, nil, fmt.Errorf("%s: connection %s: restart_timeout %d %d: want BASE [CAP] with CAP >= BASE", where, c.Name, c.RestartTimeoutBase, c.RestartTimeoutCap)
	}
	tc, err := tlsConfig(c, where)
	if err != nil {
		return nil, nil, err
	}
	b.tls = tc
	b.remoteID = c.RemoteClientID
	if b.remoteID == "" {
		b.remoteID = o.Hostname + "." + c.Name
	}
	b.localID = c.LocalClientID
	if b.localID == "" {
		b.localID = "local." + b.remoteID
	}
	b.stateTopic = c.NotificationTopic
	if b.stateTopic == "" {
		b.stateTopic = "$SYS/broker/connection/" + b.remoteID + "/state"
	}
	if c.TryPrivate && b.version == 5 {
		warns = append(warns, fmt.Sprintf("%s: connection %s: try_private is not sent with bridge_protocol_version mqttv50 (paho.golang fixes the version byte); loops are prevented with No Local subscriptions instead", where, c.Name))
	}
	if b.version != 5 && (c.ReceiveMaximum > 0 || c.SessionExpiryInterval != nil) {
		warns = append(warns, fmt.Sprintf("%s: connection %s: bridge_receive_maximum and bridge_session_expiry_interval are MQTT 5 properties; they have no effect with %s", where, c.Name, c.ProtocolVersion))
	}
	if c.ALPN != "" && tc == nil {
		warns = append(warns, fmt.Sprintf("%s: connection %s: bridge_alpn ignored without bridge_cafile or bridge_capath (no TLS)", where, c.Name))
	}
	if (c.CertFile != "" || c.KeyFile != "") && tc == nil {
		warns = append(warns, fmt.Sprintf("%s: connection %s: bridge_certfile/bridge_keyfile ignored without bridge_cafile or bridge_capath", where, c.Name))
	}
	return b, warns, nil
}

// Start opens the queues, subscribes locally and starts connecting. Call
// it after the server's Serve. The bridges live until Stop (ctx only
// carries values and cancellation for the start itself).
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("bridge: already started")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	for i, b := range m.bridges {
		path := ""
		if m.opts.StoreDir != "" {
			path = filepath.Join(m.opts.StoreDir, "bridge-"+fileSafe(b.conf.Name)+".db")
		}
		q, err := openQueue(path, m.opts.MaxQueued)
		if err != nil {
			m.abort(i)
			cancel()
			return fmt.Errorf("%s: connection %s: %w", b.where, b.conf.Name, err)
		}
		b.q = q
		b.local = m.opts.Server.NewClient(nil, mqtt.LocalListener, b.localID, true)
		if err := b.subscribeLocal(); err != nil {
			m.abort(i + 1)
			cancel()
			return err
		}
		if n := q.len(); n > 0 {
			m.log.Info("bridge queue loaded", "bridge", b.conf.Name, "messages", n)
		}
	}
	for _, b := range m.bridges {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			b.run(runCtx)
		}()
	}
	m.started = true
	return nil
}

// abort undoes a partial Start of the first n bridges.
func (m *Manager) abort(n int) {
	for _, b := range m.bridges[:n] {
		b.unsubscribeLocal()
		if b.q != nil {
			_ = b.q.close()
		}
	}
}

// Stop disconnects every bridge cleanly: the state topic gets 0 locally
// and (unless notifications_local_only) remotely, the local subscriptions
// go and the queues are closed. Call it before closing the server.
func (m *Manager) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started || m.stopped {
		return nil
	}
	m.stopped = true
	m.cancel()
	m.wg.Wait()
	var errs []error
	for _, b := range m.bridges {
		b.unsubscribeLocal()
		if b.linkUp.Load() {
			b.linkUp.Store(false)
		}
		b.st3.dropAll()
		b.s5.shutdown()
		if err := b.q.close(); err != nil {
			errs = append(errs, fmt.Errorf("bridge %s: %w", b.conf.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Stats are the bridges' figures, in conf order.
func (m *Manager) Stats() []Stats {
	out := make([]Stats, 0, len(m.bridges))
	for _, b := range m.bridges {
		out = append(out, b.stats())
	}
	return out
}

func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
}
