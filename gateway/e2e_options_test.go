package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/homebox/gateway/internal/mqttwire"
	"github.com/homebox/gateway/internal/testkit"
)

// connack5 connects an MQTT 5 client (paho.golang) and returns the
// CONNACK, whatever its reason code.
func connack5(t *testing.T, port, id, user string) *paho.Connack {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: id, Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true, Username: user, UsernameFlag: user != ""})
	if ca == nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	conn.Close()
	return ca
}

// connect3 connects an MQTT 3.1.1 client (paho.mqtt.golang) and returns
// the CONNACK return code (0 = accepted).
func connect3(t *testing.T, port, id, user string) byte {
	t.Helper()
	o := pahomqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:" + port).SetClientID(id).SetUsername(user).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
	c := pahomqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatal("no CONNACK within 15 s")
	}
	if tok.Error() == nil {
		c.Disconnect(100)
	}
	return tok.(*pahomqtt.ConnectToken).ReturnCode()
}

var autoID = regexp.MustCompile(`^gw-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestClientIDOptions: allow_zero_length_clientid, auto_id_prefix,
// clientid_prefixes and use_username_as_clientid, each on a listener of
// its own (per_listener_settings), against MQTT 5 and 3.1.1 clients.
func TestClientIDOptions(t *testing.T) {
	b := startBroker(t, `per_listener_settings true
listener 0 127.0.0.1
allow_anonymous true
auto_id_prefix gw-
listener 0 127.0.0.1
allow_anonymous true
allow_zero_length_clientid false
listener 0 127.0.0.1
allow_anonymous true
use_username_as_clientid true
`)
	prefixed, refusing, byUser := b.ports["mqtt"][0], b.ports["mqtt"][1], b.ports["mqtt"][2]

	t.Run("auto_id_prefix", func(t *testing.T) {
		ca := connack5(t, prefixed, "", "")
		if ca.ReasonCode != 0 || !autoID.MatchString(ca.Properties.AssignedClientID) {
			t.Fatalf("CONNACK %d, assigned id %q: want 0 and gw-<uuid>", ca.ReasonCode, ca.Properties.AssignedClientID)
		}
		if rc := connect3(t, prefixed, "", ""); rc != 0 {
			t.Fatalf("3.1.1 with empty id: return code %d", rc)
		}
		b.proc.WaitLine(t, 10*time.Second, regexp.MustCompile(`New client connected from \S+ as gw-[0-9a-f-]{36} \(p4`))
	})
	t.Run("allow_zero_length_clientid false", func(t *testing.T) {
		// Mosquitto 2.0 answers MQTT 5 "unspecified error", not 0x85
		// (mosquittowire.TestAnswersLikeMosquitto/noZeroLength).
		if ca := connack5(t, refusing, "", ""); ca.ReasonCode != 0x80 {
			t.Fatalf("v5 CONNACK %#x, want 0x80 (unspecified error, as Mosquitto 2.0)", ca.ReasonCode)
		}
		if rc := connect3(t, refusing, "", ""); rc != 2 {
			t.Fatalf("3.1.1 return code %d, want 2 (identifier rejected)", rc)
		}
		if ca := connack5(t, refusing, "lamp", ""); ca.ReasonCode != 0 {
			t.Fatalf("a client with an id got %#x", ca.ReasonCode)
		}
	})
	t.Run("use_username_as_clientid", func(t *testing.T) {
		sub, _ := subscribe(t, byUser, "-V", "mqttv311", "-i", "ignored-id", "-u", "kitchen", "-t", "x")
		_ = sub
		b.proc.WaitLine(t, 10*time.Second, regexp.MustCompile(`New client connected from \S+ as kitchen \(p4`))
		if ca := connack5(t, byUser, "x", ""); ca.ReasonCode != 0x87 {
			t.Fatalf("no username: v5 CONNACK %#x, want 0x87 (not authorized)", ca.ReasonCode)
		}
		if rc := connect3(t, byUser, "x", ""); rc != 5 {
			t.Fatalf("no username: 3.1.1 return code %d, want 5 (not authorized)", rc)
		}
	})
}

// TestClientIDPrefixes: clientid_prefixes lets in only the ids that start
// with it (Mosquitto answers "not authorised").
func TestClientIDPrefixes(t *testing.T) {
	b := startBroker(t, "clientid_prefixes zb-\nlistener 0 127.0.0.1\nallow_anonymous true\n")
	pub(t, b.port(), "-V", "mqttv5", "-i", "zb-plug", "-t", "t", "-m", "ok")
	testkit.RequireTool(t, "mosquitto_pub")
	for _, v := range []string{"mqttv5", "mqttv311"} {
		out, code := testkit.Run(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", b.port(), "-V", v, "-i", "plug", "-t", "t", "-m", "no")
		if code == 0 || !strings.Contains(strings.ToLower(out), "not authori") {
			t.Fatalf("%s: id without the prefix: exit %d, %q", v, code, out)
		}
	}
}

// aliasAnswer connects with MQTT 5 over a raw socket, publishes with topic
// alias n and a PINGREQ, and returns the type of the packet that comes
// back: PINGRESP when the alias was taken, DISCONNECT (0x94) when not.
func aliasAnswer(t *testing.T, port string, n uint16) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var out bytes.Buffer
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "alias"}}
	pub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: "a/b",
		Payload: []byte("x"), Properties: packets.Properties{TopicAlias: n, TopicAliasFlag: true}}
	ping := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}, ProtocolVersion: 5}
	for _, e := range []error{connect.ConnectEncode(&out), pub.PublishEncode(&out), ping.PingreqEncode(&out)} {
		if e != nil {
			t.Fatal(e)
		}
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := mqttwire.NewReader(conn, 4096, 1<<20)
	for range 2 { // the CONNACK, then the answer
		p, err := r.Next()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if p.Type != packets.Connack {
			return p.Type
		}
	}
	t.Fatal("two CONNACKs")
	return 0
}

// TestMaxQoSAndTopicAlias: max_qos caps what subscriptions are granted and
// is told to MQTT 5 clients; max_topic_alias bounds the aliases a client
// may use, 10 when not set (Mosquitto's default), and is told to MQTT 5
// clients (the whole CONNACK: mosquittowire.TestAnswersLikeMosquitto).
func TestMaxQoSAndTopicAlias(t *testing.T) {
	def := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\n")
	ca := connack5(t, def.port(), "a", "")
	if ca.Properties.MaximumQoS != nil {
		t.Fatalf("default maximum QoS %v, want absent (2)", *ca.Properties.MaximumQoS)
	}
	if ca.Properties.TopicAliasMaximum == nil || *ca.Properties.TopicAliasMaximum != 10 {
		t.Fatalf("topic alias maximum %v, want 10", ca.Properties.TopicAliasMaximum)
	}
	if got := aliasAnswer(t, def.port(), 10); got != packets.Pingresp {
		t.Fatalf("alias 10 of 10: answer type %d, want PINGRESP", got)
	}
	if got := aliasAnswer(t, def.port(), 11); got != packets.Disconnect {
		t.Fatalf("alias 11 of 10: answer type %d, want DISCONNECT", got)
	}
	_, granted := subscribe(t, def.port(), "-V", "mqttv311", "-q", "2", "-t", "a/#")
	if granted != "2" {
		t.Fatalf("default granted %q", granted)
	}

	b := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\nmax_qos 1\nmax_topic_alias 3\n")
	ca = connack5(t, b.port(), "a", "")
	if ca.Properties.MaximumQoS == nil || *ca.Properties.MaximumQoS != 1 {
		t.Fatalf("maximum QoS %v, want 1", ca.Properties.MaximumQoS)
	}
	if ca.Properties.TopicAliasMaximum == nil || *ca.Properties.TopicAliasMaximum != 3 {
		t.Fatalf("topic alias maximum %v, want 3", ca.Properties.TopicAliasMaximum)
	}
	if got := aliasAnswer(t, b.port(), 4); got != packets.Disconnect {
		t.Fatalf("alias 4 of 3: answer type %d, want DISCONNECT", got)
	}
	for _, v := range []string{"mqttv5", "mqttv311"} {
		sub, granted := subscribe(t, b.port(), "-V", v, "-q", "2", "-t", "m/"+v)
		if granted != "1" {
			t.Fatalf("%s: granted %q, want 1", v, granted)
		}
		pub(t, b.port(), "-V", v, "-q", "1", "-t", "m/"+v, "-m", "hello")
		equalLines(t, sub.waitMessages(t, 1), []string{"m/" + v + " hello"})
	}
}

// TestLogTimestamp: log_timestamp false drops the time from the broker's
// log lines; log_timestamp_format writes it in the owner's strftime format.
func TestLogTimestamp(t *testing.T) {
	b := startBroker(t, "log_timestamp false\nlistener 0 127.0.0.1\n")
	for _, l := range b.proc.Lines() {
		if strings.Contains(l, "time=") {
			t.Fatalf("log_timestamp false, and a line has a time: %s", l)
		}
	}
	b = startBroker(t, "log_timestamp_format %Y-%m-%dT%H:%M:%S\nlistener 0 127.0.0.1\n")
	b.proc.WaitLine(t, 5*time.Second, regexp.MustCompile(`^time=20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d level=INFO msg="broker running"`))
}

// TestAcceptProtocolVersions: a listener lets in only the protocol levels
// listed (Mosquitto 2.1); others get "unacceptable protocol version"
// (3.x: 1; MQTT 5: 0x84).
func TestAcceptProtocolVersions(t *testing.T) {
	b := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\naccept_protocol_versions 5\n"+
		"listener 0 127.0.0.1\nallow_anonymous true\naccept_protocol_versions 3, 4\n")
	only5, only3 := b.ports["mqtt"][0], b.ports["mqtt"][1]
	if ca := connack5(t, only5, "a", ""); ca.ReasonCode != 0 {
		t.Fatalf("v5 on a v5 listener: %#x", ca.ReasonCode)
	}
	if rc := connect3(t, only5, "a", ""); rc != 1 {
		t.Fatalf("3.1.1 on a v5 listener: return code %d, want 1", rc)
	}
	if ca := connack5(t, only3, "a", ""); ca.ReasonCode != 0x84 {
		t.Fatalf("v5 on a 3.x listener: %#x, want 0x84", ca.ReasonCode)
	}
	if rc := connect3(t, only3, "a", ""); rc != 0 {
		t.Fatalf("3.1.1 on a 3.x listener: return code %d", rc)
	}
	pub(t, only3, "-V", "mqttv31", "-t", "t", "-m", "v3.1 is let in")
}

// TestSocketDomainAndBindInterface: socket_domain serves one IP version
// only; bind_interface ties the listener to an interface, and one that
// does not exist stops the start with the listener's line.
func TestSocketDomainAndBindInterface(t *testing.T) {
	b := startBroker(t, "listener 0\nallow_anonymous true\nsocket_domain ipv4\nbind_interface lo\n"+
		"listener 0\nallow_anonymous true\nsocket_domain ipv6\n")
	v4, v6 := b.ports["mqtt"][0], b.ports["mqtt"][1]
	reach := func(host, port string) bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if !reach("127.0.0.1", v4) || reach("::1", v4) {
		t.Errorf("ipv4 listener: 127.0.0.1 %v, ::1 %v; want true, false", reach("127.0.0.1", v4), reach("::1", v4))
	}
	if reach("127.0.0.1", v6) || !reach("::1", v6) {
		t.Errorf("ipv6 listener: 127.0.0.1 %v, ::1 %v; want false, true", reach("127.0.0.1", v6), reach("::1", v6))
	}
	pub(t, v4, "-t", "t", "-m", "over lo")

	bin := testkit.Build(t, "./cmd/gatewayd")
	conf := t.TempDir() + "/m.conf"
	testkit.WriteFile(t, conf, "listener 0 127.0.0.1\nbind_interface nosuch0\n")
	out, code := testkit.Run(t, 20*time.Second, bin, "broker", "--config", conf)
	if code == 0 || !strings.Contains(out, conf+":1") || !strings.Contains(out, "bind_interface nosuch0") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// TestMemoryLimit: over memory_limit a new client is refused with "server
// unavailable" (MQTT 5: 0x88; 3.1.1: 3), and the broker goes on.
func TestMemoryLimit(t *testing.T) {
	b := startBroker(t, "memory_limit 4096\nlistener 0 127.0.0.1\nallow_anonymous true\n")
	if ca := connack5(t, b.port(), "a", ""); ca.ReasonCode != 0x88 {
		t.Fatalf("v5 CONNACK %#x, want 0x88", ca.ReasonCode)
	}
	if rc := connect3(t, b.port(), "a", ""); rc != 3 {
		t.Fatalf("3.1.1 return code %d, want 3", rc)
	}
	b.proc.WaitLine(t, 5*time.Second, regexp.MustCompile(`memory_limit: heap over the limit`))
}

// TestHTTPDirAndHeadersSize: a websockets listener with http_dir serves
// that folder to plain HTTP; websockets_headers_size bounds the request
// headers (Go's HTTP server allows 4 KiB more than asked).
func TestHTTPDirAndHeadersSize(t *testing.T) {
	dir := t.TempDir()
	testkit.WriteFile(t, dir+"/www/index.html", "<h1>box</h1>")
	b := startBroker(t, "websockets_headers_size 256\nlistener 0 127.0.0.1\nprotocol websockets\nallow_anonymous true\nhttp_dir "+dir+"/www\n"+
		"listener 0 127.0.0.1\nprotocol websockets\nallow_anonymous true\n")
	get := func(port, header string) (int, string) {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/index.html", nil)
		req.Header.Set("X-Big", header)
		req.Close = true // a fresh connection each time
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	withDir, without := b.ports["websockets"][0], b.ports["websockets"][1]
	if code, body := get(withDir, "x"); code != 200 || body != "<h1>box</h1>" {
		t.Fatalf("http_dir: %d %q", code, body)
	}
	if code, _ := get(without, "x"); code == 200 {
		t.Fatal("a listener without http_dir served a file")
	}
	if code, _ := get(withDir, strings.Repeat("x", 8<<10)); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("8 KiB of headers over websockets_headers_size 256: %d", code)
	}
}

// TestGlobalMaxConnections: global_max_connections (Mosquitto 2.1) bounds
// the clients connected to the whole broker.
func TestGlobalMaxConnections(t *testing.T) {
	b := startBroker(t, "global_max_connections 1\nlistener 0 127.0.0.1\nallow_anonymous true\nlistener 0 127.0.0.1\nallow_anonymous true\n")
	subscribe(t, b.ports["mqtt"][0], "-t", "held")
	if ca := connack5(t, b.ports["mqtt"][1], "second", ""); ca.ReasonCode != 0x89 {
		t.Fatalf("a second client on another listener: CONNACK %#x, want 0x89 (server busy)", ca.ReasonCode)
	}
}

// brokerAliases subscribes over a raw MQTT 5 socket that allows 100 topic
// aliases, has 12 topics published to it and returns the highest alias
// the broker used.
func brokerAliases(t *testing.T, port string) uint16 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var out bytes.Buffer
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		// One client id per call: a second "aliases" arriving while the
		// broker still ends the first connection raced its teardown (3 in
		// 20 runs lost the new subscription; noted in the closing note).
		Connect:    packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "aliases-" + port},
		Properties: packets.Properties{TopicAliasMaximum: 100}}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "al/#", Qos: 1}}}
	if err := connect.ConnectEncode(&out); err != nil {
		t.Fatal(err)
	}
	if err := sub.SubscribeEncode(&out); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := mqttwire.NewReader(conn, 4096, 1<<20)
	read := func() (byte, []byte) {
		p, err := r.Next()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return p.Type<<4 | p.Flags, p.Body
	}
	read() // CONNACK
	if h, _ := read(); h>>4 != packets.Suback {
		t.Fatalf("want SUBACK, got type %d", h>>4)
	}
	pc, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p := paho.NewClient(paho.ClientConfig{ClientID: "alias-pub-" + port, Conn: pc})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Connect(ctx, &paho.Connect{ClientID: "alias-pub-" + port, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := p.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("al/%d", i), QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var most uint16
	for range 12 {
		h, body := read()
		pk := packets.Packet{ProtocolVersion: 5}
		if err := pk.FixedHeader.Decode(h); err != nil {
			t.Fatal(err)
		}
		if err := pk.PublishDecode(body); err != nil {
			t.Fatal(err)
		}
		most = max(most, pk.Properties.TopicAlias)
	}
	return most
}

// TestMaxTopicAliasBroker: the broker uses at most max_topic_alias_broker
// topic aliases towards a client (Mosquitto 2.1; default 10), however many
// the client allows.
func TestMaxTopicAliasBroker(t *testing.T) {
	b := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\nlistener 0 127.0.0.1\nallow_anonymous true\nmax_topic_alias_broker 3\n")
	if got := brokerAliases(t, b.ports["mqtt"][0]); got != 10 {
		t.Errorf("default: highest alias %d, want 10", got)
	}
	if got := brokerAliases(t, b.ports["mqtt"][1]); got != 3 {
		t.Errorf("max_topic_alias_broker 3: highest alias %d, want 3", got)
	}
}

// TestNoDuplicatesForOverlappingSubscriptions: allow_duplicate_messages
// false, mochi's only way: a client whose two subscriptions match a topic
// gets the message once.
func TestNoDuplicatesForOverlappingSubscriptions(t *testing.T) {
	b := startBroker(t, "allow_duplicate_messages false\nlistener 0 127.0.0.1\nallow_anonymous true\n")
	sub, _ := subscribe(t, b.port(), "-q", "1", "-t", "foo/#", "-t", "foo/+/baz")
	pub(t, b.port(), "-q", "1", "-t", "foo/bar/baz", "-m", "once")
	pub(t, b.port(), "-q", "1", "-t", "foo/end", "-m", "marker")
	equalLines(t, sub.waitMessages(t, 2), []string{"foo/bar/baz once", "foo/end marker"})
}

// TestMountPoint: the clients of a listener with mount_point live under
// its prefix: what they publish gets it, what they receive has it taken
// off (retained messages and QoS 0 too), and they see nothing outside it.
func TestMountPoint(t *testing.T) {
	b := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\nlistener 0 127.0.0.1\nallow_anonymous true\nmount_point site1/\n")
	plain, mounted := b.ports["mqtt"][0], b.ports["mqtt"][1]
	pub(t, plain, "-r", "-t", "site1/kept", "-m", "retained")
	all, _ := subscribe(t, plain, "-t", "#")
	in, _ := subscribe(t, mounted, "-V", "mqttv5", "-t", "#")
	pub(t, mounted, "-t", "temp", "-m", "from inside")
	pub(t, plain, "-t", "other/x", "-m", "outside")
	pub(t, plain, "-q", "1", "-t", "site1/cmd", "-m", "to inside")
	equalLines(t, in.waitMessages(t, 3), []string{"kept retained", "temp from inside", "cmd to inside"})
	equalLines(t, all.waitMessages(t, 4), []string{"site1/kept retained", "site1/temp from inside", "other/x outside", "site1/cmd to inside"})
}
