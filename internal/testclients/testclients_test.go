package testclients_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testclients"
	"github.com/homebox/gateway/internal/testkit"
)

// mosquitto starts Debian's mosquitto on a free loopback port: the
// scripts are checked against the reference broker, not ours.
func mosquitto(t *testing.T) string {
	t.Helper()
	port := fmt.Sprint(testkit.FreePort(t))
	testkit.Start(t, testkit.RequireTool(t, "mosquitto"), "-p", port)
	testkit.WaitFor(t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

// TestScriptsTellTheSameEvents: both libraries' scripts, 3.1.1 and 5,
// print the same events for the same session.
func TestScriptsTellTheSameEvents(t *testing.T) {
	port := mosquitto(t)
	for _, lib := range testclients.Libs {
		for _, v := range []int{4, 5} {
			t.Run(fmt.Sprintf("%s v%d", lib, v), func(t *testing.T) {
				topic := fmt.Sprintf("t/%s/%d", lib, v)
				sub := testclients.Start(t, lib, testclients.Sub, testclients.Options{Port: port, Version: v, ID: "sub-" + topic,
					Topics: []string{topic + "/#"}, QoS: 2, Count: 2})
				ack, err := sub.WaitEvent("suback", 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if len(ack.Granted) != 1 || ack.Granted[0] != 2 {
					t.Fatalf("granted %v, want [2]", ack.Granted)
				}
				pub := testclients.Run(t, lib, testclients.Pub, testclients.Options{Port: port, Version: v, ID: "pub-" + topic,
					Messages: []testclients.Message{{Topic: topic + "/a", Payload: "one", QoS: 1}, {Topic: topic + "/b", Size: 3, QoS: 2, Retain: true}}})
				if !pub.Accepted() || len(pub.Messages()) != 0 {
					t.Fatalf("pub: %+v", pub)
				}
				es, err := sub.Wait(15 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				got := strings.Join(es.Messages(), ", ")
				if want := topic + "/a one, " + topic + "/b xxx"; got != want {
					t.Fatalf("messages %q, want %q", got, want)
				}
				ca := testclients.Run(t, lib, testclients.Connect, testclients.Options{Port: port, Version: v, ID: ""})
				c, _ := ca.Connack()
				if !ca.Accepted() {
					t.Fatalf("connect: %+v", ca)
				}
				// mosquitto tells MQTT 5 clients its Receive Maximum (20)
				// and the id it assigned.
				if rm, ok := c.Prop("ReceiveMaximum"); (v == 5) != (ok && rm == 20) {
					t.Fatalf("v%d props %v", v, c.Props)
				}
				if id, _ := c.Props["AssignedClientIdentifier"].(string); (v == 5) != strings.HasPrefix(id, "auto-") {
					t.Fatalf("v%d props %v", v, c.Props)
				}
			})
		}
	}
}

// TestFailuresCarryStderr: a script that cannot connect, or waits past its
// deadline, is an error that says why in the script's own words.
func TestFailuresCarryStderr(t *testing.T) {
	closed := fmt.Sprint(testkit.FreePort(t))
	port := mosquitto(t)
	for _, lib := range testclients.Libs {
		_, err := testclients.Start(t, lib, testclients.Connect, testclients.Options{Port: closed, ID: "x"}).Wait(15 * time.Second)
		if err == nil || !strings.Contains(err.Error(), "connect") || !strings.Contains(strings.ToLower(err.Error()), "refused") {
			t.Errorf("%s to a closed port: %v", lib, err)
		}
		c := testclients.Start(t, lib, testclients.Sub, testclients.Options{Port: port, ID: "wait-" + string(lib), Topics: []string{"none"}, Count: 1, Deadline: 1})
		if _, err := c.Wait(10 * time.Second); err == nil || !strings.Contains(err.Error(), "deadline of 1s passed") || !strings.Contains(err.Error(), `"suback"`) {
			t.Errorf("%s past its deadline: %v", lib, err)
		}
	}
}
