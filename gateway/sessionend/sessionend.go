// Package sessionend makes a client that connects again right after its
// DISCONNECT find its old session gone when that session ended with the
// connection (MQTT 5 Session Expiry Interval 0), as Mosquitto does.
//
// mochi v2.7.9 reads each connection in its own goroutine. The old
// connection's goroutine stops the client on DISCONNECT and only then,
// after the OnDisconnect hooks, deletes the session; a new CONNECT with
// the same id handled in between inherits it (session present, the old
// subscriptions and queue). Mosquitto handles both in order and never
// does. This hook, just before mochi looks for the old session
// (OnSessionEstablish), waits (bounded) for a stopped connection whose
// session ends with it to be gone.
//
// A live connection taken over is not waited for: mochi resumes its
// session even with expiry 0, where Mosquitto does not (see docs/BROKER.md,
// "Side by side with Mosquitto"). TestMochiStillResumesAnEndedSession
// fails once mochi deletes the session before its goroutine ends.
package sessionend

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Hook is the mochi hook; add it with server.AddHook(sessionend.New(server), nil).
type Hook struct {
	mqtt.HookBase
	server *mqtt.Server
	wait   time.Duration
}

// New returns the hook for server. It waits at most one second: the old
// goroutine only runs the OnDisconnect hooks before the delete.
func New(server *mqtt.Server) *Hook { return &Hook{server: server, wait: time.Second} }

// ID names the hook.
func (h *Hook) ID() string { return "session-end" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnSessionEstablish }

// OnSessionEstablish waits until a stopped connection with cl's id whose
// session ends with it has been deleted.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	old, ok := h.server.Clients.Get(cl.ID)
	if !ok || old == cl || !old.Closed() || !endsWithConnection(old) {
		return
	}
	deadline := time.Now().Add(h.wait)
	for time.Now().Before(deadline) {
		if cur, ok := h.server.Clients.Get(cl.ID); !ok || cur != old {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// endsWithConnection is mochi's own test for a session that expires when
// its connection closes (3.x clean sessions are already not inherited).
// The expiry is read after Closed: the DISCONNECT that changed it was
// handled before the stop.
func endsWithConnection(cl *mqtt.Client) bool {
	return cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0
}
