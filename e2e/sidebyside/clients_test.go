package sidebyside

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/homebox/gateway/internal/testkit"
)

// The clients below write what their library reports into the transcript,
// each line starting with the client's name. Error texts that depend on
// timing (EOF or connection reset) are reduced to one word.

const waitLong = 10 * time.Second

// inbox keeps the messages a client received, as transcript text.
type inbox struct {
	mu   sync.Mutex
	msgs []string
}

func (b *inbox) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, s)
}

func (b *inbox) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.msgs)
}

// until waits for a message containing marker and takes every message
// received up to it (the marker's own line included) out of the inbox.
func (b *inbox) until(t *testing.T, marker string) []string {
	t.Helper()
	var got []string
	testkit.WaitForReport(t, waitLong, "message "+marker, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, m := range b.msgs {
			if strings.Contains(m, marker) {
				got = slices.Clone(b.msgs[:i+1])
				b.msgs = slices.Clone(b.msgs[i+1:])
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("received %q", b.all()) })
	return got
}

// within is until with a short deadline that is not a failure: what
// arrived up to marker, or nothing when it did not come within d.
func (b *inbox) within(marker string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		for i, m := range b.msgs {
			if strings.Contains(m, marker) {
				got := slices.Clone(b.msgs[:i+1])
				b.msgs = slices.Clone(b.msgs[i+1:])
				b.mu.Unlock()
				return got
			}
		}
		b.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// take waits until n messages arrived and returns them, leaving the
// inbox empty.
func (b *inbox) take(t *testing.T, n int) []string {
	t.Helper()
	testkit.WaitForReport(t, waitLong, fmt.Sprintf("%d messages", n), func() bool { return len(b.all()) >= n },
		func() string { return fmt.Sprintf("received %q", b.all()) })
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.msgs
	b.msgs = nil
	return got
}

// ---- MQTT 3.1 and 3.1.1: github.com/eclipse/paho.mqtt.golang ----

type c3 struct {
	name string
	e    *env
	c    mqtt3.Client
	in   inbox
	lost chan struct{}
}

// opts3 are the options every 3.x client starts from: one try, no
// reconnect, order kept.
func opts3(e *env, version uint, id string, clean bool) *mqtt3.ClientOptions {
	return mqtt3.NewClientOptions().AddBroker("tcp://" + e.addr()).SetProtocolVersion(version).
		SetClientID(id).SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).
		SetOrderMatters(true).SetConnectTimeout(waitLong).SetKeepAlive(30 * time.Second)
}

// connect3 connects and logs "NAME connack rc=R present=P" or the error.
func connect3(t *testing.T, e *env, name string, o *mqtt3.ClientOptions) *c3 {
	t.Helper()
	c := &c3{name: name, e: e, lost: make(chan struct{})}
	o.SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) {
		c.in.add(fmt.Sprintf("%s q%d r%d %s", m.Topic(), m.Qos(), b2i(m.Retained()), m.Payload()))
	})
	// Logged when waited for (waitLost), so the line's place in the
	// transcript does not depend on timing.
	o.SetConnectionLostHandler(func(mqtt3.Client, error) { close(c.lost) })
	c.c = mqtt3.NewClient(o)
	tok := c.c.Connect()
	if !tok.WaitTimeout(waitLong) {
		t.Fatalf("%s: no CONNACK", name)
	}
	ct := tok.(*mqtt3.ConnectToken)
	e.log("%s connack rc=%d present=%v err=%v", name, ct.ReturnCode(), ct.SessionPresent(), tok.Error())
	t.Cleanup(func() { c.c.Disconnect(0) })
	return c
}

func (c *c3) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	tok := c.c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(waitLong) {
		t.Fatalf("%s: no SUBACK", c.name)
	}
	c.e.log("%s suback %s %v err=%v", c.name, filter, tok.(*mqtt3.SubscribeToken).Result()[filter], tok.Error())
}

func (c *c3) publish(t *testing.T, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	tok := c.c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(waitLong) {
		t.Fatalf("%s: publish %s not acknowledged", c.name, topic)
	}
	if qos > 0 {
		c.e.log("%s published %s q%d err=%v", c.name, topic, qos, tok.Error())
	}
}

// disconnect sends DISCONNECT.
func (c *c3) disconnect() { c.c.Disconnect(100) }

func (c *c3) waitLost(t *testing.T) {
	t.Helper()
	select {
	case <-c.lost:
		c.e.log("%s connection lost", c.name)
	case <-time.After(waitLong):
		t.Fatalf("%s: connection not lost", c.name)
	}
}

// ---- MQTT 5: github.com/eclipse/paho.golang ----

type c5 struct {
	name string
	e    *env
	conn net.Conn
	c    *paho5.Client
	in   inbox
	gone chan struct{}
	why  string // how the connection ended; set before gone is closed
}

// connect5 connects cp and logs "NAME connack rc=R present=P" (with
// "assigned" when the server assigned an id) or the error.
func connect5(t *testing.T, e *env, name string, cp *paho5.Connect) *c5 {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr())
	if err != nil {
		t.Fatal(err)
	}
	c := &c5{name: name, e: e, conn: conn, gone: make(chan struct{})}
	var once sync.Once
	end := func(what string) {
		once.Do(func() { c.why = what; close(c.gone) })
	}
	c.c = paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(r paho5.PublishReceived) (bool, error) {
			p := r.Packet
			c.in.add(fmt.Sprintf("%s q%d r%d %s", p.Topic, p.QoS, b2i(p.Retain), p.Payload))
			return true, nil
		}},
		OnServerDisconnect: func(d *paho5.Disconnect) { end(fmt.Sprintf("server disconnect rc=0x%02x", d.ReasonCode)) },
		OnClientError:      func(error) { end("connection lost") },
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ca, err := c.c.Connect(ctx, cp)
	if ca == nil {
		e.log("%s connect failed: %s", name, errWord(err))
		return c
	}
	assigned := ""
	if ca.Properties != nil && ca.Properties.AssignedClientID != "" {
		assigned = " assigned"
	}
	e.log("%s connack rc=0x%02x present=%v%s", name, ca.ReasonCode, ca.SessionPresent, assigned)
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *c5) subscribe(t *testing.T, opts ...paho5.SubscribeOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: opts})
	if sa == nil {
		t.Fatalf("%s: subscribe: %v", c.name, err)
	}
	c.e.log("%s suback %s %x", c.name, opts[0].Topic, sa.Reasons)
}

func (c *c5) unsubscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ua, err := c.c.Unsubscribe(ctx, &paho5.Unsubscribe{Topics: []string{filter}})
	if ua == nil {
		t.Fatalf("%s: unsubscribe: %v", c.name, err)
	}
	c.e.log("%s unsuback %s %x", c.name, filter, ua.Reasons)
}

func (c *c5) publish(t *testing.T, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	r, err := c.c.Publish(ctx, &paho5.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if qos == 0 {
		if err != nil {
			t.Fatalf("%s: publish: %v", c.name, err)
		}
		return
	}
	if r == nil {
		t.Fatalf("%s: publish %s: %v", c.name, topic, err)
	}
	c.e.log("%s published %s q%d rc=0x%02x", c.name, topic, qos, r.ReasonCode)
}

func (c *c5) disconnect(rc byte) { _ = c.c.Disconnect(&paho5.Disconnect{ReasonCode: rc}) }

// kill closes the socket with no DISCONNECT.
func (c *c5) kill() { c.conn.Close() }

func (c *c5) waitGone(t *testing.T) {
	t.Helper()
	select {
	case <-c.gone:
		c.e.log("%s %s", c.name, c.why)
	case <-time.After(waitLong):
		t.Fatalf("%s: still connected", c.name)
	}
}

func u32(v uint32) *uint32 { return &v }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// errWord is an error as the transcript shows it: the library's words,
// without addresses or timing-dependent socket errors.
func errWord(err error) string {
	if err == nil {
		return "ok"
	}
	s := err.Error()
	for _, w := range []string{"EOF", "connection reset", "broken pipe", "use of closed"} {
		if strings.Contains(s, w) {
			return "connection closed"
		}
	}
	return s
}

// ---- mosquitto_pub and mosquitto_sub ----

// mosqPub runs mosquitto_pub and logs its exit code and output.
func mosqPub(t *testing.T, e *env, name string, args ...string) {
	t.Helper()
	testkit.RequireTool(t, "mosquitto_pub")
	out, code := testkit.Run(t, waitLong, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", e.port}, args...)...)
	e.log("%s", strings.Join(append([]string{name, fmt.Sprintf("exit=%d", code)}, strings.Fields(out)...), " "))
}

// mosqSub is a running mosquitto_sub printing "retain qos topic payload".
type mosqSub struct {
	p *testkit.Proc
}

var subackLine = regexp.MustCompile(`^Subscribed \(mid: \d+\): (.*)$`)

// startSub starts mosquitto_sub (with -d, to see its SUBACK) and waits for
// its SUBACK; it logs the granted codes.
func startSub(t *testing.T, e *env, name, port string, args ...string) *mosqSub {
	t.Helper()
	testkit.RequireTool(t, "mosquitto_sub")
	testkit.RequireTool(t, "stdbuf")
	// stdbuf: its stdout is a pipe; we must see lines as they happen.
	all := append([]string{"-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-d", "-F", "%r %q %t %p"}, args...)
	s := &mosqSub{p: testkit.Start(t, "stdbuf", all...)}
	m := s.p.WaitLine(t, waitLong, subackLine)
	e.log("%s suback %s", name, m[1])
	return s
}

// messages are the lines that are messages (not -d's protocol lines).
func (s *mosqSub) messages() []string {
	var out []string
	for _, l := range s.p.Lines() {
		if strings.HasPrefix(l, "Client ") || subackLine.MatchString(l) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// until waits for a message containing marker; it returns the messages up to it.
func (s *mosqSub) until(t *testing.T, marker string) []string {
	t.Helper()
	var got []string
	testkit.WaitForReport(t, waitLong, "message "+marker, func() bool {
		for i, m := range s.messages() {
			if strings.Contains(m, marker) {
				got = s.messages()[:i+1]
				return true
			}
		}
		return false
	}, func() string { return strings.Join(s.p.Lines(), "\n") })
	return got
}
