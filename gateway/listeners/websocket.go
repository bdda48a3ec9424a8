package listeners

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"
)

// Websocket is a mochi listener for MQTT over websockets, or over secure
// websockets when Config.TLS is set. Any request path is accepted, as
// Mosquitto does; clients usually use /mqtt.
type Websocket struct {
	socket
	upgrader websocket.Upgrader

	// Under socket.mu:
	srv       *http.Server
	establish mochilisteners.EstablishFn
}

var _ mochilisteners.Listener = (*Websocket)(nil)

// NewWebsocket returns a websocket listener for c; nothing is opened until Init.
func NewWebsocket(c Config) *Websocket {
	l := &Websocket{socket: newSocket(c)}
	l.upgrader = websocket.Upgrader{
		Subprotocols:     []string{"mqtt", "mqttv3.1"},
		HandshakeTimeout: handshakeTimeout,
		CheckOrigin:      l.originAllowed,
	}
	return l
}

// originAllowed lets a browser in only from the box's own pages (its
// addresses, hostname, <hostname>.local, localhost; any port) or from an
// origin listed with websockets_origin. Any web page a LAN user opens could
// otherwise use the broker (subscribe to #, publish) from inside the LAN.
// Clients that send no Origin (devices, libraries) are not browsers and
// are let in; the request's Host is not consulted, as a page reached
// through DNS rebinding chooses it.
func (l *Websocket) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range l.cfg.Origins {
		if sameOrigin(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		l.log.Info("websocket refused: bad Origin", "listener", l.cfg.ID, "peer", r.RemoteAddr, "origin", origin)
		return false
	}
	if l.cfg.OwnHosts.Allowed(u.Host) {
		return true
	}
	l.log.Info("websocket refused: Origin is not the box's own nor in websockets_origin",
		"listener", l.cfg.ID, "peer", r.RemoteAddr, "origin", origin)
	return false
}

// sameOrigin compares a websockets_origin entry with an Origin header:
// scheme and host without case, the port when either names one. An entry
// without a scheme ("dash.example:8080") matches it over http and https.
func sameOrigin(entry, origin string) bool {
	entry = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(entry)), "/")
	origin = strings.ToLower(origin)
	if entry == "*" {
		return true
	}
	if !strings.Contains(entry, "://") {
		_, host, ok := strings.Cut(origin, "://")
		return ok && host == entry
	}
	return entry == origin
}

// Protocol returns "wss" or "ws".
func (l *Websocket) Protocol() string {
	if l.cfg.TLS != nil {
		return "wss"
	}
	return "ws"
}

// Init opens the socket: a port in use is reported here, naming the address.
func (l *Websocket) Init(log *slog.Logger) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln, err := l.openLocked(log)
	if err != nil {
		return err
	}
	// Every connection is half-open (CONNECT deadline, bound) from accept
	// until its first MQTT packet, upgrade included.
	ln = &trackingListener{Listener: ln, limits: l.cfg.Limits, id: l.cfg.ID}
	if l.cfg.TLS != nil {
		tc := l.cfg.TLS.Clone()
		// gorilla upgrades HTTP/1.1 only: never negotiate h2.
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	l.ln = ln
	l.srv = &http.Server{
		Handler: http.HandlerFunc(l.serveHTTP),
		// Also bounds the TLS handshake, which net/http runs under it.
		ReadHeaderTimeout: handshakeTimeout,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    cmp.Or(l.cfg.MaxHeaderBytes, 16<<10),
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, halfOpenKey{}, halfOpenOf(c))
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed { // never upgraded: no longer half-open
				halfOpenOf(c).connected()
			}
		},
	}
	return nil
}

// Serve serves HTTP on the guarded listener until Close.
func (l *Websocket) Serve(establish mochilisteners.EstablishFn) {
	l.mu.Lock()
	srv, ln, log := l.srv, l.ln, l.log
	l.establish = establish
	l.mu.Unlock()
	if srv == nil {
		log.Error("listener served before Init", "listener", l.cfg.ID)
		return
	}
	err := srv.Serve(ln)
	select {
	case <-l.done:
		return
	default:
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("websocket listener stopped", "listener", l.cfg.ID, "error", err)
	}
}

// serveHTTP upgrades one request and runs the MQTT session over it.
func (l *Websocket) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if l.cfg.HTTPDir != "" && !websocket.IsWebSocketUpgrade(r) {
		// http_dir: Mosquitto serves the folder's files to plain HTTP.
		http.FileServer(http.Dir(l.cfg.HTTPDir)).ServeHTTP(w, r)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered with an HTTP error already.
		l.log.Debug("websocket upgrade refused", "listener", l.cfg.ID, "peer", r.RemoteAddr, "error", err)
		return
	}
	// net/http's header deadlines must not outlive the upgrade: mochi sets
	// its own from the keepalive.
	_ = ws.NetConn().SetDeadline(time.Time{})
	wc := newWSConn(ws)
	if !l.conns.add(wc) { // closes wc when the listener is closing
		return
	}
	defer l.conns.remove(wc)

	l.mu.Lock()
	establish := l.establish
	l.mu.Unlock()

	half, _ := r.Context().Value(halfOpenKey{}).(*halfOpen)
	frames := newFrameConn(wc, l.cfg.Limits, half)
	defer frames.drop() // after establish: mochi reads no more
	var conn net.Conn = newAnswerConn(frames)
	if l.cfg.Wrap != nil {
		conn = l.cfg.Wrap(conn)
	}
	err = establish(l.cfg.ID, conn)
	_ = conn.Close() // closes wc, after what conn accepted is written (see MQTT.handle)
	logEstablishErr(l.log, l.cfg.ID, conn, err)
}

// halfOpenKey carries a connection's half-open entry to its request.
type halfOpenKey struct{}

// Close stops the HTTP server, lets mochi disconnect its clients, then closes
// any websocket left (upgraded connections are not the HTTP server's to close).
func (l *Websocket) Close(closeClients mochilisteners.CloseFn) {
	ln, ok := l.beginClose()
	if !ok {
		return
	}
	l.mu.Lock()
	srv := l.srv // set by Init only, which refuses once closing
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	if ln != nil {
		// Serve may not have run yet, in which case srv does not own ln.
		_ = ln.Close()
	}
	l.endClose(closeClients)
}
