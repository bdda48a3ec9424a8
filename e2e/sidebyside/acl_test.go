package sidebyside

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/homebox/gateway/internal/testkit"
)

// aclConf gives anonymous clients (the lines before any "user") read and
// write on acl/open/#, write only on acl/wo, read only on acl/ro.
const aclConf = "listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {dir}/acl\n"

func setupACL(t *testing.T, dir string) {
	testkit.WriteFile(t, filepath.Join(dir, "acl"), "topic readwrite acl/open/#\ntopic write acl/wo\ntopic read acl/ro\n")
}

func TestACL(t *testing.T) {
	for _, sc := range []scenario{
		{name: "acl/v311", conf: aclConf, setup: setupACL, script: func(t *testing.T, e *env) {
			r := connect3(t, e, "reader", opts3(e, 4, "reader3", true))
			for _, f := range []string{"acl/open/#", "acl/ro", "acl/wo", "acl/secret"} {
				r.subscribe(t, f, 1)
			}
			w := connect3(t, e, "writer", opts3(e, 4, "writer3", true))
			for _, tp := range []string{"acl/open/a", "acl/ro", "acl/wo", "acl/secret"} {
				w.publish(t, tp, 0, false, "q0")
				w.publish(t, tp, 1, false, "q1")
			}
			w.publish(t, "acl/open/end", 1, false, "end")
			for _, m := range r.in.until(t, "acl/open/end") {
				e.log("reader got %s", m)
			}
			// mosquitto_sub's own words for a denied subscription.
			startSub(t, e, "mosquitto_sub acl/wo", e.port, "-t", "acl/wo")
		}},
		{name: "acl/v5", conf: aclConf, setup: setupACL, script: func(t *testing.T, e *env) {
			r := connect5(t, e, "reader", &paho5.Connect{ClientID: "reader5", CleanStart: true})
			for _, f := range []string{"acl/open/#", "acl/ro", "acl/wo", "acl/secret"} {
				r.subscribe(t, paho5.SubscribeOptions{Topic: f, QoS: 1})
			}
			w := connect5(t, e, "writer", &paho5.Connect{ClientID: "writer5", CleanStart: true})
			for _, tp := range []string{"acl/open/a", "acl/ro", "acl/wo", "acl/secret"} {
				w.publish(t, tp, 0, false, "q0")
				w.publish(t, tp, 1, false, "q1")
			}
			w.publish(t, "acl/open/end", 1, false, "end")
			for _, m := range r.in.until(t, "acl/open/end") {
				e.log("reader got %s", m)
			}
		}},
		{name: "acl/will-denied", conf: aclConf, setup: setupACL, script: func(t *testing.T, e *env) {
			// A will on a topic the client may not write (acl/ro): it is
			// let in (3.1.1 and 5), and the will never published; an
			// allowed one is, after them.
			r := connect3(t, e, "watcher", opts3(e, 4, "willwatch", true))
			r.subscribe(t, "acl/ro", 1)
			r.subscribe(t, "acl/open/#", 1)
			for _, k := range []struct{ name, version, topic string }{
				{"denied v311", "mqttv311", "acl/ro"}, {"denied v5", "mqttv5", "acl/ro"}, {"allowed v5", "mqttv5", "acl/open/will"},
			} {
				sub := startSub(t, e, k.name, e.port, "-V", k.version, "-t", "acl/open/x", "--will-topic", k.topic, "--will-payload", "gone")
				if err := sub.p.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				sub.p.Wait(t, 10*time.Second)
			}
			for _, m := range r.in.until(t, "acl/open/will") {
				e.log("watcher got %s", m)
			}
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { runBoth(t, sc) })
	}
}
