package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/homebox/gateway/internal/testkit"
)

// refused reports whether mosquitto_pub's run ended with a refused CONNACK:
// "Connection Refused: ..." (v3) or the v5 reason string.
func refused(out string, err error) bool {
	o := strings.ToLower(out)
	return err != nil && (strings.Contains(o, "connection refused") ||
		strings.Contains(o, "connection error: bad user name or password") ||
		strings.Contains(o, "connection error: not authorized"))
}

func TestConnectPasswords(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, pw, [3]string{"alice", "alice-pw", ""}, [3]string{"bob", "bob-pw", "sha512"})
	appendLine(t, pw, "carol:"+argon2idLine(t, "carol-pw"))

	for _, anon := range []bool{false, true} {
		h, err := NewHook(Security{AllowAnonymous: anon, PasswordFile: pw}, nil, quiet)
		if err != nil {
			t.Fatal(err)
		}
		_, addrs := startBroker(t, h, "tcp")
		addr := addrs["tcp"]
		for _, version := range []string{"mqttv31", "mqttv311", "mqttv5"} {
			for _, c := range []struct {
				user, pass string
				ok         bool
			}{
				{"alice", "alice-pw", true}, // $7$ from mosquitto_passwd
				{"bob", "bob-pw", true},     // $6$ from mosquitto_passwd -H sha512
				{"carol", "carol-pw", true}, // $argon2id$ as Mosquitto 2.1 writes it
				{"alice", "bob-pw", false},
				{"bob", "wrong", false},
				{"carol", "carol-pW", false},
				{"mallory", "alice-pw", false}, // not in the file: refused even with allow_anonymous
				{"alice", "", false},           // user without password
				{"", "", anon},
			} {
				out, err := pub(t, addr, version, "", c.user, c.pass, "t/x", "hi")
				if c.ok && err != nil {
					t.Errorf("anon=%v %s user %q pass %q: refused: %v\n%s", anon, version, c.user, c.pass, err, out)
				}
				if !c.ok && !refused(out, err) {
					t.Errorf("anon=%v %s user %q pass %q: not refused: %v\n%s", anon, version, c.user, c.pass, err, out)
				}
			}
		}
	}
}

func TestNoPasswordFile(t *testing.T) {
	for _, anon := range []bool{false, true} {
		h, err := NewHook(Security{AllowAnonymous: anon}, nil, quiet)
		if err != nil {
			t.Fatal(err)
		}
		_, addrs := startBroker(t, h, "tcp")
		for _, user := range []string{"", "someone"} {
			pass := ""
			if user != "" {
				pass = "pw"
			}
			out, err := pub(t, addrs["tcp"], "mqttv311", "", user, pass, "t/x", "hi")
			if anon && err != nil {
				t.Errorf("allow_anonymous true, user %q: refused: %v\n%s", user, err, out)
			}
			// Mosquitto 2: allow_anonymous false and no password file refuses everyone.
			if !anon && !refused(out, err) {
				t.Errorf("allow_anonymous false without password_file, user %q: not refused: %v\n%s", user, err, out)
			}
		}
	}
}

func TestPerListenerSecurity(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, pw, [3]string{"alice", "alice-pw", ""})
	acl := writeFile(t, dir, "acl", "user alice\ntopic readwrite locked/#\n")
	h, err := NewHook(Security{AllowAnonymous: true},
		map[string]Security{"locked": {PasswordFile: pw, ACLFile: acl}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	_, addrs := startBroker(t, h, "open", "locked")
	if out, err := pub(t, addrs["open"], "mqttv311", "", "", "", "any/topic", "x"); err != nil {
		t.Fatalf("anonymous on the open listener: %v\n%s", err, out)
	}
	if out, err := pub(t, addrs["locked"], "mqttv311", "", "", "", "locked/x", "x"); !refused(out, err) {
		t.Fatalf("anonymous on the locked listener not refused: %v\n%s", err, out)
	}
	if out, err := pub(t, addrs["locked"], "mqttv311", "", "alice", "alice-pw", "locked/x", "x"); err != nil {
		t.Fatalf("alice on the locked listener: %v\n%s", err, out)
	}

	// The ACL of one listener does not leak to the other.
	c, err := v3(t, addrs["locked"], "alice-sub", "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Subscribe("any/#", 1, nil)
	waitTok(t, tok)
	if got := tok.(*pahomqtt.SubscribeToken).Result()["any/#"]; got != 0x80 {
		t.Fatalf("locked listener granted any/# with %#x", got)
	}
	o, err := v3(t, addrs["open"], "anon-sub", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tok = o.Subscribe("any/#", 1, nil)
	waitTok(t, tok)
	if got := tok.(*pahomqtt.SubscribeToken).Result()["any/#"]; got != 1 {
		t.Fatalf("open listener answered any/# with %#x", got)
	}
}

const brokerACL = `# anonymous
topic read public/#

user watcher
topic read #
topic read $SYS/#

user alice
topic write allowed/#
topic read allowed/#
topic read inbox/alice
topic deny allowed/secret
pattern write dev/%c/#
pattern read users/%u/#
`

// aclBroker starts a broker with users watcher, alice and bob and brokerACL.
func aclBroker(t *testing.T) (*mqtt.Server, string, string) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, pw, [3]string{"watcher", "w-pw", ""}, [3]string{"alice", "alice-pw", ""}, [3]string{"bob", "bob-pw", ""})
	acl := writeFile(t, dir, "acl", brokerACL)
	h, err := NewHook(Security{AllowAnonymous: true, PasswordFile: pw, ACLFile: acl}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s, addrs := startBroker(t, h, "tcp")
	return s, addrs["tcp"], dir
}

func TestPublishACL(t *testing.T) {
	s, addr, _ := aclBroker(t)
	watch := sub(t, s, addr, "watcher-1", "watcher", "w-pw", "#")

	steps := []struct {
		version, id, topic, msg string
		ok                      bool
	}{
		{"mqttv311", "alice-1", "denied/a", "D1", false},
		{"mqttv311", "alice-1", "allowed/a", "A1", true},
		{"mqttv5", "alice-2", "denied/b", "D2", false},
		{"mqttv5", "alice-2", "allowed/b", "A2", true},
		{"mqttv311", "alice-3", "allowed/secret", "D3", false}, // deny wins over allowed/#
		{"mqttv311", "dev7", "dev/dev7/state", "A3", true},     // pattern %c
		{"mqttv311", "dev7", "dev/dev8/state", "D4", false},
		{"mqttv31", "alice-4", "users/alice/x", "D5", false}, // read-only pattern
		{"mqttv311", "dev9", "dev/dev9/state", "A4", true},
	}
	var want []string
	for _, st := range steps {
		out, err := pub(t, addr, st.version, st.id, "alice", "alice-pw", st.topic, st.msg)
		// A refused publish is acknowledged and dropped, as Mosquitto does:
		// the publisher neither fails nor is disconnected (v3), or gets
		// reason 0x87, which mosquitto_pub only warns about (v5).
		if err != nil {
			t.Fatalf("%s publish %s to %s: %v\n%s", st.version, st.msg, st.topic, err, out)
		}
		if st.ok {
			want = append(want, st.topic+" "+st.msg)
		}
	}
	// The inline client (the gateway itself) may publish anywhere.
	if err := s.Publish("gateway/internal", []byte("I1"), false, 0); err != nil {
		t.Fatal(err)
	}
	want = append(want, "gateway/internal I1")

	// mochi acknowledges a QoS 1 publish before it fans the message out, so
	// messages from different connections may arrive in either order; a
	// last publish, once received, shows that everything earlier was handled.
	if out, err := pub(t, addr, "mqttv311", "alice-end", "alice", "alice-pw", "allowed/end", "END"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want = append(want, "allowed/end END")
	testkit.WaitFor(t, 10*time.Second, "the allowed messages at the watcher", func() bool {
		return strings.Count(watch.String(), "\n") >= len(want)
	})
	got := strings.Split(strings.TrimSpace(watch.String()), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("watcher got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A refused retained publish is not retained either.
	if out, err := pub(t, addr, "mqttv311", "alice-5", "alice", "alice-pw", "denied/retained", "R", "-r"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := len(s.Topics.Messages("denied/#")); n != 0 {
		t.Fatalf("%d refused retained messages kept", n)
	}
}

func TestPublishReasonCodes(t *testing.T) {
	s, addr, _ := aclBroker(t)

	// MQTT 5: a refused QoS 1 publish gets PUBACK 0x87 and the client stays.
	c5, _, err := v5(t, addr, "alice-v5", "alice", "alice-pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c5.Publish(ctx, &paho.Publish{Topic: "denied/x", QoS: 1, Payload: []byte("x")})
	if resp == nil || resp.ReasonCode != 0x87 {
		t.Fatalf("v5 refused publish: resp %+v, err %v; want reason 0x87", resp, err)
	}
	resp, err = c5.Publish(ctx, &paho.Publish{Topic: "allowed/x", QoS: 1, Payload: []byte("x")})
	if err != nil || resp.ReasonCode != 0 {
		t.Fatalf("v5 allowed publish after a refused one: resp %+v, err %v", resp, err)
	}

	// MQTT 3.1.1: acknowledged and dropped; mochi alone would disconnect.
	lost := make(chan error, 1)
	opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("alice-v3").
		SetUsername("alice").SetPassword("alice-pw").SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ pahomqtt.Client, err error) { lost <- err })
	c3 := pahomqtt.NewClient(opts)
	if tok := c3.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("v3 connect: %v", tok.Error())
	}
	defer c3.Disconnect(0)
	for _, qos := range []byte{1, 2} {
		tok := c3.Publish("denied/y", qos, false, "y")
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("v3 QoS %d refused publish not acknowledged: %v", qos, tok.Error())
		}
	}
	tok := c3.Publish("allowed/y", 1, false, "y")
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("v3 allowed publish: %v", tok.Error())
	}
	select {
	case err := <-lost:
		t.Fatalf("v3 client lost its connection: %v", err)
	default:
	}
	if cl, ok := s.Clients.Get("alice-v3"); !ok || cl.Closed() {
		t.Fatal("broker dropped the v3 client")
	}
}

func TestTopicAliasJudgedOnRealTopic(t *testing.T) {
	s, addr, _ := aclBroker(t)
	watch := sub(t, s, addr, "watcher-2", "watcher", "w-pw", "#")
	// mochi accepts aliases up to its TopicAliasMaximum (65535 by default)
	// even though its CONNACK does not advertise it.
	c5, _, err := v5(t, addr, "alice-alias", "alice", "alice-pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alias := uint16(1)
	for i, topic := range []string{"allowed/alias", ""} {
		resp, err := c5.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte{'0' + byte(i)},
			Properties: &paho.PublishProperties{TopicAlias: &alias}})
		if err != nil || resp.ReasonCode != 0 {
			t.Fatalf("publish %d with alias: resp %+v, err %v", i, resp, err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, "both aliased messages", func() bool {
		return watch.String() == "allowed/alias 0\nallowed/alias 1\n"
	})
}

func TestSubscribeACL(t *testing.T) {
	_, addr, _ := aclBroker(t)
	filters := map[string]byte{
		"allowed/#":          1,
		"allowed/+/x":        1,
		"inbox/alice":        1,
		"users/alice/#":      1, // pattern %u
		"users/bob/#":        0,
		"inbox/#":            0, // only inbox/alice is granted: a filter must be covered
		"#":                  0,
		"allowed/secret":     0, // covered by a deny
		"dev/alice-s3/#":     0, // write-only pattern
		"$SYS/#":             0,
		"$share/g/allowed/#": 1,
		"$share/g/inbox/#":   0,
	}

	// MQTT 3.1.1: refused filters get 0x80.
	c3, err := v3(t, addr, "alice-s3", "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	req := map[string]byte{}
	for f := range filters {
		req[f] = 1
	}
	tok := c3.SubscribeMultiple(req, nil)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("v3 subscribe timed out")
	}
	res := tok.(*pahomqtt.SubscribeToken).Result()
	for f, ok := range filters {
		want := byte(0x80)
		if ok == 1 {
			want = 1
		}
		if res[f] != want {
			t.Errorf("v3 SUBACK for %q = %#x, want %#x", f, res[f], want)
		}
	}

	// MQTT 5: refused filters get 0x87.
	c5, _, err := v5(t, addr, "alice-s5", "alice", "alice-pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	var opts []paho.SubscribeOptions
	for f := range filters {
		order = append(order, f)
		opts = append(opts, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, _ := c5.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if sa == nil || len(sa.Reasons) != len(order) {
		t.Fatalf("v5 SUBACK %+v", sa)
	}
	for i, f := range order {
		want := byte(0x87)
		if filters[f] == 1 {
			want = 1
		}
		if sa.Reasons[i] != want {
			t.Errorf("v5 SUBACK for %q = %#x, want %#x", f, sa.Reasons[i], want)
		}
	}

	// Anonymous clients get the lines before the first user line.
	a, err := v3(t, addr, "anon-s3", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tok = a.SubscribeMultiple(map[string]byte{"public/#": 0, "allowed/#": 0}, nil)
	waitTok(t, tok)
	if r := tok.(*pahomqtt.SubscribeToken).Result(); r["public/#"] != 0 || r["allowed/#"] != 0x80 {
		t.Fatalf("anonymous SUBACK %v", r)
	}
}

func TestDeliveryJudgedPerMessage(t *testing.T) {
	s, addr, _ := aclBroker(t)
	// alice may subscribe allowed/# but allowed/secret is denied to her: a
	// retained and a live message there must not reach her.
	if err := s.Publish("allowed/secret", []byte("S0"), true, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish("allowed/open", []byte("O0"), true, 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	c5, _, err := v5(t, addr, "alice-d", "alice", "alice-pw", func(p paho.PublishReceived) (bool, error) {
		mu.Lock()
		got = append(got, p.Packet.Topic+" "+string(p.Packet.Payload))
		mu.Unlock()
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "allowed/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	publish := func(topic, msg string) {
		t.Helper()
		if err := s.Publish(topic, []byte(msg), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	received := func(n int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) >= n
		}
	}
	// The retained messages go out after the SUBACK, so a live one may pass
	// them; the last live message is sent only once the others have come, so
	// anything sent before it has been handled.
	publish("allowed/secret", "S1")
	publish("allowed/open", "O1")
	testkit.WaitFor(t, 10*time.Second, "the open messages", received(2))
	publish("allowed/open", "O2")
	testkit.WaitFor(t, 10*time.Second, "the last open message", received(3))
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, []string{"allowed/open O0", "allowed/open O1", "allowed/open O2"}) {
		t.Fatalf("alice got %q", got)
	}
}

func TestReloadKeepsOldStateOnBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, pw, [3]string{"alice", "old-pw", ""})
	acl := writeFile(t, dir, "acl", "user alice\ntopic readwrite one/#\n")
	h, err := NewHook(Security{PasswordFile: pw, ACLFile: acl}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	_, addrs := startBroker(t, h, "tcp")
	addr := addrs["tcp"]
	grants := func(filter string) byte {
		t.Helper()
		c, err := v3(t, addr, "probe", "alice", "old-pw")
		if err != nil {
			t.Fatalf("alice with old-pw: %v", err)
		}
		defer c.Disconnect(0)
		tok := c.Subscribe(filter, 1, nil)
		waitTok(t, tok)
		return tok.(*pahomqtt.SubscribeToken).Result()[filter]
	}
	if grants("one/#") != 1 || grants("two/#") != 0x80 {
		t.Fatal("initial ACL not in force")
	}

	goodPW, _ := os.ReadFile(pw)
	goodACL, _ := os.ReadFile(acl)
	broken := []struct {
		file, text, want string
	}{
		{pw, string(goodPW) + "bob\n", pw + ":2: no ':'"},
		{pw, string(goodPW) + "bob:plain\n", pw + ":2: user \"bob\": password is not hashed"},
		{acl, "user alice\ntopic readwrite two/#\ntopics read x\n", acl + ":3: unknown keyword \"topics\""},
		{acl, "user alice\ntopic readwrite two/#\nuser\n", acl + ":3: user: missing user name"},
	}
	for _, b := range broken {
		if err := os.WriteFile(b.file, []byte(b.text), 0o600); err != nil {
			t.Fatal(err)
		}
		err := h.Reload()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Fatalf("Reload with a broken %s: err %v, want %q", filepath.Base(b.file), err, b.want)
		}
		// The previous files stay in force.
		if grants("one/#") != 1 || grants("two/#") != 0x80 {
			t.Fatalf("state changed after a failed reload (%s)", b.want)
		}
		restore(t, pw, goodPW)
		restore(t, acl, goodACL)
	}
	if err := os.Remove(acl); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Reload without the acl file: %v", err)
	}
	restore(t, acl, goodACL)

	// A connected client whose password changes is disconnected on reload;
	// the new password and ACL apply from then on.
	lost := make(chan struct{})
	opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("stays").
		SetUsername("alice").SetPassword("old-pw").SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectionLostHandler(func(pahomqtt.Client, error) { close(lost) })
	stays := pahomqtt.NewClient(opts)
	if tok := stays.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer stays.Disconnect(0)
	mosquittoPasswd(t, pw, [3]string{"alice", "new-pw", ""})
	restore(t, acl, []byte("user alice\ntopic readwrite two/#\n"))
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("client with a changed password still connected after reload")
	}
	if _, err := v3(t, addr, "old", "alice", "old-pw"); err == nil {
		t.Fatal("old password accepted after reload")
	}
	c, err := v3(t, addr, "new", "alice", "new-pw")
	if err != nil {
		t.Fatalf("new password refused after reload: %v", err)
	}
	tok := c.SubscribeMultiple(map[string]byte{"one/#": 1, "two/#": 1}, nil)
	waitTok(t, tok)
	if r := tok.(*pahomqtt.SubscribeToken).Result(); r["one/#"] != 0x80 || r["two/#"] != 1 {
		t.Fatalf("new ACL not in force: %v", r)
	}
}

func TestNewHookNamesBrokenFile(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "passwd", "alice:$7$1$x$y\n")
	acl := writeFile(t, dir, "acl", "user\n")
	_, err := NewHook(Security{PasswordFile: pw}, map[string]Security{"l2": {ACLFile: acl}}, quiet)
	if err == nil || !strings.Contains(err.Error(), pw+":1: ") || !strings.Contains(err.Error(), acl+":1: ") {
		t.Fatalf("err = %v, want both files named with their line", err)
	}
}

func restore(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
