package sidebyside

import (
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"
)

func TestRetained(t *testing.T) {
	for _, sc := range []scenario{
		{name: "retained/set-overwrite-clear", conf: anonConf, script: func(t *testing.T, e *env) {
			mosqPub(t, e, "set r/a", "-r", "-q", "1", "-t", "r/a", "-m", "1")
			mosqPub(t, e, "overwrite r/a", "-r", "-q", "1", "-t", "r/a", "-m", "2")
			mosqPub(t, e, "set r/b", "-r", "-t", "r/b", "-m", "b")
			mosqPub(t, e, "set r/c", "-r", "-q", "1", "-t", "r/c", "-m", "c")
			mosqPub(t, e, "clear r/c", "-r", "-q", "1", "-t", "r/c", "-n")
			mosqPub(t, e, "set r/x/deep", "-r", "-q", "2", "-t", "r/x/deep", "-m", "d")
			// A wildcard subscriber gets every retained message, with
			// the retain flag; then a live one, flagged or not, without.
			s := startSub(t, e, "sub r/#", e.port, "-q", "2", "-t", "r/#")
			c := connect3(t, e, "v311 sub", opts3(e, 4, "ret3", true))
			c.subscribe(t, "r/#", 1)
			e.logSorted("v311 retained ", c.in.take(t, 3))
			mosqPub(t, e, "live retained r/live", "-r", "-q", "1", "-t", "r/live", "-m", "L")
			mosqPub(t, e, "live plain r/end", "-q", "1", "-t", "r/end", "-m", "end")
			// A QoS 2 retained message may come after the live ones.
			e.logSorted("sub got ", s.until(t, "r/end"))
			e.logSorted("v311 live ", c.in.take(t, 2))
		}},
		{name: "retained/v5-handling", conf: anonConf, script: func(t *testing.T, e *env) {
			mosqPub(t, e, "set h/a", "-r", "-q", "1", "-t", "h/a", "-m", "A")
			p := connect5(t, e, "v5 pub", &paho5.Connect{ClientID: "rh-pub", CleanStart: true})
			c := connect5(t, e, "v5", &paho5.Connect{ClientID: "rh", CleanStart: true})
			// Each step ends with a plain marker so that "nothing" is seen.
			step := func(name string, so paho5.SubscribeOptions) {
				c.subscribe(t, so)
				p.publish(t, "h/a", 1, false, "mark-"+name)
				e.logSorted("v5 "+name+" got ", c.in.until(t, "mark-"+name))
			}
			step("rh0 new", paho5.SubscribeOptions{Topic: "h/a", QoS: 1, RetainHandling: 0})
			step("rh0 again", paho5.SubscribeOptions{Topic: "h/a", QoS: 1, RetainHandling: 0})
			step("rh1 again", paho5.SubscribeOptions{Topic: "h/a", QoS: 1, RetainHandling: 1})
			// One subscription at a time: brokers differ on overlapping
			// ones (see retained/overlap).
			c.unsubscribe(t, "h/a")
			step("rh1 new", paho5.SubscribeOptions{Topic: "h/+", QoS: 1, RetainHandling: 1})
			c.unsubscribe(t, "h/+")
			step("rh2 new", paho5.SubscribeOptions{Topic: "h/#", QoS: 1, RetainHandling: 2})
		}},
		{name: "retained/v5-as-published", conf: anonConf, script: func(t *testing.T, e *env) {
			plain := connect5(t, e, "v5 plain", &paho5.Connect{ClientID: "rap0", CleanStart: true})
			plain.subscribe(t, paho5.SubscribeOptions{Topic: "p/#", QoS: 1})
			rap := connect5(t, e, "v5 rap", &paho5.Connect{ClientID: "rap1", CleanStart: true})
			rap.subscribe(t, paho5.SubscribeOptions{Topic: "p/#", QoS: 1, RetainAsPublished: true})
			p := connect5(t, e, "v5 pub", &paho5.Connect{ClientID: "rap-pub", CleanStart: true})
			p.publish(t, "p/r", 1, true, "retained")
			p.publish(t, "p/n", 1, false, "plain")
			e.logSorted("v5 plain got ", plain.in.take(t, 2))
			e.logSorted("v5 rap got ", rap.in.take(t, 2))
		}},
		{name: "retained/overlap", conf: anonConf, script: func(t *testing.T, e *env) {
			// Two of one client's subscriptions match: MQTT allows one
			// copy or one per subscription.
			mosqPub(t, e, "set o/a", "-r", "-q", "1", "-t", "o/a", "-m", "R")
			c3 := connect3(t, e, "v311", opts3(e, 4, "ov3", true))
			c3.subscribe(t, "o/a", 1)
			c3.subscribe(t, "o/#", 0)
			c5 := connect5(t, e, "v5", &paho5.Connect{ClientID: "ov5", CleanStart: true})
			c5.subscribe(t, paho5.SubscribeOptions{Topic: "o/a", QoS: 1})
			c5.subscribe(t, paho5.SubscribeOptions{Topic: "o/+", QoS: 0})
			mosqPub(t, e, "live o/a", "-q", "1", "-t", "o/a", "-m", "live")
			mosqPub(t, e, "marker o/end", "-q", "1", "-t", "o/end", "-m", "end")
			e.logSorted("v311 got ", c3.in.until(t, "o/end"))
			e.logSorted("v5 got ", c5.in.until(t, "o/end"))
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { runBoth(t, sc) })
	}
}
