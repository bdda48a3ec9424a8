package sidebyside

import (
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"
)

const anonConf = "listener {port} 127.0.0.1\nallow_anonymous true\n"

func TestConnect(t *testing.T) {
	for _, sc := range []scenario{
		{name: "connect/versions", conf: anonConf, script: func(t *testing.T, e *env) {
			for _, v := range []struct {
				name string
				ver  uint
			}{{"v31", 3}, {"v311", 4}} {
				connect3(t, e, v.name+" clean", opts3(e, v.ver, "clean-"+v.name, true)).disconnect()
				connect3(t, e, v.name+" persistent", opts3(e, v.ver, "keep-"+v.name, false)).disconnect()
				connect3(t, e, v.name+" persistent again", opts3(e, v.ver, "keep-"+v.name, false)).disconnect()
				connect3(t, e, v.name+" clean over it", opts3(e, v.ver, "keep-"+v.name, true)).disconnect()
			}
			connect5(t, e, "v5 clean", &paho5.Connect{ClientID: "clean-v5", CleanStart: true}).disconnect(0)
			keep := &paho5.Connect{ClientID: "keep-v5", Properties: &paho5.ConnectProperties{SessionExpiryInterval: u32(300)}}
			connect5(t, e, "v5 persistent", keep).disconnect(0)
			connect5(t, e, "v5 persistent again", keep).disconnect(0)
			connect5(t, e, "v5 clean over it", &paho5.Connect{ClientID: "keep-v5", CleanStart: true}).disconnect(0)
		}},
		{name: "connect/empty-id", conf: anonConf, script: func(t *testing.T, e *env) {
			connect3(t, e, "v31 clean", opts3(e, 3, "", true)).disconnect()
			connect3(t, e, "v311 clean", opts3(e, 4, "", true)).disconnect()
			connect3(t, e, "v311 persistent", opts3(e, 4, "", false)).disconnect()
			connect5(t, e, "v5 clean", &paho5.Connect{CleanStart: true}).disconnect(0)
			connect5(t, e, "v5 persistent", &paho5.Connect{Properties: &paho5.ConnectProperties{SessionExpiryInterval: u32(300)}}).disconnect(0)
		}},
		{name: "connect/keepalive-0", conf: anonConf, script: func(t *testing.T, e *env) {
			c := connect3(t, e, "v311", opts3(e, 4, "ka0-v311", true).SetKeepAlive(0))
			c.subscribe(t, "ka/#", 1)
			c.publish(t, "ka/3", 1, false, "hello")
			e.logSorted("v311 got ", c.in.take(t, 1))
			c5 := connect5(t, e, "v5", &paho5.Connect{ClientID: "ka0-v5", CleanStart: true})
			c5.subscribe(t, paho5.SubscribeOptions{Topic: "ka/#", QoS: 1})
			c5.publish(t, "ka/5", 1, false, "hello")
			e.logSorted("v5 got ", c5.in.take(t, 1))
		}},
		{name: "connect/takeover", conf: anonConf, script: func(t *testing.T, e *env) {
			old := connect3(t, e, "v311 old", opts3(e, 4, "dup3", true))
			connect3(t, e, "v311 new", opts3(e, 4, "dup3", true))
			old.waitLost(t)
			old5 := connect5(t, e, "v5 old", &paho5.Connect{ClientID: "dup5", CleanStart: true})
			connect5(t, e, "v5 new", &paho5.Connect{ClientID: "dup5", CleanStart: true})
			old5.waitGone(t)
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { runBoth(t, sc) })
	}
}
