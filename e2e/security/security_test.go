package security

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"
)

// TestBoxOnAHomeNetwork runs every case against one broker in one set of
// namespaces (making them and starting the broker is most of the cost).
// The cases run in order: the floods come last.
func TestBoxOnAHomeNetwork(t *testing.T) {
	h := newHarness(t)
	start := time.Now()
	t.Run("LANHostIsServed", h.lanHostIsServed)
	t.Run("OutsideRefusedBeforeAnyByte", h.outsideRefused)
	t.Run("ForwardedHeadersChangeNothing", h.forwardedHeaders)
	t.Run("WebsocketOrigin", h.websocketOrigin)
	t.Run("HugePacketClaims", h.hugeClaims)
	t.Run("SilentSockets", h.silentSockets)
	h.alive(t)
	t.Logf("cases took %s; broker pid %d unchanged, VmRSS %d KiB", time.Since(start).Round(time.Millisecond), h.pid, h.rssKiB(t))
}

// Finding 9: "lan" is the box's attached subnets. The LAN here is
// 192.0.2.0/24 and 2001:db8:1::/64, documentation ranges that no list of
// private ranges holds: a host on it is served over IPv4 and IPv6.
func (h *harness) lanHostIsServed(t *testing.T) {
	for _, host := range []string{boxV4, boxV6} {
		topic := "lan/" + host
		if out, err := h.mosquitto(t, "lan", "mosquitto_pub", "-h", host, "-p", mqttPort, "-t", topic, "-m", "hello", "-r", "-q", "1"); err != nil {
			t.Fatalf("mosquitto_pub from the LAN host to %s: %v\n%s\nbroker:\n%s", host, err, out, tail(h.broker.Output()))
		}
		out, err := h.mosquitto(t, "lan", "mosquitto_sub", "-h", host, "-p", mqttPort, "-t", topic, "-C", "1", "-W", "10")
		if err != nil || strings.TrimSpace(out) != "hello" {
			t.Fatalf("mosquitto_sub from the LAN host to %s: %v, got %q", host, err, out)
		}
	}
}

// A host outside the box's subnets, routed in, is refused before the broker
// reads a byte: the connection closes without a CONNACK. Over IPv4, IPv6,
// and IPv4 through an IPv6 socket (v4-mapped), on both listeners.
func (h *harness) outsideRefused(t *testing.T) {
	connect := mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: "outsider", KeepAlive: 30, CleanSession: true})
	for _, to := range []string{
		net.JoinHostPort(boxV4, mqttPort),
		net.JoinHostPort(boxV4, wsPort),
		net.JoinHostPort(boxV6, mqttPort),
		net.JoinHostPort(boxV6, wsPort),
		net.JoinHostPort("::ffff:"+boxV4, mqttPort),
	} {
		c, err := h.dial(t, "out", "", to)
		if errors.Is(err, syscall.ECONNRESET) {
			continue // accepted by the kernel and reset by the guard before connect returned
		}
		if err != nil {
			t.Fatalf("outside host cannot even open a TCP connection to %s: %v (the router must forward)", to, err)
		}
		_, _ = c.Write(connect)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if isTimeout(err) {
			t.Fatalf("%s from outside: connection still open after 5 s", to)
		}
		if len(got) > 0 {
			t.Fatalf("%s from outside: got % x, want the connection closed with nothing sent", to, got)
		}
	}
	if out, err := h.mosquitto(t, "out", "mosquitto_pub", "-h", boxV4, "-p", mqttPort, "-t", "x", "-m", "x"); err == nil {
		t.Fatalf("mosquitto_pub from outside succeeded:\n%s", out)
	}
	testkit.WaitFor(t, 5*time.Second, "the refusal logged", func() bool {
		return strings.Contains(h.broker.Output(), "peer outside allowed networks")
	})
	if strings.Contains(h.broker.Output(), "as outsider") {
		t.Fatal("the outsider's CONNECT was read")
	}
}

// wsDial upgrades to MQTT over websockets from namespace n.
func (h *harness) wsDial(t *testing.T, n, url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	var ws *websocket.Conn
	var resp *http.Response
	var err error
	h.ns.Do(n, func() {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		ws, resp, err = d.Dial(url, header)
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if ws != nil {
		t.Cleanup(func() { _ = ws.Close() })
	}
	return ws, resp, err
}

// Only the TCP peer is judged: headers claiming a LAN address do not let an
// outsider in, headers claiming an outside address do not shut a LAN host out.
func (h *harness) forwardedHeaders(t *testing.T) {
	liar := http.Header{
		"X-Forwarded-For": {lanV4},
		"X-Real-Ip":       {lanV4},
		"Forwarded":       {"for=" + lanV4},
	}
	_, resp, err := h.wsDial(t, "out", "ws://"+net.JoinHostPort(boxV4, wsPort)+"/mqtt", liar)
	if err == nil || resp != nil {
		t.Fatalf("outside websocket with forwarded headers naming the LAN: err %v, response %v; want no HTTP answer at all", err, resp)
	}
	honest := http.Header{"X-Forwarded-For": {outV4}, "Forwarded": {"for=" + outV4}}
	ws, _, err := h.wsDial(t, "lan", "ws://"+net.JoinHostPort(boxV4, wsPort)+"/mqtt", honest)
	if err != nil {
		t.Fatalf("LAN websocket with forwarded headers naming the outside refused: %v", err)
	}
	wsConnack(t, ws, "forwarded")
}

// wsConnack sends CONNECT over ws and wants a CONNACK accepting it.
func wsConnack(t *testing.T, ws *websocket.Conn, id string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.BinaryMessage, mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, KeepAlive: 30, CleanSession: true})); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil || len(b) < 4 || b[0] != 0x20 || b[3] != 0 {
		t.Fatalf("websocket %s: want CONNACK accepted, got % x, %v", id, b, err)
	}
}

// Finding 2: a web page a LAN user opens could use the broker through the
// websocket listener. Only the box's own origins (and websockets_origin)
// upgrade; devices and libraries send no Origin and are unaffected.
func (h *harness) websocketOrigin(t *testing.T) {
	url := "ws://" + net.JoinHostPort(boxV4, wsPort) + "/mqtt"
	for _, origin := range []string{"http://evil.example", "https://evil.example:8443", "http://" + lanV4 + ":8000"} {
		_, resp, err := h.wsDial(t, "lan", url, http.Header{"Origin": {origin}})
		if err == nil {
			t.Fatalf("Origin %s: upgraded; want refused", origin)
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("Origin %s: %v, response %v; want 403", origin, err, resp)
		}
	}
	for i, hdr := range []http.Header{
		{"Origin": {"http://" + boxV4 + ":8080"}}, // the console's page
		{"Origin": {"http://[" + boxV6 + "]"}},
		{"Origin": {"http://localhost:8080"}},
		{}, // no Origin: a device or a library
	} {
		ws, _, err := h.wsDial(t, "lan", url, hdr)
		if err != nil {
			t.Fatalf("%v: refused: %v", hdr, err)
		}
		wsConnack(t, ws, fmt.Sprintf("own-%d", i))
	}
}

// rawClient connects from the LAN host and completes an MQTT CONNECT.
func (h *harness) rawClient(t *testing.T, id string) net.Conn {
	t.Helper()
	c, err := h.dial(t, "lan", "", net.JoinHostPort(boxV4, mqttPort))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, KeepAlive: 60, CleanSession: true})); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 0x20 || b[3] != 0 {
		t.Fatalf("%s: want CONNACK accepted, got % x, %v", id, b, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// claim is a PUBLISH fixed header claiming n bytes, then 1 KB of them.
func claim(n int) []byte {
	return append(mqttwire.AppendFixedHeader(nil, mqttwire.PUBLISH, n), bytes.Repeat([]byte{'x'}, 1024)...)
}

// closedWithin reports whether the peer closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !isTimeout(err)
}

// rssLimitKiB is the broker's memory bound under these attacks (issue 14:
// "broker under 64 MiB").
const rssLimitKiB = 64 << 10

// Finding 3: six clients each claiming a 268,435,455-byte PUBLISH and
// sending 1 KB grew the broker to ~280 MiB and got it restarted. Now the
// claims over max_packet_size are refused from the header, claims under it
// are gathered as they arrive: RSS stays bounded, the pid does not change,
// the claimants are disconnected and a normal client is served meanwhile.
func (h *harness) hugeClaims(t *testing.T) {
	before := h.rssKiB(t)
	deadline := time.Now().Add(15 * time.Second)
	peak := before
	for round := range 10 {
		n := 6
		if round > 0 {
			n = 12 // a bounded loop of more: 6 + 9×12 = 114 claims
		}
		var conns []net.Conn
		for i := range n {
			c := h.rawClient(t, fmt.Sprintf("claim-%d-%d", round, i))
			if _, err := c.Write(claim(268435455)); err != nil && !errors.Is(err, net.ErrClosed) {
				t.Logf("claim %d/%d: write: %v", round, i, err)
			}
			conns = append(conns, c)
		}
		h.alive(t)
		peak = max(peak, h.rssKiB(t))
		for i, c := range conns {
			if !closedWithin(c, 5*time.Second) {
				t.Fatalf("round %d: claimant %d not disconnected within 5 s (VmRSS %d KiB, %d before)", round, i, h.rssKiB(t), before)
			}
		}
		if time.Now().After(deadline) {
			t.Logf("stopped after %d rounds (time bound)", round+1)
			break
		}
	}

	// Claims the default max_packet_size (8 MiB) allows, held open: 60 of
	// them, 1 KB sent each, while a normal client publishes and subscribes.
	var held []net.Conn
	for i := range 60 {
		c := h.rawClient(t, fmt.Sprintf("held-%d", i))
		if _, err := c.Write(claim(8<<20 - 64)); err != nil {
			t.Fatalf("held claim %d: %v", i, err)
		}
		held = append(held, c)
	}
	h.lanRoundTrip(t, "during-claims")
	peak = max(peak, h.rssKiB(t))
	for _, c := range held {
		_ = c.Close()
	}
	h.alive(t)
	t.Logf("VmRSS before %d KiB, peak %d KiB (limit %d KiB)", before, peak, rssLimitKiB)
	if peak > rssLimitKiB {
		t.Fatalf("broker VmRSS reached %d KiB under huge packet claims (limit %d KiB)", peak, rssLimitKiB)
	}
}

// lanRoundTrip publishes a retained message from the LAN host and reads it
// back with a second client.
func (h *harness) lanRoundTrip(t *testing.T, id string) {
	t.Helper()
	topic := "check/" + id
	if out, err := h.mosquitto(t, "lan", "mosquitto_pub", "-h", boxV4, "-p", mqttPort, "-i", id+"-pub", "-t", topic, "-m", id, "-r", "-q", "1"); err != nil {
		t.Fatalf("%s: mosquitto_pub: %v\n%s", id, err, out)
	}
	out, err := h.mosquitto(t, "lan", "mosquitto_sub", "-h", boxV4, "-p", mqttPort, "-i", id+"-sub", "-t", topic, "-C", "1", "-W", "10")
	if err != nil || strings.TrimSpace(out) != id {
		t.Fatalf("%s: mosquitto_sub: %v, got %q", id, err, out)
	}
}

// Finding 8: connections that never send CONNECT were kept for ever. 300 of
// them are closed at the CONNECT deadline; a client connects while they
// are open.
func (h *harness) silentSockets(t *testing.T) {
	const n = 300
	var silent []net.Conn
	start := time.Now()
	h.ns.Do("lan", func() {
		for i := range n {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(boxV4, mqttPort), 3*time.Second)
			if err != nil {
				t.Errorf("silent socket %d: %v", i, err)
				return
			}
			silent = append(silent, c)
		}
	})
	for _, c := range silent {
		t.Cleanup(func() { _ = c.Close() })
	}
	if len(silent) < n {
		t.FailNow()
	}
	h.lanRoundTrip(t, "during-silent")
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range silent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !closedWithin(c, time.Until(start.Add(connectTimeout+5*time.Second))) {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d silent sockets still open %s after accept (CONNECT deadline %s)", open, n, connectTimeout+5*time.Second, connectTimeout)
	}
	t.Logf("%d silent sockets closed %s after the first was opened", n, time.Since(start).Round(time.Millisecond))
	h.alive(t)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// runBounded runs cmd to its end, killing it after d.
func runBounded(cmd *exec.Cmd, d time.Duration) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s did not finish within %s", cmd.Path, d)
	}
}
