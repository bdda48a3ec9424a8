package fastpath_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"

	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/gateway/bridge"
	"github.com/homebox/gateway/gateway/fastpath"
	"github.com/homebox/gateway/gateway/listeners"
	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"
)

// testBroker is a real mochi broker wired as gateway.Broker wires it: the
// gateway's auth hook (with an ACL file), the fast path last, and listeners
// that hand mochi fastpath.Wrap(bridge.PrivateConn(conn)).
type testBroker struct {
	srv  *mqtt.Server
	auth *auth.Hook
	fast *fastpath.Hook
	addr string
	acl  string
	tls  string // with startBrokerTLS: a TLS listener's address
	ws   string // and a websockets listener's
	pki  *testkit.PKI
}

// allowAll is the ACL of tests that do not test ACLs.
const allowAll = "topic readwrite #\n"

// requireTaken fails the test unless the fast path took exactly want
// publishes (0: the message went mochi's way).
func (b *testBroker) requireTaken(t *testing.T, want int64) {
	t.Helper()
	if n := b.fast.Taken(); n != want {
		t.Fatalf("fast path took %d publishes, want %d", n, want)
	}
}

func startBroker(t *testing.T, acl string) *testBroker { return startBrokerWith(t, acl, false) }

// startBrokerTLS also opens a TLS and a websockets listener.
func startBrokerTLS(t *testing.T) *testBroker { return startBrokerWith(t, allowAll, true) }

func startBrokerWith(t *testing.T, acl string, more bool) *testBroker {
	t.Helper()
	b := &testBroker{acl: filepath.Join(t.TempDir(), "acl")}
	if err := os.WriteFile(b.acl, []byte(acl), 0o644); err != nil {
		t.Fatal(err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = math.MaxUint16
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.srv = mqtt.New(&mqtt.Options{Capabilities: caps, InlineClient: true, Logger: log, ClientNetWriteBufferSize: 16 << 10})
	var err error
	b.auth, err = auth.NewHook(auth.Security{AllowAnonymous: true, ACLFile: b.acl}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	must(t, b.srv.AddHook(b.auth, b.srv))
	must(t, b.srv.AddHook(bridge.InboundHook(b.srv, log), nil))
	b.fast = fastpath.New(b.srv, fastpath.Config{
		ReadAllowed: func(cl *mqtt.Client, topic string) bool { return b.auth.OnACLCheck(cl, topic, false) },
		StallAfter:  200 * time.Millisecond,
	})
	must(t, b.srv.AddHook(b.fast, nil))
	wrap := func(c net.Conn) net.Conn { return fastpath.Wrap(bridge.PrivateConn(c)) }
	l := listeners.NewMQTT(listeners.Config{ID: "t", Address: "127.0.0.1:0", Wrap: wrap})
	must(t, b.srv.AddListener(l))
	var extra []mochilisteners.Listener
	if more {
		b.pki = testkit.NewPKI(t)
		tc, err := listeners.TLSConfig(b.pki.ServerCert, b.pki.ServerKey, b.pki.CAFile, "", false, "")
		must(t, err)
		tl := listeners.NewMQTT(listeners.Config{ID: "tls", Address: "127.0.0.1:0", TLS: tc, Wrap: wrap})
		must(t, b.srv.AddListener(tl))
		wl := listeners.NewWebsocket(listeners.Config{ID: "ws", Address: "127.0.0.1:0", Wrap: wrap})
		must(t, b.srv.AddListener(wl))
		extra = append(extra, tl, wl)
	}
	must(t, b.srv.Serve())
	t.Cleanup(func() {
		// As Broker.Close does: mochi's Close can deadlock when a client
		// leaves meanwhile, so the listener and its clients go first.
		l.Close(func(string) {})
		for _, x := range extra {
			x.Close(func(string) {})
		}
		done := make(chan struct{})
		go func() { b.srv.Listeners.ClientsWg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("clients still attached 5 s after the listener closed")
		}
		_ = b.srv.Close()
	})
	b.addr = l.Address()
	if more {
		b.tls, b.ws = extra[0].Address(), extra[1].Address()
	}
	return b
}

// reloadACL rewrites the ACL file and reloads it as Broker.Reload does.
func (b *testBroker) reloadACL(t *testing.T, acl string) {
	t.Helper()
	must(t, os.WriteFile(b.acl, []byte(acl), 0o644))
	must(t, b.auth.Reload())
	b.fast.Changed()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// client is a raw MQTT connection.
type client struct {
	t    *testing.T
	c    net.Conn
	r    *mqttwire.Reader
	v5   bool
	mu   sync.Mutex // writes
	next uint16
}

type dialOpts struct {
	user   string
	v5     bool
	rcvbuf int // > 0: shrink the socket's receive buffer (a subscriber that will not read)
}

func dial(t *testing.T, addr, id string, o dialOpts) *client {
	t.Helper()
	c, err := dialTCP(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	return login(t, c, id, o)
}

func dialTCP(addr string, o dialOpts) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if o.rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	return d.Dial("tcp", addr)
}

// login sends CONNECT on c and waits for the CONNACK.
func login(t *testing.T, c net.Conn, id string, o dialOpts) *client {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	cl := &client{t: t, c: c, r: mqttwire.NewReader(c, 64<<10, 1<<20), v5: o.v5}
	if o.v5 {
		cl.write(connect5(id, o.user))
	} else {
		cl.write(mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, Username: o.user, KeepAlive: 60, CleanSession: true}))
	}
	p := cl.next1(5 * time.Second)
	if p.Type != mqttwire.CONNACK {
		t.Fatalf("%s: got packet type %d, want CONNACK", id, p.Type)
	}
	return cl
}

func (c *client) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.c.Write(b); err != nil {
		c.t.Error(err)
	}
}

// next1 reads one packet within d.
func (c *client) next1(d time.Duration) mqttwire.Packet {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	p, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// subscribe subscribes to filter and waits for the SUBACK (MQTT 5: with
// subscription options and, if id > 0, a subscription identifier).
func (c *client) subscribe(filter string, qos byte, noLocal bool, id int) {
	c.t.Helper()
	c.next++
	if c.v5 {
		c.write(subscribe5(c.next, filter, qos, noLocal, id))
	} else {
		c.write(mqttwire.AppendSubscribe(nil, c.next, filter, qos))
	}
	if p := c.next1(5 * time.Second); p.Type != mqttwire.SUBACK {
		c.t.Fatalf("got packet type %d, want SUBACK", p.Type)
	}
}

// msg is a received PUBLISH.
type msg struct {
	topic   string
	qos     byte
	retain  bool
	payload []byte
	props   []byte // MQTT 5 property block
}

// recv reads packets until a PUBLISH (acknowledging QoS 1) within d.
func (c *client) recv(d time.Duration) (msg, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	for {
		p, err := c.r.Next()
		if err != nil {
			return msg{}, err
		}
		if p.Type != mqttwire.PUBLISH {
			continue
		}
		return c.parse(p)
	}
}

func (c *client) parse(p mqttwire.Packet) (msg, error) {
	m := msg{qos: (p.Flags >> 1) & 3, retain: p.Flags&1 == 1}
	b := p.Body
	if len(b) < 2 {
		return m, fmt.Errorf("short PUBLISH")
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return m, fmt.Errorf("short PUBLISH topic")
	}
	m.topic, b = string(b[2:2+n]), b[2+n:]
	if m.qos > 0 {
		id := binary.BigEndian.Uint16(b)
		b = b[2:]
		c.write(mqttwire.AppendPuback(nil, id))
	}
	if c.v5 {
		l, k := uvarint(b)
		if k == 0 || len(b) < k+l {
			return m, fmt.Errorf("bad property length")
		}
		m.props, b = b[k:k+l], b[k+l:]
	}
	m.payload = append([]byte(nil), b...)
	return m, nil
}

func uvarint(b []byte) (v, n int) {
	shift := 0
	for i, x := range b {
		v |= int(x&0x7f) << shift
		if x&0x80 == 0 {
			return v, i + 1
		}
		shift += 7
		if i == 3 {
			break
		}
	}
	return 0, 0
}

func appendVarint(b []byte, n int) []byte {
	for {
		x := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			b = append(b, x|0x80)
			continue
		}
		return append(b, x)
	}
}

func str(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

func packet(typeFlags byte, body []byte) []byte {
	return append(appendVarint([]byte{typeFlags}, len(body)), body...)
}

func connect5(id, user string) []byte {
	flags := byte(0x02)
	if user != "" {
		flags |= 0x80
	}
	b := str(nil, "MQTT")
	b = append(b, 5, flags, 0, 60, 0)
	b = str(b, id)
	if user != "" {
		b = str(b, user)
	}
	return packet(0x10, b)
}

func subscribe5(pid uint16, filter string, qos byte, noLocal bool, id int) []byte {
	b := binary.BigEndian.AppendUint16(nil, pid)
	var props []byte
	if id > 0 {
		props = appendVarint([]byte{0x0B}, id)
	}
	b = append(appendVarint(b, len(props)), props...)
	b = str(b, filter)
	opts := qos
	if noLocal {
		opts |= 0x04
	}
	return packet(0x82, append(b, opts))
}

// publish5 is a QoS 0 MQTT 5 PUBLISH with a raw property block.
func publish5(topic string, props, payload []byte) []byte {
	b := str(nil, topic)
	b = append(appendVarint(b, len(props)), props...)
	return packet(0x30, append(b, payload...))
}

// seqPayload is publisher number and sequence number, padded to size.
func seqPayload(pub, seq, size int) []byte {
	p := make([]byte, max(size, 8))
	binary.BigEndian.PutUint32(p, uint32(pub))
	binary.BigEndian.PutUint32(p[4:], uint32(seq))
	return p
}

// publishSeq sends n QoS 0 messages numbered 0..n-1 on topic, many to a
// write, as a busy sensor hub would.
func (c *client) publishSeq(pub int, topic string, n int) { c.publishSized(pub, topic, n, 8) }

func (c *client) publishSized(pub int, topic string, n, size int) {
	var buf []byte
	for i := 0; i < n; i++ {
		buf = mqttwire.AppendPublish(buf, topic, 0, 0, seqPayload(pub, i, size))
		if len(buf) > 8<<10 || i == n-1 {
			c.write(buf)
			buf = buf[:0]
		}
	}
}

// seqChecker counts sequence-numbered messages per publisher, failing on a
// gap or a reorder.
type seqChecker struct {
	next map[uint32]uint32
	got  int
}

func (s *seqChecker) add(payload []byte) error {
	if len(payload) < 8 {
		return fmt.Errorf("payload of %d bytes, want at least 8", len(payload))
	}
	if s.next == nil {
		s.next = map[uint32]uint32{}
	}
	pub, seq := binary.BigEndian.Uint32(payload), binary.BigEndian.Uint32(payload[4:])
	if seq != s.next[pub] {
		return fmt.Errorf("publisher %d: message %d arrived when %d was due (lost or reordered)", pub, seq, s.next[pub])
	}
	s.next[pub] = seq + 1
	s.got++
	return nil
}
