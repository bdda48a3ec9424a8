package listeners

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/homebox/gateway/internal/testkit"
)

// dialWSErr opens a websocket as an MQTT client would, optionally from a
// chosen loopback source address and with extra request headers.
func dialWSErr(url string, header http.Header, from net.IP, subprotocols ...string) (*websocket.Conn, error) {
	if len(subprotocols) == 0 {
		subprotocols = []string{"mqtt"}
	}
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if from != nil {
		nd.LocalAddr = &net.TCPAddr{IP: from}
	}
	d := websocket.Dialer{
		Subprotocols:     subprotocols,
		HandshakeTimeout: 5 * time.Second,
		NetDialContext:   nd.DialContext,
	}
	ws, resp, err := d.Dial(url, header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	return ws, err
}

func dialWS(t *testing.T, url string, header http.Header, from net.IP, subprotocols ...string) *websocket.Conn {
	t.Helper()
	ws, err := dialWSErr(url, header, from, subprotocols...)
	if err != nil {
		t.Fatalf("websocket dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

func pahoConnect(t *testing.T, url, id string, tlsCfg *tls.Config) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false).
		SetWriteTimeout(5 * time.Second)
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect to %s timed out", url)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// pahoRoundTrip publishes messages of several sizes, among them one far
// larger than a websocket read buffer, and checks they arrive whole and in
// order.
func pahoRoundTrip(t *testing.T, srv *mqtt.Server, url string, tlsCfg *tls.Config) {
	t.Helper()
	sub, err := pahoConnect(t, url, "ws-sub", tlsCfg)
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	pub, err := pahoConnect(t, url, "ws-pub", tlsCfg)
	if err != nil {
		t.Fatalf("publisher: %v", err)
	}
	got := make(chan []byte, 8)
	tok := sub.Subscribe("ws/test", 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	testkit.WaitFor(t, 5*time.Second, "subscription", subscribed(srv, "ws/test", "ws-sub"))

	payloads := [][]byte{[]byte("small"), bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16), {}, []byte("last")}
	for i, p := range payloads {
		tok := pub.Publish("ws/test", 1, false, p)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	for i, want := range payloads {
		select {
		case p := <-got:
			if !bytes.Equal(p, want) {
				t.Fatalf("message %d: got %d bytes, want %d (%q...)", i, len(p), len(want), trunc(want))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
	}
	cl, ok := srv.Clients.Get("ws-pub")
	if !ok || !strings.HasPrefix(cl.Net.Remote, "127.0.0.1:") {
		t.Fatalf("publisher's remote address in the broker: %+v", cl)
	}
}

func trunc(b []byte) []byte { return b[:min(len(b), 16)] }

func TestWebsocketPahoRoundTrip(t *testing.T) {
	l := NewWebsocket(Config{ID: "ws", Address: "127.0.0.1:0", Guard: mustGuard(t, "lan")})
	srv := startBroker(t, l)
	if _, p := hostPort(t, l.Address()); p == "0" || l.Protocol() != "ws" {
		t.Fatalf("Address %q Protocol %q", l.Address(), l.Protocol())
	}
	pahoRoundTrip(t, srv, "ws://"+l.Address()+"/mqtt", nil)
}

func TestWebsocketTLSPahoRoundTrip(t *testing.T) {
	pki := newTestPKI(t)
	cfg, err := TLSConfig(pki.ServerCert, pki.ServerKey, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	l := NewWebsocket(Config{ID: "wss", Address: "127.0.0.1:0", TLS: cfg, Guard: mustGuard(t, "lan")})
	srv := startBroker(t, l)
	if l.Protocol() != "wss" {
		t.Fatalf("Protocol = %q", l.Protocol())
	}
	pahoRoundTrip(t, srv, "wss://"+l.Address()+"/mqtt", &tls.Config{RootCAs: pki.Pool})

	// Plain ws on the wss port gets nowhere.
	if ws, err := dialWSErr("ws://"+l.Address()+"/mqtt", nil, nil); err == nil {
		_ = ws.Close()
		t.Fatal("plain websocket accepted on a wss listener")
	}
}

func TestWebsocketGuardRefusesLoopback(t *testing.T) {
	g := mustGuard(t, "10.0.0.0/8")
	l := NewWebsocket(Config{ID: "wsg", Address: "127.0.0.1:0", Guard: g})
	srv := startBroker(t, l)
	url := "ws://" + l.Address() + "/mqtt"

	if _, err := pahoConnect(t, url, "refused", nil); err == nil {
		t.Fatal("paho connected from loopback through a 10/8 guard")
	}
	n := g.RefusedOn("wsg")
	if n == 0 {
		t.Fatal("paho's refusal not counted")
	}
	// Headers claiming an allowed address change nothing.
	h := http.Header{}
	h.Set("X-Forwarded-For", "10.1.2.3")
	h.Set("Forwarded", "for=10.1.2.3")
	h.Set("X-Real-IP", "10.1.2.3")
	if ws, err := dialWSErr(url, h, nil); err == nil {
		_ = ws.Close()
		t.Fatal("forwarding headers let a refused peer in")
	}
	if g.RefusedOn("wsg") != n+1 {
		t.Fatalf("RefusedOn = %d, want %d", g.RefusedOn("wsg"), n+1)
	}
	if srv.Info.ClientsConnected != 0 {
		t.Fatalf("%d clients connected", srv.Info.ClientsConnected)
	}
}

// Only 127.0.0.1 allowed: a peer at 127.0.0.2 saying it is 127.0.0.1 in
// X-Forwarded-For is still refused, while 127.0.0.1 itself gets in.
func TestWebsocketForwardedHeaderFromRefusedPeer(t *testing.T) {
	g := mustGuard(t, "127.0.0.1/32")
	l := NewWebsocket(Config{ID: "wsx", Address: "127.0.0.1:0", Guard: g})
	startBroker(t, l)
	url := "ws://" + l.Address() + "/mqtt"
	h := http.Header{}
	h.Set("X-Forwarded-For", "127.0.0.1")
	if ws, err := dialWSErr(url, h, net.ParseIP("127.0.0.2")); err == nil {
		_ = ws.Close()
		t.Fatal("peer 127.0.0.2 with X-Forwarded-For: 127.0.0.1 was let in")
	}
	if g.RefusedOn("wsx") != 1 {
		t.Fatalf("RefusedOn = %d, want 1", g.RefusedOn("wsx"))
	}
	dialWS(t, url, h, net.ParseIP("127.0.0.1"))
	if g.RefusedOn("wsx") != 1 {
		t.Fatalf("allowed peer counted as refused")
	}
}

// Raw frames: a CONNECT split over three frames, two packets in one frame,
// and forwarding headers that must not alter the address the broker records.
func TestWebsocketFramesAndRemoteAddr(t *testing.T) {
	var fb firstBytes
	l := NewWebsocket(Config{ID: "wsr", Address: "127.0.0.1:0", Guard: mustGuard(t, "lan"), Wrap: fb.wrap})
	srv := startBroker(t, l)
	h := http.Header{}
	h.Set("X-Forwarded-For", "10.9.9.9")
	h.Set("X-Real-IP", "10.9.9.9")
	h.Set("Forwarded", "for=10.9.9.9")
	ws := dialWS(t, "ws://"+l.Address()+"/mqtt", h, nil)
	if ws.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt", ws.Subprotocol())
	}

	connect := []byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 3, 'r', 'a', 'w'}
	for _, part := range [][]byte{connect[:1], connect[1:4], connect[4:]} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatal(err)
		}
	}
	if got := readWS(t, ws, 4); !bytes.Equal(got, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK %x, want 20020000", got)
	}
	cl, ok := srv.Clients.Get("raw")
	if !ok {
		t.Fatal("client raw not in the broker")
	}
	if !strings.HasPrefix(cl.Net.Remote, "127.0.0.1:") || cl.Net.Remote != ws.LocalAddr().String() {
		t.Fatalf("broker recorded remote %q, want the TCP peer %s", cl.Net.Remote, ws.LocalAddr())
	}
	if first := fb.get(); !bytes.Equal(first, []byte{0x10}) {
		t.Fatalf("Wrap saw first bytes %x, want 10", first)
	}

	// Two PINGREQs in one frame: two PINGRESPs.
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{0xc0, 0, 0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	if got := readWS(t, ws, 4); !bytes.Equal(got, []byte{0xd0, 0, 0xd0, 0}) {
		t.Fatalf("PINGRESPs %x, want d000d000", got)
	}

	// A text frame is a protocol error: the session ends.
	if err := ws.WriteMessage(websocket.TextMessage, []byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if isTimeout(err) {
				t.Fatal("session not ended after a text frame")
			}
			break
		}
	}
	testkit.WaitFor(t, 5*time.Second, "client raw to leave", func() bool {
		cl, ok := srv.Clients.Get("raw")
		return !ok || cl.Closed()
	})
}

func readWS(t *testing.T, ws *websocket.Conn, n int) []byte {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	for len(out) < n {
		typ, p, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading websocket after %x: %v", out, err)
		}
		if typ != websocket.BinaryMessage {
			t.Fatalf("frame type %d, want binary", typ)
		}
		out = append(out, p...)
	}
	return out
}

func TestWebsocketSubprotocols(t *testing.T) {
	l := NewWebsocket(Config{ID: "wsp", Address: "127.0.0.1:0"})
	startBroker(t, l)
	url := "ws://" + l.Address() + "/mqtt"
	for _, sp := range []string{"mqtt", "mqttv3.1"} {
		if got := dialWS(t, url, nil, nil, sp).Subprotocol(); got != sp {
			t.Errorf("offered %q, server chose %q", sp, got)
		}
	}
	// A plain HTTP request is answered with an error, not a hang or a crash.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.Address()+"/mqtt", nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %s, want 400", resp.Status)
	}
}
