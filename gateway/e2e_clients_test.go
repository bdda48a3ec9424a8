package gateway_test

// The mosquitto.conf options devices feel, exercised with the client
// libraries they use (issue 16): Debian's python3-paho-mqtt and mqtt.js
// (zigbee2mqtt, Node-RED), MQTT 5 where the option is a v5 property. The
// other option tests use mosquitto_pub/sub and Go paho. Refusals are judged
// as refused or accepted only (Events.Accepted): their codes are the wire
// answers' tests'.

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testclients"
	"github.com/homebox/gateway/internal/testkit"
)

type copts = testclients.Options
type cmsg = testclients.Message

// combo is a library speaking one protocol version.
type combo struct {
	lib testclients.Lib
	v   int
}

// Each option is tried with both libraries, one speaking MQTT 3.1.1 and
// the other MQTT 5, which keeps the runs few (mqtt.js takes half a
// second to load); every combination where each matters.
var (
	pahoV5 = []combo{{testclients.Paho, 5}, {testclients.MQTTJS, 4}}
	pahoV4 = []combo{{testclients.Paho, 4}, {testclients.MQTTJS, 5}}
	bothV4 = []combo{{testclients.Paho, 4}, {testclients.MQTTJS, 4}}
	bothV5 = []combo{{testclients.Paho, 5}, {testclients.MQTTJS, 5}}
)

// eachLib runs f once per combination, as a subtest.
func eachLib(t *testing.T, combos []combo, f func(t *testing.T, lib testclients.Lib, v int)) {
	t.Helper()
	for _, c := range combos {
		t.Run(fmt.Sprintf("%s v%d", c.lib, c.v), func(t *testing.T) { f(t, c.lib, c.v) })
	}
}

// clientID is an id of its own per library, version and case, so cases
// never take over each other's sessions.
func clientID(lib testclients.Lib, v int, what string) string {
	return fmt.Sprintf("%s-%s-v%d", what, lib, v)
}

// startSub starts a sub script and waits for its SUBACK.
func startSub(t *testing.T, lib testclients.Lib, o copts) (*testclients.Client, testclients.Event) {
	t.Helper()
	c := testclients.Start(t, lib, testclients.Sub, o)
	ack, err := c.WaitEvent("suback", 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c, ack
}

// waitAll waits for a sub script to end (it got its Count messages) and
// returns what it received.
func waitAll(t *testing.T, c *testclients.Client) []string {
	t.Helper()
	es, err := c.Wait(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return es.Messages()
}

func wantAccepted(t *testing.T, es testclients.Events, want bool, what string) testclients.Event {
	t.Helper()
	if es.Accepted() != want {
		t.Fatalf("%s: accepted %v, want %v; events %+v", what, es.Accepted(), want, es)
	}
	ca, _ := es.Connack()
	return ca
}

func wantProp(t *testing.T, e testclients.Event, name string, want int) {
	t.Helper()
	if got, ok := e.Prop(name); !ok || got != want {
		t.Fatalf("CONNACK %s = %v (present %v), want %d; properties %v", name, got, ok, want, e.Props)
	}
}

// TestClientsClientIDOptions: auto_id_prefix, allow_zero_length_clientid
// and use_username_as_clientid, each on a listener of its own.
func TestClientsClientIDOptions(t *testing.T) {
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
		eachLib(t, pahoV4, func(t *testing.T, lib testclients.Lib, v int) {
			ca := wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: prefixed, Version: v}), true, "empty id")
			if id, _ := ca.Props["AssignedClientIdentifier"].(string); v == 5 && !autoID.MatchString(id) {
				t.Fatalf("assigned id %q, want gw-<uuid>", id)
			}
		})
		b.proc.WaitLine(t, 10*time.Second, regexp.MustCompile(`New client connected from \S+ as gw-[0-9a-f-]{36} \(p4`))
	})
	t.Run("allow_zero_length_clientid false", func(t *testing.T) {
		eachLib(t, pahoV4, func(t *testing.T, lib testclients.Lib, v int) {
			wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: refusing, Version: v}), false, "empty id")
			wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: refusing, Version: v, ID: clientID(lib, v, "lamp")}), true, "an id")
		})
	})
	t.Run("use_username_as_clientid", func(t *testing.T) {
		eachLib(t, pahoV5, func(t *testing.T, lib testclients.Lib, v int) {
			user := clientID(lib, v, "kitchen")
			wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: byUser, Version: v, ID: "ignored", Username: testclients.Str(user)}), true, "with a username")
			b.proc.WaitLine(t, 10*time.Second, regexp.MustCompile(`New client connected from \S+ as `+user+` \(p`+fmt.Sprint(v)))
			wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: byUser, Version: v, ID: "x"}), false, "no username")
		})
	})
}

// TestClientsClientIDPrefixes: clientid_prefixes lets in only the ids that
// start with it.
func TestClientsClientIDPrefixes(t *testing.T) {
	b := startBroker(t, "clientid_prefixes zb-\nlistener 0 127.0.0.1\nallow_anonymous true\n")
	eachLib(t, pahoV5, func(t *testing.T, lib testclients.Lib, v int) {
		wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: b.port(), Version: v, ID: clientID(lib, v, "zb-plug")}), true, "zb- id")
		wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: b.port(), Version: v, ID: clientID(lib, v, "plug")}), false, "id without zb-")
	})
}

// TestClientsMountPoint: a client of a mount_point listener publishes,
// receives and leaves its will inside the prefix, and sees nothing outside.
func TestClientsMountPoint(t *testing.T) {
	b := startBroker(t, "listener 0 127.0.0.1\nallow_anonymous true\nlistener 0 127.0.0.1\nallow_anonymous true\nmount_point site1/\n")
	plain, mounted := b.ports["mqtt"][0], b.ports["mqtt"][1]
	eachLib(t, pahoV4, func(t *testing.T, lib testclients.Lib, v int) {
		root := clientID(lib, v, "m")
		all, _ := startSub(t, testclients.Paho, copts{Port: plain, ID: root + "-all", Topics: []string{"site1/" + root + "/#", root + "/#"}, QoS: 1, Count: 3})
		in, _ := startSub(t, lib, copts{Port: mounted, Version: v, ID: root + "-in", Topics: []string{"#"}, QoS: 1, Count: 100,
			Will: &cmsg{Topic: root + "/status", Payload: "offline", QoS: 1}})
		testclients.Run(t, testclients.MQTTJS, testclients.Pub, copts{Port: plain, ID: root + "-out", Messages: []cmsg{
			{Topic: root + "/x", Payload: "outside", QoS: 1}, {Topic: "site1/" + root + "/cmd", Payload: "to inside", QoS: 1}}})
		testkit.WaitFor(t, 10*time.Second, "the message from outside the mount point", func() bool { return len(in.Events().Messages()) >= 1 })
		in.Kill() // its will goes out inside site1/
		equalLines(t, in.Events().Messages(), []string{root + "/cmd to inside"})
		equalLines(t, waitAll(t, all), []string{root + "/x outside", "site1/" + root + "/cmd to inside", "site1/" + root + "/status offline"})
	})
}

// TestClientsLimits: the options that bound what a client may do, on one
// broker: max_qos, max_topic_alias, max_keepalive, message_size_limit,
// max_packet_size, retain_available, max_inflight_messages,
// max_queued_messages, persistent_client_expiration.
func TestClientsLimits(t *testing.T) {
	b := startBroker(t, `max_keepalive 30
message_size_limit 1000
max_packet_size 10000
retain_available false
max_inflight_messages 5
max_queued_messages 2
persistent_client_expiration 1h
listener 0 127.0.0.1
allow_anonymous true
max_qos 1
max_topic_alias 3
`)
	port := b.port()
	t.Run("max_qos", func(t *testing.T) {
		eachLib(t, pahoV5, func(t *testing.T, lib testclients.Lib, v int) {
			topic := clientID(lib, v, "qos")
			if v == 5 {
				wantProp(t, wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: port, Version: v, ID: topic}), true, "connect"), "MaximumQoS", 1)
			}
			sub, ack := startSub(t, lib, copts{Port: port, Version: v, ID: topic + "-sub", Topics: []string{topic}, QoS: 2, Count: 1})
			if len(ack.Granted) != 1 || ack.Granted[0] != 1 {
				t.Fatalf("granted %v for QoS 2, want [1]", ack.Granted)
			}
			testclients.Run(t, lib, testclients.Pub, copts{Port: port, Version: v, ID: topic + "-pub", Messages: []cmsg{{Topic: topic, Payload: "on", QoS: 1}}})
			es, err := sub.Wait(15 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if m := es.Messages(); len(m) != 1 || es[len(es)-1].QoS != 1 {
				t.Fatalf("events %+v, want one message at QoS 1", es)
			}
		})
	})
	t.Run("max_topic_alias", func(t *testing.T) {
		// Python paho, which sends the alias it is given: mqtt.js checks it
		// against the CONNACK's Topic Alias Maximum itself.
		topic := "alias"
		sub, _ := startSub(t, testclients.MQTTJS, copts{Port: port, Version: 5, ID: "alias-sub", Topics: []string{topic}, Count: 1})
		es := testclients.Run(t, testclients.Paho, testclients.Pub, copts{Port: port, Version: 5, ID: "alias-pub", Messages: []cmsg{
			{Topic: topic, Payload: "three", Alias: 3, QoS: 1}, {Topic: topic, Payload: "four", Alias: 4, QoS: 1}, {Topic: topic, Payload: "after", QoS: 1}}})
		if !es.Disconnected() {
			t.Fatalf("alias 4 of 3: still connected; events %+v", es)
		}
		equalLines(t, waitAll(t, sub), []string{"alias three"})
	})
	t.Run("max_keepalive", func(t *testing.T) {
		eachLib(t, pahoV4, func(t *testing.T, lib testclients.Lib, v int) {
			id := clientID(lib, v, "ka")
			es := testclients.Run(t, lib, testclients.Connect, copts{Port: port, Version: v, ID: id, Keepalive: testclients.Int(120)})
			if v == 5 { // told to use 30 (Server Keep Alive)
				wantProp(t, wantAccepted(t, es, true, "keepalive 120 over 30"), "ServerKeepAlive", 30)
			} else { // 3.1.1 cannot be told: refused, as Mosquitto 2 does
				wantAccepted(t, es, false, "keepalive 120 over 30")
				wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: port, Version: v, ID: id, Keepalive: testclients.Int(30)}), true, "keepalive 30")
			}
		})
	})
	t.Run("message_size_limit and max_packet_size", func(t *testing.T) {
		// 3.1.1 only: to MQTT 5 the dropped message's PUBACK says "packet
		// too large" (0x95), as Mosquitto 2.0 does, a code MQTT 5 does not
		// allow in a PUBACK: Python paho 1.6's loop raises on it and mqtt.js
		// never completes the publish.
		eachLib(t, bothV4, func(t *testing.T, lib testclients.Lib, v int) {
			topic := clientID(lib, v, "size")
			sub, _ := startSub(t, testclients.Paho, copts{Port: port, ID: topic + "-sub", Topics: []string{topic}, QoS: 1, Count: 2})
			// Over message_size_limit: acknowledged and dropped.
			es := testclients.Run(t, lib, testclients.Pub, copts{Port: port, Version: v, ID: topic + "-pub", Messages: []cmsg{
				{Topic: topic, Size: 2000, QoS: 1}, {Topic: topic, Payload: "small", QoS: 1}}})
			if es.Disconnected() || len(es) != 3 {
				t.Fatalf("over message_size_limit: events %+v, want connack and two published", es)
			}
			// Over max_packet_size: the connection is ended.
			es = testclients.Run(t, lib, testclients.Pub, copts{Port: port, Version: v, ID: topic + "-big", Messages: []cmsg{
				{Topic: topic, Size: 20000, QoS: 1}, {Topic: topic, Payload: "after", QoS: 1}}})
			if !es.Disconnected() {
				t.Fatalf("over max_packet_size: events %+v, want the connection ended", es)
			}
			testclients.Run(t, lib, testclients.Pub, copts{Port: port, Version: v, ID: topic + "-pub", Messages: []cmsg{{Topic: topic, Payload: "end", QoS: 1}}})
			equalLines(t, waitAll(t, sub), []string{topic + " small", topic + " end"})
		})
	})
	t.Run("retain_available false", func(t *testing.T) {
		eachLib(t, bothV4, func(t *testing.T, lib testclients.Lib, v int) {
			topic := clientID(lib, v, "ret")
			// Mosquitto ends the publisher's connection; mochi delivers the
			// message and keeps nothing. A later subscriber gets no retained
			// message either way, which is what this judges.
			testclients.Start(t, lib, testclients.Pub, copts{Port: port, Version: v, ID: topic + "-pub", Messages: []cmsg{{Topic: topic + "/kept", Payload: "x", QoS: 1, Retain: true}}}).Wait(15 * time.Second)
			sub, _ := startSub(t, lib, copts{Port: port, Version: v, ID: topic + "-sub", Topics: []string{topic + "/#"}, QoS: 1, Count: 1})
			testclients.Run(t, lib, testclients.Pub, copts{Port: port, Version: v, ID: topic + "-pub", Messages: []cmsg{{Topic: topic + "/marker", Payload: "live", QoS: 1}}})
			equalLines(t, waitAll(t, sub), []string{topic + "/marker live"})
		})
	})
	t.Run("max_inflight_messages", func(t *testing.T) {
		eachLib(t, bothV5, func(t *testing.T, lib testclients.Lib, v int) {
			es := testclients.Run(t, lib, testclients.Connect, copts{Port: port, Version: v, ID: clientID(lib, v, "rm")})
			wantProp(t, wantAccepted(t, es, true, "connect"), "ReceiveMaximum", 5)
		})
	})
	t.Run("max_queued_messages", func(t *testing.T) {
		// A persistent session away while five QoS 1 messages come keeps
		// two; a message sent once it is back arrives after them.
		eachLib(t, pahoV5, func(t *testing.T, lib testclients.Lib, v int) {
			id := clientID(lib, v, "queue")
			away := copts{Port: port, Version: v, ID: id, Persistent: true, Expiry: testclients.Int(600), Topics: []string{id + "/#"}, QoS: 1}
			testclients.Run(t, lib, testclients.Sub, away)
			var five []cmsg
			for i := range 5 {
				five = append(five, cmsg{Topic: fmt.Sprintf("%s/%d", id, i), Payload: "q", QoS: 1})
			}
			testclients.Run(t, testclients.Paho, testclients.Pub, copts{Port: port, ID: id + "-pub", Messages: five})
			back := away
			back.Topics, back.Count = nil, 3
			c := testclients.Start(t, lib, testclients.Sub, back)
			testkit.WaitFor(t, 15*time.Second, "the queued messages", func() bool { return len(c.Events().Messages()) >= 2 })
			testclients.Run(t, testclients.Paho, testclients.Pub, copts{Port: port, ID: id + "-pub", Messages: []cmsg{{Topic: id + "/later", Payload: "q", QoS: 1}}})
			equalLines(t, waitAll(t, c), []string{id + "/0 q", id + "/1 q", id + "/later q"})
		})
	})
	t.Run("persistent_client_expiration", func(t *testing.T) {
		// An MQTT 5 client asking for a day is let in and, as Mosquitto
		// 2.0 does, not told the hour in its CONNACK (checked against
		// Debian's mosquitto: ReceiveMaximum and TopicAliasMaximum only);
		// its session still ends at the hour (TestPersistentClientExpiration).
		eachLib(t, bothV5, func(t *testing.T, lib testclients.Lib, v int) {
			es := testclients.Run(t, lib, testclients.Connect, copts{Port: port, Version: v, ID: clientID(lib, v, "exp"), Expiry: testclients.Int(86400)})
			if got, ok := wantAccepted(t, es, true, "connect").Prop("SessionExpiryInterval"); ok {
				t.Errorf("CONNACK SessionExpiryInterval = %v; Mosquitto 2.0 sends none", got)
			}
		})
	})
}

// TestClientsPersistentSessionExpires: a 3.1.1 persistent session (as Home
// Assistant and zigbee2mqtt keep) is gone after persistent_client_expiration,
// here shortened to a second (its smallest unit in the conf is an hour).
func TestClientsPersistentSessionExpires(t *testing.T) {
	addr, log := inProcess(t, "listener 0 127.0.0.1\nallow_anonymous true\npersistent_client_expiration 1h\n", 1)
	port := addr[strings.LastIndex(addr, ":")+1:]
	o := func(lib testclients.Lib) copts {
		return copts{Port: port, ID: "ha-" + string(lib), Persistent: true, Topics: []string{"ha/#"}, QoS: 1}
	}
	for _, lib := range testclients.Libs { // both sessions wait out the second together
		testclients.Run(t, lib, testclients.Sub, o(lib))
		if ca := wantAccepted(t, testclients.Run(t, lib, testclients.Connect, o(lib)), true, "back at once"); !ca.SessionPresent {
			t.Fatalf("%s: the session was not kept while it had not expired", lib)
		}
	}
	for _, lib := range testclients.Libs {
		testkit.WaitFor(t, 15*time.Second, "the session to expire", func() bool {
			return strings.Contains(log.String(), "Expiring client ha-"+string(lib)+" due to timeout.")
		})
		if ca := wantAccepted(t, testclients.Run(t, lib, testclients.Connect, o(lib)), true, "back after expiry"); ca.SessionPresent {
			t.Fatalf("%s: the session is still there after persistent_client_expiration", lib)
		}
	}
}

// TestClientsPasswordFileAndACL: allow_anonymous false, password_file and
// acl_file as the libraries meet them.
func TestClientsPasswordFileAndACL(t *testing.T) {
	testkit.RequireTool(t, "mosquitto_passwd")
	dir := t.TempDir()
	pw, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	if out, code := testkit.Run(t, 10*time.Second, "mosquitto_passwd", "-b", "-c", pw, "sensor", "s3cret"); code != 0 {
		t.Fatalf("mosquitto_passwd: %s", out)
	}
	testkit.WriteFile(t, acl, "user sensor\ntopic readwrite home/#\n")
	b := startBroker(t, fmt.Sprintf("listener 0 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\n", pw, acl))
	user := testclients.Str("sensor")
	eachLib(t, pahoV4, func(t *testing.T, lib testclients.Lib, v int) {
		id := clientID(lib, v, "pw")
		wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: b.port(), Version: v, ID: id}), false, "anonymous")
		wantAccepted(t, testclients.Run(t, lib, testclients.Connect, copts{Port: b.port(), Version: v, ID: id, Username: user, Password: "wrong"}), false, "wrong password")
		login := copts{Port: b.port(), Version: v, ID: id, Username: user, Password: "s3cret", QoS: 1}
		away := login
		away.Topics = []string{"away/t"}
		if _, ack := startSub(t, lib, away); len(ack.Granted) != 1 || ack.Granted[0] < 0x80 {
			t.Fatalf("SUBACK for a filter the ACL does not grant: %v, want a failure (>= 0x80)", ack.Granted)
		}
		home := login
		home.Topics, home.Count = []string{"home/" + id}, 1
		sub, _ := startSub(t, lib, home)
		pub := login
		pub.ID, pub.Messages = id+"-pub", []cmsg{{Topic: "away/t", Payload: "denied", QoS: 1}, {Topic: "home/" + id, Payload: "ok", QoS: 1}}
		testclients.Run(t, lib, testclients.Pub, pub)
		equalLines(t, waitAll(t, sub), []string{"home/" + id + " ok"})
	})
}
