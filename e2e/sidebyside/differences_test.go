package sidebyside

// knownDiff is a difference between Mosquitto and the gateway that we know
// of and accept for now: the transcript lines only Mosquitto's clients saw,
// those only the gateway's clients saw, and why. Any other difference, or
// this one gone, fails the scenario. Keep docs/BROKER.md ("Side by side
// with Mosquitto") in step.
type knownDiff struct {
	reason    string
	mosquitto []string
	gateway   []string
	// racy: the gateway's transcript depends on timing, so any
	// difference is logged, not failed. A stopgap, each one a task left.
	racy bool
}

var knownDifferences = map[string]knownDiff{
	"sessions/v5-expiry": {
		racy: true,
		reason: "a reconnect (clean start 0) right after a DISCONNECT with session expiry 0 may resume the ended session " +
			"(present=true) when mochi handles the CONNECT before the old connection's DISCONNECT; gateway/takeover " +
			"closes the window only once the old connection has stopped. Mosquitto resumes only sessions with expiry > 0. Left to do",
	},
	"retained/v5-handling": {
		racy: true,
		reason: "the 0x91 SUBACK (a client's SUBSCRIBE id equal to one of mochi's unacknowledged deliveries to it) is mended " +
			"(gateway/packetids). Left racy: mochi writes a subscription's retained copy after the SUBACK, from the " +
			"subscriber's reader goroutine, so a live message another client publishes once the SUBACK is in may arrive " +
			"first and the copy then misses this step's marker (1 run in ~20 with two test processes at once); Mosquitto " +
			"queues the retained copy before any later publish. Left to do",
	},
	"connect/takeover": {
		reason: "Mosquitto 2.0.11 closes the old MQTT 5 connection without a word; mochi first sends it DISCONNECT 0x8E " +
			"(session taken over), as MQTT 5 (3.1.4, 4.13) describes: kept",
		mosquitto: []string{"v5 old connection lost"},
		gateway:   []string{"v5 old server disconnect rc=0x8e"},
	},
	"retained/overlap": {
		reason: "an MQTT 5 client with two matching subscriptions gets one copy per subscription from Mosquitto, one copy " +
			"(at the highest QoS) from mochi; MQTT 5 (3.3.4) requires the one and allows the others: kept",
		mosquitto: []string{"v5 got o/a q0 r0 live"},
	},
	"wills/v5": {
		reason: "a will whose delay outlasts the session: MQTT 5 (3.1.3.2.2) sends it when the session ends; Mosquitto 2.0.11 " +
			"waits for the delay (60 s here; eclipse-mosquitto/mosquitto#3505), mochi sends it at once: kept",
		mosquitto: []string{"watcher within 2s got (nothing)"},
		gateway:   []string{"watcher within 2s got w5/short q1 r0 gone"},
	},
	"acl/v311": {
		reason: "Mosquitto 2.0.11 grants a subscription the ACL does not let read (and then delivers nothing on it); " +
			"gateway/auth refuses it with 0x80, which tells the device. What the reader receives is the same. Kept: mochi asks " +
			"one ACL question for a subscribe and for a delivery, so granting it would mean guessing which is which",
		mosquitto: []string{"reader suback acl/wo 1 err=<nil>", "reader suback acl/secret 1 err=<nil>", "mosquitto_sub acl/wo suback 0"},
		gateway:   []string{"reader suback acl/wo 128 err=<nil>", "reader suback acl/secret 128 err=<nil>", "mosquitto_sub acl/wo suback 128"},
	},
	"acl/v5": {
		reason:    "as acl/v311; the refusal is 0x87 for MQTT 5: kept",
		mosquitto: []string{"reader suback acl/wo 01", "reader suback acl/secret 01"},
		gateway:   []string{"reader suback acl/wo 87", "reader suback acl/secret 87"},
	},
}
