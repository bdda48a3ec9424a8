// Package ownhost decides whether a host name names this box: one of its
// addresses, loopback, localhost, its hostname or <hostname>.local, or a
// name given by configuration. The console (Host checks against DNS
// rebinding) and the broker's websocket listener (Origin checks) ask the
// same question, here, so that neither imports the other.
package ownhost

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// Fresh is how long a listing of the box's addresses is trusted: a DHCP
// lease that changes shows within this time.
const Fresh = 5 * time.Second

// Hosts is the set of names that are the box's own. The zero value uses the
// machine's hostname and interface addresses. Safe for concurrent use.
type Hosts struct {
	// Names are more names the box answers to, compared without case;
	// SetNames changes them while in use.
	Names []string

	// Hostname and Addrs are the machine's; tests replace them.
	Hostname func() (string, error)
	Addrs    func() ([]net.Addr, error)

	mu      sync.Mutex
	ips     map[netip.Addr]bool
	checked time.Time
}

// Allowed reports whether hostport (a Host header, or the host[:port] of an
// Origin) names this box. Any port is accepted.
func (h *Hosts) Allowed(hostport string) bool {
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		return ip.IsLoopback() || h.ownIP(ip)
	}
	if host == "localhost" {
		return true
	}
	hostnameOf := h.Hostname
	if hostnameOf == nil {
		hostnameOf = os.Hostname
	}
	if name, err := hostnameOf(); err == nil && name != "" {
		name = strings.ToLower(name)
		if host == name || host == name+".local" {
			return true
		}
	}
	h.mu.Lock()
	names := h.Names
	h.mu.Unlock()
	for _, n := range names {
		if strings.EqualFold(strings.TrimSuffix(n, "."), host) {
			return true
		}
	}
	return false
}

func (h *Hosts) ownIP(ip netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ips == nil || time.Since(h.checked) > Fresh {
		list := h.Addrs
		if list == nil {
			list = net.InterfaceAddrs
		}
		addrs, err := list()
		if err != nil {
			return false // loopback and names still answer
		}
		h.ips = map[netip.Addr]bool{}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				h.ips[p.Addr().Unmap().WithZone("")] = true
			}
		}
		h.checked = time.Now()
	}
	return h.ips[ip]
}

// SetNames replaces Names (the configuration was reloaded).
func (h *Hosts) SetNames(names []string) {
	h.mu.Lock()
	h.Names = append([]string(nil), names...)
	h.mu.Unlock()
}
