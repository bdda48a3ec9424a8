package sidebyside

import (
	"syscall"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
)

func TestWills(t *testing.T) {
	for _, sc := range []scenario{
		{name: "wills/v311", conf: anonConf, script: func(t *testing.T, e *env) {
			s := connect3(t, e, "watcher", opts3(e, 4, "watch3", true))
			s.subscribe(t, "w/#", 1)
			// Abrupt close: mosquitto_sub killed with SIGKILL, so the
			// kernel closes its socket with no DISCONNECT.
			k := startSub(t, e, "killed", e.port, "-t", "nothing", "--will-topic", "w/killed", "--will-payload", "gone", "--will-qos", "1")
			if err := k.p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			e.logSorted("watcher got ", s.in.until(t, "w/killed"))
			// DISCONNECT: no will.
			polite := connect3(t, e, "polite", opts3(e, 4, "polite3", true).SetWill("w/polite", "gone", 1, false))
			polite.disconnect()
			// A retained will stays for later subscribers.
			k2 := startSub(t, e, "killed retained", e.port, "-t", "nothing", "--will-topic", "w/kept", "--will-payload", "kept", "--will-retain", "--will-qos", "1")
			if err := k2.p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			e.logSorted("watcher got ", s.in.until(t, "w/kept"))
			later := connect3(t, e, "later", opts3(e, 4, "later3", true))
			later.subscribe(t, "w/#", 1)
			mosqPub(t, e, "marker", "-q", "1", "-t", "w/end", "-m", "end")
			e.logSorted("later got ", later.in.until(t, "w/end"))
			e.logSorted("watcher got ", s.in.until(t, "w/end"))
		}},
		{name: "wills/v5", conf: anonConf, script: func(t *testing.T, e *env) {
			s := connect5(t, e, "watcher", &paho5.Connect{ClientID: "watch5", CleanStart: true})
			s.subscribe(t, paho5.SubscribeOptions{Topic: "w5/#", QoS: 1})
			will := func(id, topic string, delay uint32, expiry uint32) *paho5.Connect {
				return &paho5.Connect{ClientID: id, CleanStart: true,
					Properties:     &paho5.ConnectProperties{SessionExpiryInterval: u32(expiry)},
					WillMessage:    &paho5.WillMessage{Topic: topic, QoS: 1, Payload: []byte("gone")},
					WillProperties: &paho5.WillProperties{WillDelayInterval: u32(delay)}}
			}
			connect5(t, e, "abrupt", will("abrupt5", "w5/abrupt", 0, 0)).kill()
			e.logSorted("watcher got ", s.in.until(t, "w5/abrupt"))
			connect5(t, e, "polite", will("polite5", "w5/polite", 0, 0)).disconnect(0)
			// Reason code 0x04: disconnect with the will.
			connect5(t, e, "with will", will("withwill5", "w5/withwill", 0, 0)).disconnect(4)
			e.logSorted("watcher got ", s.in.until(t, "w5/withwill"))
			// A delayed will comes once its delay (1 s) is over.
			connect5(t, e, "delayed", will("delay5", "w5/delayed", 1, 60)).kill()
			e.logSorted("watcher got ", s.in.until(t, "w5/delayed"))
			// A client back within the delay stops its will.
			connect5(t, e, "back", will("back5", "w5/back", 60, 60)).kill()
			connect5(t, e, "back again", &paho5.Connect{ClientID: "back5", Properties: &paho5.ConnectProperties{SessionExpiryInterval: u32(60)}}).disconnect(0)
			// Session expiry shorter than the delay: MQTT 5 sends the will
			// when the session ends (at once, expiry 0). Waited for 2 s.
			connect5(t, e, "short session", will("short5", "w5/short", 60, 0)).kill()
			e.logSorted("watcher within 2s got ", s.in.within("w5/short", 2*time.Second))
			mosqPub(t, e, "marker", "-q", "1", "-t", "w5/end", "-m", "end")
			e.logSorted("watcher got ", s.in.until(t, "w5/end"))
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { runBoth(t, sc) })
	}
}
