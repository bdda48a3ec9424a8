package main

import (
	"fmt"
	"os"
)

// runBroker is `gatewayd broker`: the MQTT broker process.
func runBroker(args []string) int {
	fmt.Fprintln(os.Stderr, "gatewayd broker: not built yet")
	return 1
}
