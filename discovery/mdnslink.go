package discovery

import (
	"strings"
	"time"

	"github.com/homebox/gateway/discovery/mdns"
	"github.com/homebox/gateway/discovery/registry"
)

// services are what the box advertises: the broker and the console, with
// TXT records that say what they are.
func (s *Service) services() []mdns.ServiceSpec {
	txt := []string{"model=" + s.opts.Model, "version=" + s.opts.Version, "gateway_id=" + s.opts.GatewayID}
	return []mdns.ServiceSpec{
		{Type: "_mqtt._tcp", Port: s.opts.MDNS.MQTTPort, TXT: txt},
		{Type: "_http._tcp", Port: s.opts.MDNS.HTTPPort, TXT: append(append([]string{}, txt...), "path=/")},
	}
}

func (s *Service) startMDNS() error {
	// Follow, not a fixed list: the network may come up after gatewayd,
	// and interfaces may come, go and change address while it runs.
	f, err := mdns.Follow(mdns.FollowConfig{
		Interfaces:  s.opts.MDNS.Interfaces,
		Hostname:    s.opts.MDNS.Hostname,
		Services:    s.services(),
		Found:       s.foundMDNS,
		BrowseEvery: s.opts.MDNS.BrowseEvery,
		Logger:      s.log,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.adv = f
	s.mu.Unlock()
	return nil
}

// foundMDNS turns a browse answer into a claim; our own services are not
// a device around us.
func (s *Service) foundMDNS(e mdns.Entry) {
	txt := map[string]string{}
	for _, kv := range e.TXT {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		txt[strings.ToLower(k)] = v
	}
	if txt["gateway_id"] == s.opts.GatewayID {
		return
	}
	now := time.Now()
	host := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(e.Host, "."), ".local"))
	c := registry.Claim{Source: "mdns", SeenAt: now, Name: e.Instance}
	if v := txt["friendly_name"]; v != "" {
		c.Name = v
	}
	c.Model = firstOf(txt["model"], txt["md"], txt["board"])
	c.Firmware = firstOf(txt["version"], txt["fw"], txt["fw_version"])
	if mac := registry.FormatMAC(txt["mac"]); mac != "" {
		c.MAC = mac
	}
	if id := txt["gateway_id"]; id != "" {
		c.Keys = append(c.Keys, "id:"+id)
	}
	if host != "" {
		c.Keys = append(c.Keys, "host:"+host)
	}
	var addrs []string
	for _, ip := range e.Addrs {
		addrs = append(addrs, ip.String())
	}
	if len(addrs) > 0 {
		c.Address = addrs[0]
	}
	c.Services = []registry.Service{{
		Type: e.Type, Instance: e.Instance, Host: e.Host, Addresses: addrs, Port: e.Port,
		TXT: txt, Interface: e.Interface, LastSeen: now.UTC(),
	}}
	if len(c.Keys) == 0 && c.MAC == "" {
		c.Keys = []string{"mdns:" + e.Name}
	}
	if _, dropped := s.reg.Apply("mdns:"+e.Interface+":"+e.Name, []registry.Claim{c}); !dropped.Zero() {
		s.drops.warn("mdns answer over the registry's limits", "discovery: mDNS answer partly dropped: over the registry's limits",
			"instance", e.Name, "interface", e.Interface, "dropped_devices", dropped.Devices, "dropped_fields", dropped.Fields)
	}
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
