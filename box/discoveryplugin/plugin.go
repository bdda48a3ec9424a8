// Package discoveryplugin runs discovery inside `gatewayd run`: it reads
// where the broker and the console listen (mosquitto.conf and
// gateway.yaml), starts the discovery service against the local broker, and
// serves its registry to the API until the box stops.
package discoveryplugin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/homebox/gateway/box"
	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/supervisor/config"
)

// Plugin is discovery as a box plugin. It also answers the API's device
// routes (empty until started).
type Plugin struct {
	version string

	mu   sync.Mutex
	svc  *discovery.Service
	host *box.Host
}

// New returns the plugin; version goes into the box's announce and TXT.
func New(version string) *Plugin { return &Plugin{version: version} }

// Name names the plugin.
func (p *Plugin) Name() string { return "discovery" }

// Start starts discovery. It does not wait for the broker: the service
// connects when the broker accepts.
func (p *Plugin) Start(ctx context.Context, h *box.Host) error {
	mqttAddr, mqttPort := BrokerAddr(h.Root)
	id, err := discovery.GatewayID(h.Root)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	mdns := h.Config.Discovery.MDNS
	svc, err := discovery.Start(ctx, discovery.Options{
		Root:      h.Root,
		BrokerURL: "mqtt://" + mqttAddr,
		GatewayID: id,
		Name:      host,
		Model:     "homebox gateway",
		Version:   p.version,
		MDNS: discovery.MDNSOptions{
			Enabled:    mdns.Enabled && !h.Dev, // never on a development machine
			Interfaces: mdns.Interfaces,
			MQTTPort:   mqttPort,
			HTTPPort:   consolePort(h.Config),
			Hostname:   host,
		},
		Logger: h.Logger.With("part", "discovery"),
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.svc, p.host = svc, h
	p.mu.Unlock()
	return nil
}

// Stop withdraws the box's adverts and announce and flushes the registry.
func (p *Plugin) Stop(context.Context) error {
	p.mu.Lock()
	svc := p.svc
	p.svc = nil
	p.mu.Unlock()
	if svc == nil {
		return nil
	}
	return svc.Close()
}

// Reload re-reads the ports after a config change (SIGHUP).
func (p *Plugin) Reload(cfg *config.Config) error {
	p.mu.Lock()
	svc, h := p.svc, p.host
	p.mu.Unlock()
	if svc == nil {
		return errors.New("discovery is not running")
	}
	_, mqttPort := BrokerAddr(h.Root)
	svc.UpdatePorts(mqttPort, consolePort(cfg))
	return nil
}

// Devices lists the registry (empty before start).
func (p *Plugin) Devices() []discovery.Device {
	p.mu.Lock()
	svc := p.svc
	p.mu.Unlock()
	if svc == nil {
		return nil
	}
	return svc.Devices()
}

// Device returns one device of the registry.
func (p *Plugin) Device(id string) (discovery.Device, bool) {
	p.mu.Lock()
	svc := p.svc
	p.mu.Unlock()
	if svc == nil {
		return discovery.Device{}, false
	}
	return svc.Device(id)
}

// BrokerAddr is where the box's own clients reach the broker (see
// mosquittoconf.Config.ClientAddr), reading the conf as the broker does:
// relative paths from its working folder, <root>/data, as gateway.yaml
// starts it.
func BrokerAddr(root string) (addr string, port int) {
	path := paths.Root(root).Join(paths.MosquittoConf)
	data, err := os.ReadFile(path)
	if err != nil {
		return mosquittoconf.DefaultClientAddr, 1883
	}
	cfg, diags := mosquittoconf.Check(path, data, filepath.Join(root, "data"))
	if !diags.OK() || cfg == nil {
		return mosquittoconf.DefaultClientAddr, 1883
	}
	return cfg.ClientAddr()
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
