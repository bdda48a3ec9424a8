// Package paths names every file and folder the box keeps under its root
// (`--root`, default `/`), in one place, so that moving one (to the data
// partition of the image, say) is one change. Each is relative to the root;
// Root.Join makes it absolute.
package paths

import "path/filepath"

// Relative to the root.
const (
	GatewayYAML   = "etc/gateway/gateway.yaml"
	MosquittoDir  = "etc/mosquitto"
	MosquittoConf = "etc/mosquitto/mosquitto.conf"
	Certs         = "etc/mosquitto/certs"

	Data          = "data"
	GatewayData   = "data/gateway" // gatewayd's own: never handed to an app
	ConsoleLogin  = "data/gateway/console.json"
	ConfigHistory = "data/gateway/config-history"
	Devices       = "data/gateway/devices.json"
	GatewayID     = "data/gateway/id"
	BoxAccounts   = "data/gateway/box-accounts.json" // the secrets of the box's own broker logins

	// A/B updates (rootfs/slots, rootfs/bundle).
	UpdateResult     = "data/gateway/update.json"      // the last update's result
	UpdateSpool      = "data/gateway"                  // an uploaded bundle while it is checked
	FactoryResetFlag = "data/.factory-reset"           // wipe the data partition at the next boot
	ESPMount         = "run/gateway/esp"               // where the ESP is mounted when needed
	UpdateKeys       = "usr/share/gateway/update-keys" // the *.pub keys updates must be signed with

	Logs       = "var/log/gateway"
	OwnLogName = "gatewayd.log"

	Run    = "run/gateway" // the supervisor's state, the socket and the lock
	Socket = "run/gateway/gatewayd.sock"
	Lock   = "run/gateway/gatewayd.lock"
)

// Folders is what the box creates under its root before anything runs.
var Folders = []string{Data, Logs, Run}

// Root is a box's root folder.
type Root string

// Join makes rel absolute under the root.
func (r Root) Join(rel string) string { return filepath.Join(string(r), filepath.FromSlash(rel)) }
