package webui

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// OwnHosts decides which Host names the LAN side answers to: the box's own
// (its addresses, its hostname and <hostname>.local, localhost) and the
// names gateway.yaml lists. A page on another site that gets a browser to
// send requests here through DNS rebinding carries that site's name in
// Host, and is refused before any handler runs; so is the cross-site check
// that compares Origin with Host, which would otherwise compare two names
// the attacker chose.
type OwnHosts struct {
	// Names are more names the box answers to (gateway.yaml's
	// console.hosts), compared without case; SetNames changes them while
	// the app serves.
	Names []string

	// Hostname and Addrs are the machine's; tests replace them.
	Hostname func() (string, error)
	Addrs    func() ([]net.Addr, error)

	mu      sync.Mutex
	ips     map[netip.Addr]bool
	checked time.Time
}

// addrsFresh is how long a listing of the box's addresses is trusted: a
// DHCP lease that changes shows within this time.
const addrsFresh = 5 * time.Second

// Allowed reports whether hostport (a request's Host) names this box.
func (o *OwnHosts) Allowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		return ip.IsLoopback() || o.ownIP(ip)
	}
	if host == "localhost" {
		return true
	}
	hostnameOf := o.Hostname
	if hostnameOf == nil {
		hostnameOf = os.Hostname
	}
	if name, err := hostnameOf(); err == nil && name != "" {
		name = strings.ToLower(name)
		if host == name || host == name+".local" {
			return true
		}
	}
	o.mu.Lock()
	names := o.Names
	o.mu.Unlock()
	for _, n := range names {
		if strings.EqualFold(strings.TrimSuffix(n, "."), host) {
			return true
		}
	}
	return false
}

// SetNames replaces Names (gateway.yaml reloaded).
func (o *OwnHosts) SetNames(names []string) {
	o.mu.Lock()
	o.Names = append([]string(nil), names...)
	o.mu.Unlock()
}

func (o *OwnHosts) ownIP(ip netip.Addr) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ips == nil || time.Since(o.checked) > addrsFresh {
		list := o.Addrs
		if list == nil {
			list = net.InterfaceAddrs
		}
		addrs, err := list()
		if err != nil {
			return false
		}
		o.ips = map[netip.Addr]bool{}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				o.ips[p.Addr().Unmap().WithZone("")] = true
			}
		}
		o.checked = time.Now()
	}
	return o.ips[ip]
}

// misdirected answers 421 to a LAN request whose Host is not the box's own,
// before routing; the socket (gwctl, root) is not asked.
func misdirected(own *OwnHosts) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if OriginOf(r) == OriginLAN && !own.Allowed(r.Host) {
				return newError(http.StatusMisdirectedRequest, "this box does not answer to the name "+quoteHost(r.Host)+": open it by its address or by its own name")
			}
			return next(c)
		}
	}
}

// quoteHost shows a Host safely in an error text.
func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100] + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, h) + `"`
}
