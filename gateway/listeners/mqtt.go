package listeners

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"
)

// closeWait bounds how long Close waits for the connections it closed to be
// released by mochi, so a stuck hook cannot hang the broker's shutdown.
const closeWait = 5 * time.Second

// MQTT is a mochi listener for MQTT over TCP, or over TLS when Config.TLS
// is set.
type MQTT struct {
	socket
}

var _ mochilisteners.Listener = (*MQTT)(nil)

// NewMQTT returns an MQTT listener for c; nothing is opened until Init.
func NewMQTT(c Config) *MQTT {
	return &MQTT{socket: newSocket(c)}
}

// Protocol returns "tls" or "tcp".
func (l *MQTT) Protocol() string {
	if l.cfg.TLS != nil {
		return "tls"
	}
	return "tcp"
}

// Init opens the socket: a port in use is reported here, naming the address.
func (l *MQTT) Init(log *slog.Logger) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln, err := l.openLocked(log)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

// Serve accepts connections until Close, handing each to establish in its
// own goroutine, as mochi's listeners do.
func (l *MQTT) Serve(establish mochilisteners.EstablishFn) {
	l.mu.Lock()
	ln, log := l.ln, l.log
	l.mu.Unlock()
	if ln == nil {
		log.Error("listener served before Init", "listener", l.cfg.ID)
		return
	}
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry rather
			// than stop serving for good.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "listener", l.cfg.ID, "error", err, "retry_in", delay)
			select {
			case <-l.done:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		go l.handle(c, establish)
	}
}

// handle runs TLS and Wrap on one accepted connection and gives it to mochi.
func (l *MQTT) handle(raw net.Conn, establish mochilisteners.EstablishFn) {
	if !l.conns.add(raw) {
		return
	}
	defer l.conns.remove(raw)
	half := l.cfg.Limits.track(raw, l.cfg.ID) // closes raw at the CONNECT deadline
	defer half.connected()

	// Under TLS too: the handshake and the records are read through it.
	conn := newPooledReadConn(raw)
	if l.cfg.TLS != nil {
		tc := tls.Server(conn, l.cfg.TLS)
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.log.Info("TLS handshake failed", "listener", l.cfg.ID, "peer", raw.RemoteAddr().String(), "error", err)
			_ = raw.Close()
			return
		}
		conn = tc
	}
	frames := newFrameConn(conn, l.cfg.Limits, half)
	defer frames.drop() // after establish: mochi reads no more
	conn = newAnswerConn(frames)
	if l.cfg.Wrap != nil {
		conn = l.cfg.Wrap(conn)
	}
	err := establish(l.cfg.ID, conn)
	// Closing conn closes raw under it once the bytes it accepted for the
	// peer are written (fastpath.Conn drains them, for up to a second): a
	// refusal CONNACK or the last messages before a DISCONNECT. Closing raw
	// here as well would cut them off.
	_ = conn.Close()
	logEstablishErr(l.log, l.cfg.ID, conn, err)
}

// logEstablishErr logs how a client connection ended when that is worth
// knowing; a peer hanging up is routine.
func logEstablishErr(log *slog.Logger, id string, conn net.Conn, err error) {
	if err == nil {
		return
	}
	level := slog.LevelWarn
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
		level = slog.LevelDebug
	}
	log.Log(context.Background(), level, "client connection ended", "listener", id,
		"peer", conn.RemoteAddr().String(), "error", err)
}

// Close stops accepting, lets mochi disconnect its clients through
// closeClients, then closes whatever connection is left (peers that never
// sent CONNECT, handshakes in flight).
func (l *MQTT) Close(closeClients mochilisteners.CloseFn) {
	ln, ok := l.beginClose()
	if !ok {
		return
	}
	if ln != nil {
		_ = ln.Close()
	}
	l.endClose(closeClients)
}
