package gateway_test

import (
	"strings"
	"testing"
	"time"
)

// TestReconnectingSessionSubscribesWithCollidingID: a persistent session
// comes back to 5 queued QoS 1 messages, which the broker sends with ids
// 1..5, while mosquitto_sub's SUBSCRIBE uses id 1. Mosquitto grants it and
// delivers; so must the gateway (mochi alone answers 0x91 and mosquitto_sub
// gives up: gateway/packetids).
func TestReconnectingSessionSubscribesWithCollidingID(t *testing.T) {
	brokers := map[string]string{
		"gateway":   startBroker(t, anonConf).port(),
		"mosquitto": startMosquitto(t, "listener {port} 127.0.0.1\nallow_anonymous true\n"),
	}
	for name, port := range brokers {
		for _, v := range []string{"mqttv311", "mqttv5"} {
			session := []string{"-V", v, "-c", "-i", "pktid-" + v, "-q", "1", "-t", "pktid/t"}
			if v == "mqttv5" {
				session = append(session, "-x", "60")
			}
			// Register the session, leave, and have 5 messages queued.
			s, _ := subscribe(t, port, append(session, "-E")...)
			s.proc.Wait(t, 10*time.Second)
			pub(t, port, "-V", v, "-q", "1", "-t", "pktid/t", "-m", "m", "--repeat", "5")

			s, granted := subscribe(t, port, session...)
			if granted != "1" {
				t.Errorf("%s %s: reconnected SUBSCRIBE (mid 1) granted %q, want 1; output:\n%s", name, v, granted, s.proc.Output())
				continue
			}
			got := s.waitMessages(t, 5)
			if strings.Join(got, ",") != "pktid/t m,pktid/t m,pktid/t m,pktid/t m,pktid/t m" {
				t.Errorf("%s %s: got %q", name, v, got)
			}
		}
	}
}
