package certuser

import (
	"io"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestMochiStillLetsInWhomAnyHookLetsIn: mochi asks the hooks that provide
// OnConnectAuthenticate in turn and lets a client in at the first yes.
// Admits relies on it: it says yes for the clients it named, and the
// password hook after it, which would say no to a certificate's client
// sending no login, is never asked.
//
// When this fails, mochi wants every hook to agree (no upstream issue
// found; searched mochi-mqtt/server issues for "OnConnectAuthenticate
// multiple hooks"): the password hook must then let these clients through
// itself.
func TestMochiStillLetsInWhomAnyHookLetsIn(t *testing.T) {
	hooks := &mqtt.Hooks{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	_, admits := New(Config{Rules: map[string]From{"tls": CN}})
	if err := hooks.Add(admits, nil); err != nil {
		t.Fatal(err)
	}
	if err := hooks.Add(&refuseAll{}, nil); err != nil {
		t.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{Logger: hooks.Log})
	cl := srv.NewClient(nil, "tls", "c", false)
	if !hooks.OnConnectAuthenticate(cl, packets.Packet{}) {
		t.Fatal("mochi refused a client one hook let in and a later one refused: it wants all hooks to agree now")
	}
	other := srv.NewClient(nil, "plain", "c", false)
	if hooks.OnConnectAuthenticate(other, packets.Packet{}) {
		t.Fatal("a client of a listener without the option was let in by Admits")
	}
}

type refuseAll struct{ mqtt.HookBase }

func (h *refuseAll) ID() string           { return "refuse-all" }
func (h *refuseAll) Provides(b byte) bool { return b == mqtt.OnConnectAuthenticate }
func (h *refuseAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool {
	return false
}
