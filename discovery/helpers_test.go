package discovery

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/homebox/gateway/internal/testkit"
)

// startBroker runs a real mochi broker on a free loopback port.
func startBroker(t testing.TB, tune func(*mqttsrv.Options)) (*mqttsrv.Server, string) {
	t.Helper()
	opts := &mqttsrv.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(ioDiscard{}, nil))}
	if tune != nil {
		tune(opts)
	}
	srv := mqttsrv.New(opts)
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, l.Address()
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if p2 := "/usr/sbin/" + name; fileExists(p2) {
			return p2
		}
		t.Fatalf("%s is needed by this test and is not installed (Debian: make test-deps)", name)
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// pub publishes with the real mosquitto_pub; payload nil sends an empty
// (removing) message.
func pub(t testing.TB, addr, topic string, payload []byte, retain bool) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-h", host, "-p", port, "-q", "1", "-t", topic}
	if retain {
		args = append(args, "-r")
	}
	if payload == nil {
		args = append(args, "-n")
	} else {
		args = append(args, "-s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, needTool(t, "mosquitto_pub"), args...)
	if payload != nil {
		cmd.Stdin = bytes.NewReader(payload)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %s: %v: %s", topic, err, out)
	}
}

// sub1 reads one message (retained included) with the real mosquitto_sub.
func sub1(t testing.TB, addr, topic string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, needTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-t", topic, "-C", "1", "-W", "5").Output()
	if err != nil {
		t.Fatalf("mosquitto_sub %s: %v", topic, err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

func startService(t testing.TB, root, addr string, logs *testkit.Buffer) *Service {
	t.Helper()
	return startServiceWith(t, root, addr, logs, Limits{})
}

func startServiceWith(t testing.TB, root, addr string, logs *testkit.Buffer, lim Limits) *Service {
	t.Helper()
	var h slog.Handler = slog.NewTextHandler(ioDiscard{}, nil)
	if logs != nil {
		h = slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	s, err := Start(context.Background(), Options{
		Root:      root,
		BrokerURL: "mqtt://" + addr,
		Name:      "test box",
		Model:     "homebox-test",
		Version:   "1.2.3",
		MDNS:      MDNSOptions{Hostname: "testbox"},
		Logger:    slog.New(h),
		Limits:    lim,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ready(t testing.TB, s *Service) {
	t.Helper()
	select {
	case <-s.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("discovery never read the retained announces")
	}
}

func deviceWhere(s *Service, f func(Device) bool) (Device, bool) {
	for _, d := range s.Devices() {
		if f(d) {
			return d, true
		}
	}
	return Device{}, false
}

func mustDevice(t testing.TB, s *Service, id string) Device {
	t.Helper()
	d, ok := s.Device(id)
	if !ok {
		var ids []string
		for _, d := range s.Devices() {
			ids = append(ids, d.ID)
		}
		t.Fatalf("no device %q; have %v", id, ids)
	}
	return d
}

func entityIDs(d Device) string {
	var ids []string
	for _, e := range d.Entities {
		ids = append(ids, fmt.Sprintf("%s:%s", e.Component, e.ID))
	}
	return strings.Join(ids, ",")
}
