// Package browsertest drives the LAN console in a real Chromium: first
// against the real console app (webui.New, with its real login, config flow,
// history and pages) over fakes of the supervisor, the device registry and
// the broker's figures (fast, and steerable: a broker that will not start,
// an app held at launching), then against a real `gatewayd run` in a
// temporary root, where every page talks to the real API, broker,
// supervisor and discovery. It holds tests only.
package browsertest
