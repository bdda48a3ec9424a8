// Package discovery makes the box findable and finds the devices around it:
// it advertises the broker and console over mDNS, browses for devices,
// listens to MQTT announce topics on the local broker, and keeps one device
// registry of all of it. gatewayd runs one Service; the API and gwctl read it.
package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/homebox/gateway/discovery/announce"
	"github.com/homebox/gateway/discovery/mdns"
	"github.com/homebox/gateway/discovery/registry"
	"github.com/homebox/gateway/internal/atomicfile"
	"github.com/homebox/gateway/internal/brokerlink"
	"github.com/homebox/gateway/internal/paths"
)

// Device is one device of the registry (JSON names documented in
// registry.Device).
type Device = registry.Device

// MDNSOptions say whether and where mDNS runs.
type MDNSOptions struct {
	Enabled    bool
	Interfaces []string // empty: every up, multicast-capable, non-loopback interface
	MQTTPort   int      // first plain MQTT listener; 0: not advertised
	HTTPPort   int      // the console; 0: not advertised
	Hostname   string   // instance name; os.Hostname() when empty
	// BrowseEvery is the time between browse rounds; 5 minutes when zero.
	BrowseEvery time.Duration
}

// Options configure a Service.
type Options struct {
	Root      string           // registry at <Root>/data/gateway/devices.json
	BrokerURL string           // the local broker, e.g. "mqtt://127.0.0.1:1883"; unused when Link is set
	Link      *brokerlink.Link // the box's own way to the broker (service account, current address)
	Prefix    string           // Home Assistant discovery prefix; "homeassistant" when empty
	GatewayID string           // GatewayID(Root) when empty
	Name      string           // shown in the box's own announce; the hostname when empty
	Model     string
	Version   string
	Address   string // the box's address in its announce; first LAN IPv4 when empty
	MDNS      MDNSOptions
	Logger    *slog.Logger
	// Limits bound what announces can make discovery hold; DefaultLimits
	// for zero fields.
	Limits Limits
}

// Service runs discovery until Close.
type Service struct {
	opts    Options
	log     *slog.Logger
	reg     *registry.Registry
	parsers announce.Parsers
	mq      *mqttLink
	drops   *dropLog

	droppedMessages atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	adv       *mdns.Follower
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// ownAnnounce is the box's own announce (docs/ANNOUNCE.md) and its payload.
func (s *Service) ownAnnounce() (announce.Announce, []byte, error) {
	a := announce.Announce{
		ID:                s.opts.GatewayID,
		Name:              s.opts.Name,
		Model:             s.opts.Model,
		Firmware:          s.opts.Version,
		Address:           s.opts.Address,
		AvailabilityTopic: announce.AvailabilityTopic(s.opts.GatewayID),
	}
	payload, err := json.Marshal(a)
	return a, payload, err
}

// RegistryPath is where the registry of a root lives.
func RegistryPath(root string) string { return paths.Root(root).Join(paths.Devices) }

// Start opens the registry, connects to the broker (retrying in the
// background until it accepts), and starts mDNS when enabled. Only bad
// options fail it; a broker or a network that is not up yet does not.
func Start(ctx context.Context, o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger.With("component", "discovery")
	if o.Root == "" {
		return nil, errors.New("discovery: Root is required")
	}
	if o.BrokerURL == "" && o.Link == nil {
		return nil, errors.New("discovery: BrokerURL or Link is required")
	}
	if o.Prefix == "" {
		o.Prefix = "homeassistant"
	}
	if strings.ContainsAny(o.Prefix, "+#") || strings.Trim(o.Prefix, "/") != o.Prefix {
		return nil, fmt.Errorf("discovery: prefix %q may not hold wildcards or start or end with '/'", o.Prefix)
	}
	if o.GatewayID == "" {
		id, err := GatewayID(o.Root)
		if err != nil {
			return nil, err
		}
		o.GatewayID = id
	}
	if err := announce.ValidID(o.GatewayID); err != nil {
		return nil, fmt.Errorf("discovery: gateway id: %w", err)
	}
	if o.MDNS.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("discovery: hostname: %w", err)
		}
		o.MDNS.Hostname = h
	}
	if o.Name == "" {
		o.Name = o.MDNS.Hostname
	}
	var ifaces []net.Interface
	if o.MDNS.Enabled {
		// Not fatal: mDNS follows interfaces as they come and go; this only
		// picks the announce's address when one is up already.
		ifaces, _ = mdns.Interfaces(o.MDNS.Interfaces)
	}
	if o.Address == "" {
		o.Address = firstIPv4(ifaces)
	}

	o.Limits = o.Limits.withDefaults()
	reg, err := openRegistry(RegistryPath(o.Root), log, o.Limits.Registry)
	if err != nil {
		return nil, err
	}
	o.Limits.Registry = reg.Limits()
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	parsers := announce.Parsers{
		Prefix:         o.Prefix,
		MaxPayload:     o.Limits.MaxPayload,
		MaxListPayload: o.Limits.MaxListPayload,
		MaxClaims:      o.Limits.Registry.MaxDevices,
		MaxEntities:    o.Limits.Registry.MaxEntitiesPerDevice,
	}
	s := &Service{opts: o, log: log, reg: reg, parsers: parsers, drops: newDropLog(log), ctx: sctx, cancel: cancel}
	// The box's own device first: a registry that a flood filled to its cap
	// refuses new devices, and the box must never be one of them. Its
	// retained announce, read once connected, replaces this claim.
	if a, payload, err := s.ownAnnounce(); err == nil {
		if res, ok, err := s.parsers.Parse(announce.AnnounceTopic(a.ID), payload, time.Now()); ok && err == nil {
			reg.Apply(res.Group, res.Claims)
		}
	}
	s.mq, err = startMQTT(s)
	if err != nil {
		cancel()
		reg.Close()
		return nil, err
	}
	if o.MDNS.Enabled {
		if err := s.startMDNS(); err != nil {
			s.Close()
			return nil, err
		}
	}
	// The caller's context ends the service as Close would.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			go s.Close()
		case <-sctx.Done():
		}
	}()
	log.Info("discovery started", "gateway_id", o.GatewayID, "broker", o.BrokerURL, "mdns", o.MDNS.Enabled, "devices", reg.Len())
	return s, nil
}

// openRegistry loads the registry; a file that cannot be read is kept aside
// (devices.json.bad) and discovery starts empty rather than not at all.
func openRegistry(path string, log *slog.Logger, lim registry.Limits) (*registry.Registry, error) {
	reg, err := registry.OpenWithLimits(path, log, lim)
	if err == nil {
		return reg, nil
	}
	if _, statErr := os.Stat(path); statErr != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	bad := path + ".bad"
	if rerr := os.Rename(path, bad); rerr != nil {
		return nil, fmt.Errorf("discovery: %w (and could not move it aside: %v)", err, rerr)
	}
	log.Error("device registry unreadable, moved aside; starting empty", "error", err, "kept_as", bad)
	return registry.OpenWithLimits(path, log, lim)
}

func firstIPv4(ifaces []net.Interface) string {
	if len(ifaces) == 0 {
		all, _ := net.Interfaces()
		for _, ifi := range all {
			if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0 {
				ifaces = append(ifaces, ifi)
			}
		}
	}
	for _, ifi := range ifaces {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return n.IP.String()
			}
		}
	}
	return ""
}

// Ready is closed once the retained announces present when discovery first
// connected have all been read into the registry.
func (s *Service) Ready() <-chan struct{} { return s.mq.ready }

// Devices returns every device, sorted by ID.
func (s *Service) Devices() []Device { return s.reg.Devices() }

// Device returns one device by ID.
func (s *Service) Device(id string) (Device, bool) { return s.reg.Device(id) }

// GatewayID is the ID this box announces itself with.
func (s *Service) GatewayID() string { return s.opts.GatewayID }

// UpdatePorts re-announces the box after a config edit changed its ports.
func (s *Service) UpdatePorts(mqttPort, httpPort int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.opts.MDNS.MQTTPort, s.opts.MDNS.HTTPPort = mqttPort, httpPort
	if s.adv != nil {
		s.adv.Update(s.services())
	}
	s.mq.publishSelf()
}

// Close withdraws the mDNS records (goodbye), marks the box's own announce
// offline, disconnects and flushes the registry.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		adv := s.adv
		s.mu.Unlock()
		s.cancel()
		var errs []error
		if adv != nil {
			errs = append(errs, adv.Close())
		}
		s.mq.close()
		s.wg.Wait()
		errs = append(errs, s.reg.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// GatewayID returns the box's ID, kept in <root>/data/gateway/id and made
// (random, "gw-" and 12 hex digits) the first time.
func GatewayID(root string) (string, error) {
	path := paths.Root(root).Join(paths.GatewayID)
	data, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(data))
		if err := announce.ValidID(id); err != nil {
			return "", fmt.Errorf("gateway id in %s: %w", path, err)
		}
		return id, nil
	}
	if !os.IsNotExist(err) {
		return "", fmt.Errorf("read gateway id: %w", err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make gateway id: %w", err)
	}
	id := "gw-" + hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("keep gateway id: %w", err)
	}
	if _, err := atomicfile.WriteNew(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("keep gateway id: %w", err)
	}
	return GatewayID(root) // what is on disk wins, should two starts race

}
