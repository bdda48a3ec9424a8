// Package bridge runs Mosquitto-style bridges inside the broker process.
//
// A bridge is a client of a remote broker that forwards chosen topics in
// each direction, with the prefix remapping, reconnection, state topic and
// queueing Mosquitto documents for its `connection` blocks. Owners already
// write bridges that way, so the gateway reads the same blocks (parsed by
// mosquittoconf) and behaves the same.
//
// The local side is mochi's inline client: one inline subscription per
// `out` pattern sees every local publish with its QoS and retain flag, and
// messages coming in are injected through an inline client of the bridge's
// own (named local_clientid), so a message that came in over a bridge is
// recognised by its origin and never sent back out over it.
//
// The remote side is Eclipse Paho: paho.mqtt.golang for MQTT 3.1 and 3.1.1
// (it can send Mosquitto's try_private version byte), paho.golang for
// MQTT 5. Out messages at QoS 1 and 2 sit in a queue (a bbolt file per
// bridge when persistence is on, fsynced per message) until the remote has
// fully acknowledged them, so an outage or a kill -9 loses nothing.
//
// Bridging in works too: PrivateConn accepts Mosquitto's try_private
// CONNECT (version byte | 0x80), which mochi would refuse, and InboundHook
// gives such clients No Local on every subscription, as Mosquitto does for
// bridges, so what a remote bridge published is not echoed back to it.
package bridge
