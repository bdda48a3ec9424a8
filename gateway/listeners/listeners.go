// Package listeners provides the broker's mochi listeners: plain MQTT over
// TCP (optionally TLS) and MQTT over websockets (optionally wss).
//
// mochi's own listeners open their socket inside themselves, which leaves no
// place to judge a peer before bytes flow. These build the chain
// net.Listen → LAN guard → TLS → Wrap themselves, so the guard refuses a peer
// at accept time on every listener, websockets included, and no HTTP header
// can change the address judged. Init opens the socket, so a port already in
// use is an error from mochi's AddListener, and Address reports the real
// bound address, so tests can listen on port 0.
package listeners

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"

	"github.com/homebox/gateway/gateway/languard"
	"github.com/homebox/gateway/internal/ownhost"
)

// Config describes one listener.
type Config struct {
	// ID names the listener in mochi (clients are grouped by it) and in logs.
	ID string
	// Address is host:port to bind; ":1883" binds every interface.
	Address string
	// TLS, when set, makes the listener mqtts / wss.
	TLS *tls.Config
	// Guard, when set, refuses peers outside the allowed networks at accept
	// time. A nil Guard lets every peer in.
	Guard *languard.Guard
	// Wrap, when set, is applied to each accepted connection after TLS (for
	// websockets, to the MQTT byte stream carried by the frames), just before
	// mochi sees it. The bridge support uses it to accept Mosquitto's
	// try_private bridges.
	Wrap func(net.Conn) net.Conn
	// Limits are the CONNECT deadline, the half-open bound and the budget of
	// partly received packets, shared by every listener of the broker; nil
	// applies the defaults with a budget of this listener's own.
	Limits *Limits
	// Network is "tcp4" or "tcp6" to serve one IP version only
	// (socket_domain); "" serves both.
	Network string
	// Interface, when set, ties the socket to that network interface
	// (bind_interface).
	Interface string
	// HTTPDir, when set, is served over plain HTTP to requests that are
	// not websocket upgrades (http_dir; websockets only).
	HTTPDir string
	// MaxHeaderBytes bounds an HTTP request's headers (websockets_headers_size;
	// websockets only); 0 = 16 KiB.
	MaxHeaderBytes int
	// Origins are websockets_origin: browser origins allowed besides the
	// box's own (websockets only).
	Origins []string
	// OwnHosts decides which origins are the box's own (websockets only);
	// nil uses the machine's hostname and addresses.
	OwnHosts *ownhost.Hosts
}

// handshakeTimeout bounds a TLS handshake, so a peer that connects and stays
// silent does not hold a goroutine and a socket for ever.
const handshakeTimeout = 10 * time.Second

// listen opens the socket and puts the guard in front of it.
func listen(c Config) (net.Listener, error) {
	if c.ID == "" {
		return nil, errors.New("listener: empty ID")
	}
	network := c.Network
	if network == "" {
		network = "tcp"
	}
	var lc net.ListenConfig
	if c.Interface != "" {
		if _, err := net.InterfaceByName(c.Interface); err != nil {
			return nil, fmt.Errorf("listener %s: bind_interface %s: %w", c.ID, c.Interface, err)
		}
		lc.Control = bindToDevice(c.Interface)
	}
	raw, err := lc.Listen(context.Background(), network, c.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: cannot listen on %s: %w", c.ID, c.Address, err)
	}
	if c.Guard == nil {
		return raw, nil
	}
	return c.Guard.Listener(raw, c.ID), nil
}

// connSet remembers the connections a listener handed to mochi, so Close can
// end those mochi does not know yet (a peer that never sent CONNECT), and
// mochi's shutdown never waits on them.
type connSet struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	// wg counts connections between add and remove; Adds happen under mu
	// while not closed, so they all happen before closeAll's Wait.
	wg sync.WaitGroup
}

// add records c; it reports false, having closed c, once the set is closed.
// Every true add must be followed by one remove.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeAll closes every recorded connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// wait waits until every added connection is removed, up to d; it reports
// whether they all were.
func (s *connSet) wait(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func loggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

// socket is what both listeners share: their config, the guarded socket
// once open, and the connections they have handed to mochi.
type socket struct {
	cfg   Config
	done  chan struct{}
	conns connSet

	mu      sync.Mutex
	ln      net.Listener
	log     *slog.Logger
	closing bool
}

func newSocket(c Config) socket {
	if c.Limits == nil {
		c.Limits = &Limits{}
	}
	if c.OwnHosts == nil {
		c.OwnHosts = &ownhost.Hosts{}
	}
	return socket{cfg: c, done: make(chan struct{}), log: slog.Default()}
}

// ID returns the listener's ID.
func (s *socket) ID() string { return s.cfg.ID }

// Address returns the bound address once Init succeeded (the real port when
// the configured one was 0), else the configured address.
func (s *socket) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.cfg.Address
}

// openLocked opens the guarded socket for Init; s.mu is held. A port in
// use is reported here, naming the address.
func (s *socket) openLocked(log *slog.Logger) (net.Listener, error) {
	if s.ln != nil {
		return nil, fmt.Errorf("listener %s: already initialised", s.cfg.ID)
	}
	if s.closing {
		return nil, fmt.Errorf("listener %s: already closed", s.cfg.ID)
	}
	s.log = loggerOr(log)
	return listen(s.cfg)
}

// beginClose marks the listener closing and returns its socket; ok is
// false when it was closing already (mochi closes our listeners again
// after the broker has).
func (s *socket) beginClose() (ln net.Listener, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	s.closing = true
	close(s.done)
	return s.ln, true
}

// endClose lets mochi disconnect its clients through closeClients, then
// closes whatever connection is left (peers that never sent CONNECT,
// handshakes in flight) and waits, bounded, for mochi to let go of them.
func (s *socket) endClose(closeClients mochilisteners.CloseFn) {
	closeClients(s.cfg.ID)
	s.conns.closeAll()
	if !s.conns.wait(closeWait) {
		s.mu.Lock()
		log := s.log
		s.mu.Unlock()
		log.Warn("connections still held by the broker after close", "listener", s.cfg.ID, "wait", closeWait)
	}
}
