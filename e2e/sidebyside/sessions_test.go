package sidebyside

import (
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"
)

func TestSessions(t *testing.T) {
	for _, sc := range []scenario{
		{name: "sessions/v311-queued", conf: anonConf, script: func(t *testing.T, e *env) {
			c := connect3(t, e, "v311", opts3(e, 4, "queue3", false))
			c.subscribe(t, "q/#", 1)
			c.disconnect()
			// Offline: QoS 1 is queued; QoS 0 is not, by Mosquitto's
			// default (queue_qos0_messages false).
			for _, m := range [][]string{{"1", "q/1", "one"}, {"0", "q/0", "zero"}, {"1", "q/2", "two"}, {"1", "q/3", "three"}} {
				mosqPub(t, e, "offline "+m[1], "-q", m[0], "-t", m[1], "-m", m[2])
			}
			back := connect3(t, e, "v311 back", opts3(e, 4, "queue3", false))
			mosqPub(t, e, "marker", "-q", "1", "-t", "q/end", "-m", "end")
			// In order: one publisher, QoS 1.
			for _, m := range back.in.until(t, "q/end") {
				e.log("v311 back got %s", m)
			}
		}},
		{name: "sessions/v5-expiry", conf: anonConf, script: func(t *testing.T, e *env) {
			cp := func(expiry uint32, clean bool) *paho5.Connect {
				return &paho5.Connect{ClientID: "exp5", CleanStart: clean, Properties: &paho5.ConnectProperties{SessionExpiryInterval: u32(expiry)}}
			}
			// Expiry 0: the session ends with the connection.
			c := connect5(t, e, "expiry 0", cp(0, true))
			c.subscribe(t, paho5.SubscribeOptions{Topic: "x5/#", QoS: 1})
			c.disconnect(0)
			connect5(t, e, "after expiry 0", cp(300, false))
			c = connect5(t, e, "expiry 300", cp(300, true))
			c.subscribe(t, paho5.SubscribeOptions{Topic: "x5/#", QoS: 1})
			c.disconnect(0)
			mosqPub(t, e, "offline", "-q", "1", "-t", "x5/a", "-m", "queued")
			back := connect5(t, e, "after expiry 300", cp(300, false))
			mosqPub(t, e, "marker", "-q", "1", "-t", "x5/end", "-m", "end")
			for _, m := range back.in.until(t, "x5/end") {
				e.log("back got %s", m)
			}
			// The client may shorten its expiry at DISCONNECT (to 0 here).
			_ = back.c.Disconnect(&paho5.Disconnect{Properties: &paho5.DisconnectProperties{SessionExpiryInterval: u32(0)}})
			connect5(t, e, "after disconnect expiry 0", cp(300, false)).disconnect(0)
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { runBoth(t, sc) })
	}
}
