package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/homebox/gateway/internal/testkit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startBroker runs a real mochi server with the hook and one TCP listener on
// a free loopback port per id; it returns the server and id -> address.
func startBroker(t *testing.T, h *Hook, ids ...string) (*mqtt.Server, map[string]string) {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	if err := s.AddHook(h, s); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for _, id := range ids {
		l := listeners.NewTCP(listeners.Config{ID: id, Address: "127.0.0.1:0"})
		if err := s.AddListener(l); err != nil {
			t.Fatal(err)
		}
		addrs[id] = l.Address()
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBroker(t, s) })
	return s, addrs
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// pub runs mosquitto_pub; version is "mqttv31", "mqttv311" or "mqttv5".
func pub(t *testing.T, addr, version, id, user, pass, topic, msg string, extra ...string) (string, error) {
	t.Helper()
	host, port := hostPort(t, addr)
	args := []string{"-h", host, "-p", port, "-V", version, "-t", topic, "-m", msg, "-q", "1"}
	if id != "" {
		args = append(args, "-i", id)
	}
	if user != "" {
		args = append(args, "-u", user)
	}
	if pass != "" {
		args = append(args, "-P", pass)
	}
	return run(t, 10*time.Second, "mosquitto_pub", append(args, extra...)...)
}

// sub starts mosquitto_sub -v on filter and waits until the broker holds
// the subscription.
func sub(t *testing.T, s *mqtt.Server, addr, id, user, pass, filter string) *testkit.Buffer {
	t.Helper()
	host, port := hostPort(t, addr)
	out := &testkit.Buffer{}
	args := []string{"-h", host, "-p", port, "-V", "mqttv311", "-i", id, "-u", user, "-P", pass, "-t", filter, "-v", "-q", "1"}
	execCommand(t, out, "mosquitto_sub", args...)
	testkit.WaitFor(t, 10*time.Second, "subscriber "+id+" on "+filter, func() bool {
		cl, ok := s.Clients.Get(id)
		if !ok || cl.Closed() {
			return false
		}
		_, ok = cl.State.Subscriptions.Get(filter)
		return ok
	})
	return out
}

// v3 connects a paho.mqtt.golang MQTT 3.1.1 client.
func v3(t *testing.T, addr, id, user, pass string) (pahomqtt.Client, error) {
	t.Helper()
	opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second)
	c := pahomqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("v3 connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// v5 connects a paho.golang MQTT 5 client.
func v5(t *testing.T, addr, id, user, pass string, onMsg func(paho.PublishReceived) (bool, error)) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{ClientID: id, Conn: conn}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onMsg}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{
		ClientID: id, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: user != "", Password: []byte(pass), PasswordFlag: pass != "",
	})
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		conn.Close()
	})
	return c, ca, nil
}

// waitTok waits for a paho.mqtt.golang token with a deadline.
func waitTok(t *testing.T, tok pahomqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("MQTT 3.1.1 operation timed out")
	}
}

// closeBroker stops s once no client is left. mochi v2.7.9's Close can
// deadlock while a client is being removed: Clients.GetByListener takes the
// read lock twice, and a Delete waiting in between blocks both for good. So
// clients are stopped and awaited first, the clients' own cleanups having
// already disconnected most of them.
func closeBroker(t *testing.T, s *mqtt.Server) {
	t.Helper()
	attached := func() int {
		n := 0
		for _, cl := range s.Clients.GetAll() {
			if !cl.Net.Inline {
				n++
			}
		}
		return n
	}
	gone := func() bool { return attached() == 0 }
	deadline := time.Now().Add(5 * time.Second)
	for !gone() && time.Now().Before(deadline) {
		for _, cl := range s.Clients.GetAll() {
			if !cl.Net.Inline {
				cl.Stop(errors.New("test over"))
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !gone() {
		t.Errorf("%d clients still attached when closing the broker", attached())
	}
	_ = s.Close()
}
