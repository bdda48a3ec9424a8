package main

import (
	"strconv"

	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/supervisor/config"
	"github.com/homebox/gateway/webui/api"
)

// homeAssistantApp is the gateway.yaml app that gets the box's Home
// Assistant broker account.
const homeAssistantApp = "home-assistant"

// specs are gateway.yaml's apps as the supervisor runs them, with the
// box's own broker accounts passed on: the broker learns their digests,
// Home Assistant its login (as the Home Assistant add-on gives its
// integrations theirs).
func (b *box) specs(cfg *config.Config) []supervisor.Spec {
	specs := cfg.Specs(b.root, b.opts.Self)
	for i := range specs {
		switch specs[i].Name {
		case brokerApp:
			specs[i].Env[auth.BoxAccountsEnv] = b.accounts.Env()
		case homeAssistantApp:
			for k, v := range b.homeAssistantLogin() {
				specs[i].Env[k] = v
			}
		}
	}
	return specs
}

// homeAssistantLogin is the broker login of the Home Assistant the box
// runs, as environment variables.
func (b *box) homeAssistantLogin() map[string]string {
	host, port := brokerAddr(b.root)
	return map[string]string{
		"GATEWAY_MQTT_HOST":     host,
		"GATEWAY_MQTT_PORT":     strconv.Itoa(port),
		"GATEWAY_MQTT_USER":     auth.HomeAssistantUser,
		"GATEWAY_MQTT_PASSWORD": b.accounts[auth.HomeAssistantUser],
	}
}

// appLogin is the broker login the box made for an app, for its page:
// Home Assistant's, when gateway.yaml runs it.
func (b *box) appLogin(app string) (api.MQTTLogin, bool) {
	if _, ok := b.config().App(app); !ok || app != homeAssistantApp {
		return api.MQTTLogin{}, false
	}
	host, port := brokerAddr(b.root)
	return api.MQTTLogin{Host: host, Port: port, Username: auth.HomeAssistantUser, Password: b.accounts[auth.HomeAssistantUser]}, true
}
