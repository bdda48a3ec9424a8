package main

import (
	"context"
	"net"
	"os"
	"strconv"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/supervisor/config"
)

// startDiscovery starts discovery against the local broker, with where the
// broker and the console listen (mosquitto.conf and gateway.yaml) for the
// box's own adverts.
func (b *box) startDiscovery(ctx context.Context, cfg *config.Config, mqttPort int) (*discovery.Service, error) {
	id, err := discovery.GatewayID(b.root)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	mdns := cfg.Discovery.MDNS
	return discovery.Start(ctx, discovery.Options{
		Root:      b.root,
		Link:      b.link,
		GatewayID: id,
		Name:      host,
		Model:     "homebox gateway",
		Version:   b.opts.Version,
		MDNS: discovery.MDNSOptions{
			Enabled:    mdns.Enabled && !b.opts.Dev, // never on a development machine
			Interfaces: mdns.Interfaces,
			MQTTPort:   mqttPort,
			HTTPPort:   consolePort(cfg),
			Hostname:   host,
		},
		Logger: b.log.With("part", "discovery"),
	})
}

// brokerAddr is where the box's own clients reach the broker (see
// mosquittoconf.Config.ClientAddr), reading the conf as the broker does:
// relative paths from its working folder, <root>/data, as gateway.yaml
// starts it.
func brokerAddr(root string) (addr string, port int) {
	cfg := brokerConf(root, paths.Root(root).Join(paths.Data))
	if cfg == nil {
		return mosquittoconf.DefaultClientAddr, 1883
	}
	return cfg.ClientAddr()
}

// brokerConf is the box's mosquitto.conf read as the broker reads it, with
// relative paths taken from dir, its working folder; nil when it cannot be
// read or has errors (the broker then says what is wrong).
func brokerConf(root, dir string) *mosquittoconf.Config {
	path := paths.Root(root).Join(paths.MosquittoConf)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	cfg, diags := mosquittoconf.Check(path, data, dir)
	if !diags.OK() {
		return nil
	}
	return cfg
}

// consolePort is the port of console.listen (0 when it cannot be read).
func consolePort(cfg *config.Config) int {
	_, port, err := net.SplitHostPort(cfg.Console.Listen)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}
