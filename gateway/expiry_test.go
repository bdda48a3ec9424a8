package gateway_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/gateway"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/testkit"
)

// inProcess starts a broker in this process from conf, with
// persistent_client_expiration replaced by seconds (the option's smallest
// unit is an hour; its parsing is mosquittoconf's TestHonouredOptionValues).
func inProcess(t *testing.T, conf string, seconds int64) (addr string, log *testkit.Buffer) {
	t.Helper()
	cfg, ds := mosquittoconf.Check("m.conf", []byte(conf), t.TempDir())
	if !ds.OK() {
		t.Fatal(ds.Err())
	}
	if seconds > 0 {
		cfg.PersistentClientExpiration = seconds
	}
	log = &testkit.Buffer{}
	b, err := gateway.New(gateway.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()[0], log
}

// persistent connects a 3.1.1 client with clean session 0 (as Home
// Assistant and zigbee2mqtt do), subscribes and leaves; it returns
// whether the broker had a session for it.
func persistent(t *testing.T, addr, id string) bool {
	t.Helper()
	o := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(false).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := pahomqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	present := tok.(*pahomqtt.ConnectToken).SessionPresent()
	if st := c.Subscribe("ha/#", 1, nil); !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		t.Fatalf("subscribe: %v", st.Error())
	}
	c.Disconnect(100)
	return present
}

// TestPersistentClientExpiration: a persistent session left behind is
// removed after persistent_client_expiration, and kept for ever without it
// (Mosquitto's default).
func TestPersistentClientExpiration(t *testing.T) {
	const conf = "listener 0 127.0.0.1\nallow_anonymous true\n"
	expiring, log := inProcess(t, conf+"persistent_client_expiration 1h\n", 1)
	keeping, _ := inProcess(t, conf, 0)
	for _, a := range []string{expiring, keeping} {
		if persistent(t, a, "ha") {
			t.Fatal("a new client got a session")
		}
	}
	testkit.WaitFor(t, 15*time.Second, "the session to expire", func() bool {
		return strings.Contains(log.String(), "Expiring client ha due to timeout.")
	})
	if persistent(t, expiring, "ha") {
		t.Fatal("the session is still there after persistent_client_expiration")
	}
	if !persistent(t, keeping, "ha") {
		t.Fatal("without persistent_client_expiration the session was not kept")
	}
}
