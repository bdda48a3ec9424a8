// Package e2e holds the tests of the whole box: `gatewayd run` with the
// real broker, discovery and the control API, driven by real MQTT clients
// and gwctl, as an owner's box would run.
package e2e
