package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/gateway/admit"
	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/gateway/bridge"
	"github.com/homebox/gateway/gateway/certuser"
	"github.com/homebox/gateway/gateway/durable"
	"github.com/homebox/gateway/gateway/expiry"
	"github.com/homebox/gateway/gateway/fastpath"
	"github.com/homebox/gateway/gateway/heldback"
	"github.com/homebox/gateway/gateway/inorder"
	"github.com/homebox/gateway/gateway/languard"
	"github.com/homebox/gateway/gateway/listeners"
	"github.com/homebox/gateway/gateway/memlimit"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/gateway/mosquittowire"
	"github.com/homebox/gateway/gateway/mountpoint"
	"github.com/homebox/gateway/gateway/packetids"
	"github.com/homebox/gateway/gateway/policy"
	"github.com/homebox/gateway/gateway/queuebytes"
	"github.com/homebox/gateway/gateway/systopics"
	"github.com/homebox/gateway/gateway/takeover"
	"github.com/homebox/gateway/gateway/traffic"
)

// retainForever is the broker-wide cap on message expiry. mochi drops
// retained and queued messages older than its cap (24 h by default), which
// would make Home Assistant's discovery configs vanish; a century keeps
// them, while an expiry the publisher set still applies. Upstream: by
// design (mochi-mqtt/server #444); TestMochiStillExpiresRetainedAfter24h.
const retainForever = expiry.Forever

// Options are what the broker is made from.
type Options struct {
	Config  *mosquittoconf.Config
	Guard   *languard.Guard // nil = no guard (same as "any")
	Version string          // for $SYS/broker/version
	Logger  *slog.Logger
	// WrapConn, when set, wraps every accepted connection (the bridge's
	// try_private acceptance plugs in here). It must not change the bytes
	// written: the QoS 0 fast path writes under it (fastpath.Wrap).
	WrapConn func(net.Conn) net.Conn
	// ConnectTimeout and MaxHalfOpen are gatewayd's own (Mosquitto has
	// neither): how long a connection may take from accept to a complete
	// CONNECT, and how many may be in that state box-wide. 0 = defaults
	// (listeners.DefaultConnectTimeout, listeners.DefaultMaxHalfOpen).
	ConnectTimeout time.Duration
	MaxHalfOpen    int
	// IsBoxUser tells the box's own clients (the service account) by their
	// login, for the traffic split of $SYS/broker/gateway/...; nil: none.
	IsBoxUser func(username string) bool
	// BoxAccounts are the box's own logins (auth.ServiceUser, ...), let in
	// whatever the conf says; nil: none.
	BoxAccounts auth.BoxAccounts
}

// Broker is a running gateway broker.
type Broker struct {
	opts    Options
	cfg     *mosquittoconf.Config
	server  *mqtt.Server
	auth    *auth.Hook
	fast    *fastpath.Hook // its route cache is voided when ACLs reload
	traffic *traffic.Counts
	mends   *hookGroup // small mends run as one hook (hookgroup.go)
	log     *slog.Logger

	limits *listeners.Limits // shared by every listener

	mu        sync.Mutex
	listeners []mqttListener
	bridges   *bridge.Manager
	closed    bool
}

// mqttListener is one listener with the conf line it came from.
type mqttListener struct {
	conf mosquittoconf.Listener
	impl mochilisteners.Listener
	id   string
}

// New assembles the broker from a checked config. Nothing is opened yet.
func New(o Options) (*Broker, error) {
	if o.Config == nil {
		return nil, errors.New("gateway: no config")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cfg := o.Config
	if o.WrapConn == nil {
		// Mosquitto's bridges connect with try_private (version | 0x80).
		o.WrapConn = bridge.PrivateConn
	}
	b := &Broker{opts: o, cfg: cfg, log: o.Logger}
	b.limits = &listeners.Limits{
		ConnectTimeout: o.ConnectTimeout,
		MaxHalfOpen:    o.MaxHalfOpen,
		MaxPacketSize:  MaxPacketSize(cfg),
		Logger:         o.Logger,
	}

	b.server = mqtt.New(&mqtt.Options{
		Capabilities:           capabilities(cfg),
		InlineClient:           true,
		SysTopicResendInterval: sysInterval(cfg.SysInterval),
		Logger:                 slog.New(quietMochi{o.Logger.Handler()}),
		// While a client's outbound queue is not empty, mochi gathers its
		// packets in a buffer and writes when it holds this much: 16 KiB
		// (mochi: 2 KiB) is about 250 fan-in messages per write() instead
		// of 30. The buffer exists only while a queue is busy, so idle
		// connections do not pay for it.
		ClientNetWriteBufferSize: 16 << 10,
		// mochi keeps a read buffer of this size for each client's life
		// (its default, 2 KiB, was ~40 % of an idle client's heap). Our TCP
		// listeners read through pooled buffers held only while bytes are
		// pending (listeners.ReadBufferSize; Unix), and websockets through
		// gorilla's buffer, so mochi's own only needs to hold small packets.
		ClientNetReadBufferSize: 128,
	})
	return b, nil
}

// capabilities maps the conf's limits onto mochi's.
func capabilities(cfg *mosquittoconf.Config) *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = retainForever
	// mochi copies a PUBLISH's user properties into its ack by default
	// (no upstream issue found; TestMochiStillInheritsPropertiesOnAck).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	// mochi allocates each client's outbound queue up front (8,192 pointers,
	// 64 KiB, by default). Its pages stay untouched while idle, but the GC
	// counts and scans it as live heap: with 1,000 clients the heap goal
	// grew by 64 MiB, and a connect storm spent a third of its CPU scanning
	// queues. Nothing needs 8,192 any more: QoS 0 fan-in goes through the
	// fast path, publishers wait at half the queue (fastpath), and so
	// does a new subscription's burst of retained messages. 1,024 was tried:
	// as fast, but +3 KB per idle connection (its 8 KiB gets touched).
	caps.MaximumClientWritesPending = 256
	if cfg.MaxConnections > 0 {
		caps.MaximumClients = int64(cfg.MaxConnections)
	}
	if cfg.MaxQueuedMessages > 0 { // a session's stored QoS 1/2 messages
		caps.MaximumInflight = uint16(min(cfg.MaxQueuedMessages, math.MaxUint16))
	} else {
		caps.MaximumInflight = math.MaxUint16
	}
	if cfg.MaxInflightMessages > 0 { // told to MQTT 5 clients as Receive Maximum
		caps.ReceiveMaximum = uint16(min(cfg.MaxInflightMessages, math.MaxUint16))
	}
	caps.MaximumPacketSize = uint32(MaxPacketSize(cfg))
	if !cfg.RetainAvailable {
		caps.RetainAvailable = 0
	}
	// max_qos and max_topic_alias: the check made every listener agree.
	// mochi enforces both and tells MQTT 5 clients in the CONNACK.
	caps.MaximumQos = byte(cfg.MaxQoS)
	caps.TopicAliasMaximum = uint16(cfg.MaxTopicAlias)
	if cfg.PersistentClientExpiration > 0 {
		// mochi keeps a disconnected session for this long when the client
		// set no shorter expiry (every 3.x persistent session), and caps
		// what an MQTT 5 client asks for.
		caps.MaximumSessionExpiryInterval = uint32(min(cfg.PersistentClientExpiration, math.MaxUint32))
	}
	return caps
}

// wireOptions are the conf values Mosquitto advertises in its CONNACK.
func wireOptions(cfg *mosquittoconf.Config) mosquittowire.Options {
	return mosquittowire.Options{
		MaxTopicAlias:   uint16(cfg.MaxTopicAlias),
		ReceiveMaximum:  uint16(min(cfg.MaxInflightMessages, math.MaxUint16)),
		MaxPacketSize:   uint32(cfg.MaxPacketSize),
		MaxQoS:          byte(cfg.MaxQoS),
		RetainAvailable: cfg.RetainAvailable,
	}
}

// MaxPacketSize is the largest packet a client may send, in bytes:
// max_packet_size when set; else listeners.DefaultMaxPacketSize, raised to
// let a message of message_size_limit through (with room for its topic and
// properties). mochi refuses a larger packet from its fixed header.
func MaxPacketSize(cfg *mosquittoconf.Config) int {
	if cfg.MaxPacketSize > 0 {
		return cfg.MaxPacketSize
	}
	const headroom = 128 << 10 // topic (up to 64 KiB) and properties
	return min(max(listeners.DefaultMaxPacketSize, cfg.MessageSizeLimit+headroom), 268435455+5)
}

// Limits are the listeners' shared bounds, with their live figures.
func (b *Broker) Limits() *listeners.Limits { return b.limits }

// sysInterval turns sys_interval into mochi's tick; 0 (off) becomes a tick
// too long to ever come.
func sysInterval(seconds int) int64 {
	if seconds <= 0 {
		return math.MaxInt32
	}
	return int64(seconds)
}

// Start opens the store and the listeners and starts serving. Errors name
// the conf option and line they come from.
func (b *Broker) Start() error {
	if err := b.addHooks(); err != nil {
		return err
	}
	if err := b.addListeners(); err != nil {
		_ = b.server.Close()
		return err
	}
	if err := b.server.Serve(); err != nil {
		_ = b.server.Close()
		return fmt.Errorf("%s: %w", b.where("persistence"), err)
	}
	if err := b.startBridges(); err != nil {
		_ = b.server.Close()
		return err
	}
	if b.cfg.PidFile != "" {
		if err := os.WriteFile(b.cfg.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			b.log.Warn("pid_file not written", "where", b.where("pid_file"), "error", err)
		}
	}
	return nil
}

func (b *Broker) addHooks() error {
	cfg := b.cfg
	var err error
	// First: every publish that reaches the broker is counted by whose it is.
	b.traffic = &traffic.Counts{IsBox: b.opts.IsBoxUser}
	if err := b.server.AddHook(&traffic.Hook{Counts: b.traffic}, nil); err != nil {
		return err
	}
	def := securityOf(cfg.Security)
	if len(cfg.Listeners) == 0 && cfg.Security.AllowAnonymous == nil {
		// Mosquitto 2 with no listener configured serves loopback only and
		// lets anonymous clients in there.
		def.AllowAnonymous = true
	}
	// use_identity_as_username, use_subject_as_username: the name is set
	// before admit (use_username_as_clientid takes it); the will is judged
	// after admit has settled the id, and the client let in before the
	// password hook, which would judge the CONNECT's own login (mochi lets
	// in whom any hook lets in). b.auth is made below, before any client.
	var certAdmits *certuser.Admits
	if rules := b.certRules(); len(rules) > 0 {
		var names *certuser.Names
		names, certAdmits = certuser.New(certuser.Config{
			Server:      b.server,
			Rules:       rules,
			WillAllowed: func(cl *mqtt.Client, topic string) bool { return b.auth.MayWrite(cl, topic) },
			Reserved:    auth.ReservedUser,
			Logger:      b.log,
		})
		if err := b.server.AddHook(names, nil); err != nil {
			return err
		}
	}
	// Client ids first: the id it sets is the one the password check,
	// the ACLs and the session see.
	if err := b.server.AddHook(admit.New(b.server, cfg.ClientIDPrefixes, b.admitRules(), b.log), nil); err != nil {
		return err
	}
	if certAdmits != nil {
		if err := b.server.AddHook(certAdmits, nil); err != nil {
			return err
		}
	}
	// Mends of mochi's connection and packet handling, run as one hook:
	// a device that reconnects under its own id stays registered while its
	// old connection is cleaned up; a client's packet ids apart from the
	// broker's own; a delivery held back for Receive Maximum stays in
	// flight once sent; answers in Mosquitto's bytes (before the hooks that
	// change what a client sends, mountpoint, so filters are judged as the
	// client wrote them).
	b.mends = newHookGroup()
	for _, h := range []mqtt.Hook{takeover.New(b.server, b.log), packetids.New(), heldback.New(b.server), mosquittowire.New(wireOptions(cfg))} {
		if err := b.mends.add(h); err != nil {
			return err
		}
	}
	if err := b.server.AddHook(b.mends, nil); err != nil {
		return err
	}
	if cfg.MemoryLimit > 0 {
		if err := b.server.AddHook(memlimit.New(b.server, uint64(cfg.MemoryLimit), b.log), nil); err != nil {
			return err
		}
	}
	if mps := b.mountPoints(); len(mps) > 0 {
		if err := b.server.AddHook(mountpoint.New(mps), nil); err != nil {
			return err
		}
	}
	b.auth, err = auth.NewHook(def, b.perListenerSecurity(), b.log)
	if err != nil {
		return err
	}
	b.auth.SetBoxAccounts(b.opts.BoxAccounts)
	certNamed := map[string]bool{}
	for id := range b.certRules() {
		certNamed[id] = true
	}
	b.auth.SetCertListeners(certNamed)
	if err := b.server.AddHook(b.auth, b.server); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	rules := policy.Rules{MaxKeepalive: cfg.MaxKeepalive, MessageSizeLimit: cfg.MessageSizeLimit, ConnectionMessages: cfg.ConnectionMessages, SessionExpiry: cfg.PersistentClientExpiration > 0}
	if err := b.server.AddHook(policy.New(b.server, rules, b.log), nil); err != nil {
		return err
	}
	if err := b.server.AddHook(inorder.New(b.server, b.log), nil); err != nil {
		return err
	}
	var store *durable.Hook
	if cfg.Persistence {
		path := b.StorePath()
		opts, err := durable.Options(path)
		if err != nil {
			return fmt.Errorf("%s: %w", b.where("persistence_location"), err)
		}
		store = durable.New()
		if err := b.server.AddHook(store, opts); err != nil {
			return fmt.Errorf("%s: store %s: %w", b.where("persistence"), path, err)
		}
	}
	if cfg.MaxQueuedBytes > 0 {
		// After the store, which saves a queued message before this hook
		// may take it out again (and tells the store so).
		qc := queuebytes.Config{Server: b.server, Limit: cfg.MaxQueuedBytes, Logger: b.log}
		if store != nil {
			qc.Dropped = store.OnQosDropped
		}
		if err := b.server.AddHook(queuebytes.New(qc), nil); err != nil {
			return err
		}
	}
	inbound := bridge.InboundHook(b.server, b.log)
	b.mends.addReader(inbound)
	if err := b.server.AddHook(withoutRead{inbound}, nil); err != nil {
		return err
	}
	// The retain-forever bound must not reach subscribers as an expiry.
	if err := b.server.AddHook(&expiry.Hook{}, nil); err != nil {
		return err
	}
	version := "gatewayd " + b.opts.Version + " (mochi-mqtt " + mqtt.Version + ")"
	sys := systopics.New(b.server, version, b.log)
	sys.Extra = func() map[string]string {
		out := b.bridgeTopics()
		maps.Copy(out, b.traffic.Topics(b.server))
		return out
	}
	if err := b.server.AddHook(sys, nil); err != nil {
		return err
	}
	// Last, so that every other hook has seen a publish it takes: plain
	// QoS 0 messages are encoded once and written once per read burst, and
	// publishers wait for a slow subscriber instead of mochi dropping its
	// messages.
	b.fast = fastpath.New(b.server, fastpath.Config{
		ReadAllowed: func(cl *mqtt.Client, topic string) bool { return b.auth.OnACLCheck(cl, topic, false) },
		Traffic:     b.traffic,
	})
	return b.server.AddHook(b.fast, nil)
}

// startBridges runs the conf's `connection` blocks inside this process.
func (b *Broker) startBridges() error {
	if len(b.cfg.Bridges) == 0 {
		return nil
	}
	host, _ := os.Hostname()
	storeDir := ""
	if b.cfg.Persistence {
		storeDir = b.cfg.PersistenceLocation
		if storeDir == "" {
			storeDir = "."
		}
	}
	m, err := bridge.New(bridge.Options{
		Server:    b.server,
		Bridges:   b.cfg.Bridges,
		StoreDir:  storeDir,
		MaxQueued: b.cfg.MaxQueuedMessages,
		// max_inflight_messages: the default bridge_receive_maximum.
		MaxInflight: b.cfg.MaxInflightMessages,
		Hostname:    host,
		Logger:      b.log,
	})
	if err != nil {
		return err
	}
	if err := m.Start(context.Background()); err != nil {
		return err
	}
	b.mu.Lock()
	b.bridges = m
	b.mu.Unlock()
	return nil
}

// BridgeStats are the bridges' live figures (nil without bridges).
func (b *Broker) BridgeStats() []bridge.Stats {
	b.mu.Lock()
	m := b.bridges
	b.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.Stats()
}

// bridgeTopics publishes each bridge's figures as JSON on
// $SYS/broker/bridges/<name>, so the console and gwctl, which live in
// another process, can show them.
func (b *Broker) bridgeTopics() map[string]string {
	out := map[string]string{}
	for _, s := range b.BridgeStats() {
		j, err := json.Marshal(s)
		if err == nil {
			out["$SYS/broker/bridges/"+s.Name] = string(j)
		}
	}
	return out
}

// StorePath is where the broker keeps its store.
func (b *Broker) StorePath() string { return b.cfg.StorePath() }

func securityOf(s mosquittoconf.Security) auth.Security {
	out := auth.Security{PasswordFile: s.PasswordFile, ACLFile: s.ACLFile}
	if s.AllowAnonymous != nil {
		out.AllowAnonymous = *s.AllowAnonymous
	}
	return out
}

// perListenerSecurity is nil unless per_listener_settings is true.
func (b *Broker) perListenerSecurity() map[string]auth.Security {
	if !b.cfg.PerListenerSettings {
		return nil
	}
	out := map[string]auth.Security{}
	for i, l := range b.effectiveListeners() {
		out[listenerID(i, l)] = securityOf(l.Security)
	}
	return out
}

// mountPoints are the listeners' mount_point prefixes, by listener id.
func (b *Broker) mountPoints() map[string]string {
	out := map[string]string{}
	for i, l := range b.effectiveListeners() {
		if l.MountPoint != "" {
			out[listenerID(i, l)] = l.MountPoint
		}
	}
	return out
}

// admitRules are each listener's admission options, by listener id.
func (b *Broker) admitRules() map[string]admit.Rules {
	out := map[string]admit.Rules{}
	for i, l := range b.effectiveListeners() {
		sec := b.cfg.SecurityFor(l)
		out[listenerID(i, l)] = admit.Rules{
			RefuseZeroLength:       sec.RefuseZeroLengthClientID,
			AutoIDPrefix:           sec.AutoIDPrefix,
			UseUsernameAsClientID:  l.UseUsernameAsClientID,
			AcceptProtocolVersions: l.AcceptProtocolVersions,
			MaxTopicAliasBroker:    uint16(l.MaxTopicAliasBroker),
		}
	}
	return out
}

// certRules are the listeners whose clients are named by their
// certificates, by listener id.
func (b *Broker) certRules() map[string]certuser.From {
	out := map[string]certuser.From{}
	for i, l := range b.effectiveListeners() {
		switch {
		case l.UseIdentityAsUsername: // Mosquitto: it wins when both are set
			out[listenerID(i, l)] = certuser.CN
		case l.UseSubjectAsUsername:
			out[listenerID(i, l)] = certuser.Subject
		}
	}
	return out
}

// effectiveListeners are the conf's listeners, or Mosquitto's default of
// a loopback-only listener on 1883 when there are none.
func (b *Broker) effectiveListeners() []mosquittoconf.Listener {
	if len(b.cfg.Listeners) > 0 {
		return b.cfg.Listeners
	}
	return []mosquittoconf.Listener{{Port: 1883, Address: "127.0.0.1", Protocol: "mqtt", MaxQoS: 2, MaxTopicAlias: 10, MaxTopicAliasBroker: 10}}
}

func listenerID(i int, l mosquittoconf.Listener) string {
	return fmt.Sprintf("%s:%d#%d", l.Protocol, l.Port, i+1)
}

func (b *Broker) addListeners() error {
	for i, l := range b.effectiveListeners() {
		id := listenerID(i, l)
		where := fmt.Sprintf("%s:%d", l.Pos.File, l.Pos.Line)
		lc := listeners.Config{
			ID:      id,
			Address: net.JoinHostPort(l.Address, strconv.Itoa(l.Port)),
			Guard:   b.opts.Guard,
			Wrap:    b.wrapConn,
			Limits:  b.limits,
			Origins: l.WebsocketsOrigins,
			// socket_domain and bind_interface
			Network:   map[string]string{"ipv4": "tcp4", "ipv6": "tcp6"}[l.SocketDomain],
			Interface: l.BindInterface,
			// http_dir and websockets_headers_size (websockets)
			HTTPDir:        l.HTTPDir,
			MaxHeaderBytes: b.cfg.WebsocketsHeadersSize,
		}
		if l.MountPoint != "" {
			// mount_point: topics are rewritten by a hook as they are
			// written, which the fast path's own writes would skip.
			lc.Wrap = b.opts.WrapConn
		}
		if l.TLS() {
			tc, err := listeners.TLSConfig(l.CertFile, l.KeyFile, l.CAFile, l.CAPath, l.RequireCertificate, l.TLSVersion)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if l.IgnoreCertDates && tc.ClientCAs != nil {
				listeners.IgnoreClientCertDates(tc)
			}
			if l.CRLFile != "" {
				if err := listeners.AddCRL(tc, l.CRLFile); err != nil {
					return fmt.Errorf("%s:%d: %w", l.Where["crlfile"].File, l.Where["crlfile"].Line, err)
				}
			}
			tc.CipherSuites = l.CipherSuites // ciphers; nil keeps Go's defaults
			lc.TLS = tc
		}
		var impl mochilisteners.Listener
		if l.Protocol == "websockets" {
			impl = listeners.NewWebsocket(lc)
		} else {
			impl = listeners.NewMQTT(lc)
		}
		if err := b.server.AddListener(impl); err != nil {
			return fmt.Errorf("%s: listener: %w", where, err)
		}
		b.mu.Lock()
		b.listeners = append(b.listeners, mqttListener{conf: l, impl: impl, id: id})
		b.mu.Unlock()
		b.log.Info("listener open", "protocol", l.Protocol, "address", impl.Address(), "tls", l.TLS())
	}
	return nil
}

// Addrs are the listeners' addresses, in conf order (the real ports of
// port 0 listeners).
func (b *Broker) Addrs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, len(b.listeners))
	for i, l := range b.listeners {
		out[i] = l.impl.Address()
	}
	return out
}

// wrapConn puts the fast path's connection outermost, over WrapConn's.
func (b *Broker) wrapConn(c net.Conn) net.Conn {
	if b.opts.WrapConn != nil {
		c = b.opts.WrapConn(c)
	}
	return fastpath.Wrap(c)
}

// Reload re-reads the password and ACL files (SIGHUP). On error the old
// ones stay in force.
func (b *Broker) Reload() error {
	if b.auth == nil {
		return nil
	}
	err := b.auth.Reload()
	if err == nil && b.fast != nil {
		b.fast.Changed() // the route cache's read-ACL answers
	}
	return err
}

// Close stops the broker gracefully: bridges stopped (they publish state
// 0), clients told the server is shutting down, listeners closed, store
// flushed and closed.
//
// The clients are disconnected here rather than by mochi's Close: mochi
// v2.7.9 gathers a listener's clients with a read lock taken twice
// (Clients.GetByListener calls Len), which deadlocks if a client is removed
// at that moment, and a stop that hangs would miss SIGTERM's 2 s
// (mochi-mqtt/server #488, fix in PR #489, open;
// TestMochiStillDeadlocksInGetByListener). Our listeners, once closed here,
// do nothing when mochi closes them again.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	bridges := b.bridges
	listeners := append([]mqttListener(nil), b.listeners...)
	b.mu.Unlock()
	if bridges != nil {
		if err := bridges.Stop(); err != nil {
			b.log.Warn("stop bridges", "error", err)
		}
	}
	for _, cl := range b.server.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	for _, l := range listeners {
		l.impl.Close(func(string) {}) // stop accepting, close what is left
	}
	b.waitClientsDetached(1500 * time.Millisecond)
	err := b.server.Close()
	if b.cfg.PidFile != "" {
		_ = os.Remove(b.cfg.PidFile)
	}
	return err
}

// waitClientsDetached waits, up to d, until every client connection's
// goroutine in mochi has finished.
func (b *Broker) waitClientsDetached(d time.Duration) {
	done := make(chan struct{})
	go func() {
		b.server.Listeners.ClientsWg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		b.log.Warn("clients still attached at stop", "waited", d)
	}
}

// where says FILE:LINE of an option, or the option alone when unknown.
func (b *Broker) where(option string) string {
	if p, ok := b.cfg.Where[option]; ok {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, option)
	}
	return option
}
