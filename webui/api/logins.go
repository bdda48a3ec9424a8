package api

// Logins is GET /api/broker/logins: whether every client must log in.
type Logins struct {
	Required     bool   `json:"required"`      // allow_anonymous false
	PasswordFile string `json:"password_file"` // "" when the conf names none yet
	Users        int    `json:"users"`         // owner users in it (the box's own are never counted)
	PerListener  bool   `json:"per_listener"`  // per_listener_settings: logins are set per listener in the editor
}

// LoginsInput is PUT /api/broker/logins's body. FirstUser, when logins are
// turned on with no user yet, is created in the same save.
type LoginsInput struct {
	Required  bool       `json:"required"`
	FirstUser *UserInput `json:"first_user,omitempty"`
}

// DeviceInput is POST /api/broker/devices's body: a login for one device.
// Topics are the filters it may read and write; empty: NAME/# and +/NAME/#
// (Tasmota's %prefix%/%topic%), besides the discovery prefix.
type DeviceInput struct {
	Name   string   `json:"name"`
	Topics []string `json:"topics,omitempty"`
}

// DeviceLogin is what a person types into the device (Tasmota, Shelly,
// ESPHome, zigbee2mqtt). The password is shown this once.
type DeviceLogin struct {
	Host            string   `json:"host"` // <hostname>.local
	Port            int      `json:"port"`
	Username        string   `json:"username"`
	Password        string   `json:"password"`
	DiscoveryPrefix string   `json:"discovery_prefix"`
	ACL             []string `json:"acl"` // the acl_file lines written for it
}

// ACL is GET /api/broker/acl and PUT's body.
type ACL struct {
	File string `json:"file,omitempty"`
	Text string `json:"text"`
}

// MQTTLogin is GET /api/apps/:name/mqtt: the broker login the box made for
// an app it runs (Home Assistant).
type MQTTLogin struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	Password string `json:"password"`
}
