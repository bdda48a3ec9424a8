package testkit

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// ServeMochi serves s, a bare mochi broker (the TestMochiStill... tests
// run mochi without our mends), with hooks added in order, on a loopback
// port; it is closed when the test ends. It returns the address.
func ServeMochi(t testing.TB, s *mqtt.Server, hooks ...mqtt.Hook) string {
	t.Helper()
	for _, h := range hooks {
		if err := s.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return l.Address()
}
