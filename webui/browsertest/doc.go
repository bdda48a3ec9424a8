// Package browsertest drives the LAN console in a real Chromium: first
// against the pages with a small stand-in API (fast, for the pages' own
// behaviour), then against a real `gatewayd run` in a temporary root, where
// every page talks to the real API, broker, supervisor and discovery.
// It holds tests only.
package browsertest
