// Package sidebyside runs the same mosquitto.conf and the same client
// script against Debian's mosquitto and against `gatewayd broker`, and
// compares what the clients saw (issue 16). It holds tests only; see
// harness_test.go for how a scenario is run and compared, and
// docs/BROKER.md "Side by side with Mosquitto" for the scenarios and the
// known differences.
package sidebyside
