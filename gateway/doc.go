// Package gateway is the broker process: it turns a parsed mosquitto.conf
// into a running mochi-mqtt server with the gateway's additions plugged in
// through mochi's own extension points (hooks and listeners): the LAN guard,
// password and ACL files, durable storage, in-order resend, Mosquitto's
// $SYS names, connection rules and answers on the wire, and the bridges.
package gateway
