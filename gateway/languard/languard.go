// Package languard keeps the gateway's network services to the local networks.
//
// A box on a home LAN is sometimes exposed by a careless port forward or a
// hostile router; the guard makes that harmless by refusing, at accept time
// and before a single byte is read, every TCP peer whose address lies outside
// the allowed networks. Only the TCP peer address is judged: nothing a client
// sends (an X-Forwarded-For header, a PROXY line) can change the verdict.
package languard

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Named network sets accepted by ParseNetworks.
const (
	// KeywordLAN is the subnets directly attached to the box's interfaces,
	// link-local and loopback. Other private ranges (a 10.x network behind a
	// router) are not the LAN: list them explicitly (e.g. 10.0.0.0/8).
	KeywordLAN = "lan"
	// KeywordLoopback is 127.0.0.0/8 and ::1.
	KeywordLoopback = "loopback"
	// KeywordAny turns the guard off.
	KeywordAny = "any"
)

var loopbackPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// lanFixed is the part of "lan" that never changes: loopback and
// link-local. The attached subnets are read from the interfaces (attached.go).
var lanFixed = append(append([]netip.Prefix{}, loopbackPrefixes...),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
)

// LogInterval is how often at most a refusal is logged for one address, so a
// scanner hammering the port cannot flood the log.
const LogInterval = time.Minute

// maxLogged bounds the memory spent remembering when each address was last
// logged; past it, refusals from new addresses are counted but not logged
// until old entries age out.
const maxLogged = 4096

// Guard decides which peers may connect. It is safe for concurrent use; one
// Guard is usually shared by every listener of a process.
type Guard struct {
	any      bool
	prefixes []netip.Prefix
	spec     string
	lan      *attached // the subnets of the box's interfaces; nil without "lan"

	refused   atomic.Uint64
	logger    atomic.Pointer[slog.Logger]
	now       func() time.Time // replaced in tests
	mu        sync.Mutex
	lastLog   map[netip.Addr]time.Time
	perListen map[string]*atomic.Uint64
}

// ParseNetworkList parses the comma-separated form used by the
// --allow-networks flag, such as "lan,203.0.113.0/24".
func ParseNetworkList(s string) (*Guard, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New(`allowed networks: empty list (give "lan", "loopback", "any" or CIDRs)`)
	}
	return ParseNetworks(strings.Split(s, ","))
}

// ParseNetworks builds a Guard from items that are each "lan", "loopback",
// "any" (guard off), a CIDR such as 10.0.0.0/8, or a single IP address.
// A bad item is an error naming it and its position; nothing is built then.
func ParseNetworks(spec []string) (*Guard, error) {
	if len(spec) == 0 {
		return nil, errors.New(`allowed networks: empty list (give "lan", "loopback", "any" or CIDRs)`)
	}
	g := &Guard{
		now:       time.Now,
		lastLog:   map[netip.Addr]time.Time{},
		perListen: map[string]*atomic.Uint64{},
	}
	seen := map[netip.Prefix]bool{}
	add := func(ps ...netip.Prefix) {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				g.prefixes = append(g.prefixes, p)
			}
		}
	}
	names := make([]string, 0, len(spec))
	for i, raw := range spec {
		item := strings.TrimSpace(raw)
		switch strings.ToLower(item) {
		case "":
			return nil, fmt.Errorf("allowed networks: item %d is empty", i+1)
		case KeywordAny:
			g.any = true
			names = append(names, KeywordAny)
			continue
		case KeywordLAN:
			add(lanFixed...)
			if g.lan == nil {
				g.lan = newAttached(g)
			}
			names = append(names, KeywordLAN)
			continue
		case KeywordLoopback:
			add(loopbackPrefixes...)
			names = append(names, KeywordLoopback)
			continue
		}
		p, err := parseItem(item)
		if err != nil {
			return nil, fmt.Errorf("allowed networks: item %d %q: %w", i+1, item, err)
		}
		add(p)
		names = append(names, p.String())
	}
	g.spec = strings.Join(names, ",")
	return g, nil
}

// parseItem reads one CIDR or address. IPv4-mapped IPv6 forms are turned
// into IPv4 so they match the way peers are judged.
func parseItem(item string) (netip.Prefix, error) {
	if strings.Contains(item, "%") {
		return netip.Prefix{}, errors.New("an IPv6 zone (%...) is not allowed here")
	}
	if strings.Contains(item, "/") {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf(`not a CIDR (want e.g. 10.0.0.0/8) nor one of "lan", "loopback", "any": %w`, err)
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, errors.New("an IPv4-mapped prefix needs at least 96 bits")
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(item)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf(`not an IP address, a CIDR, nor one of "lan", "loopback", "any": %w`, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// String gives the normalised list, as the flag would take it back.
func (g *Guard) String() string { return g.spec }

// Off reports whether the guard allows every peer ("any").
func (g *Guard) Off() bool { return g.any }

// Prefixes returns a copy of the fixed allowed networks (empty when Off);
// with "lan", the subnets attached to the interfaces come on top
// (Attached).
func (g *Guard) Prefixes() []netip.Prefix {
	return append([]netip.Prefix(nil), g.prefixes...)
}

// SetLogger sets where refusals are logged (slog.Default when unset).
func (g *Guard) SetLogger(l *slog.Logger) { g.logger.Store(l) }

// Allowed judges one peer address. IPv4-mapped IPv6 addresses are judged as
// IPv4 and zones are ignored, so fe80::1%eth0 is link-local like fe80::1.
// The invalid zero address is refused unless the guard is off.
func (g *Guard) Allowed(ip netip.Addr) bool {
	if g.any {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range g.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return g.lan != nil && g.lan.contains(ip)
}

// AllowedAddr judges a net.Addr such as a connection's RemoteAddr. Addresses
// that carry no IP (a unix socket peer, an unknown type) are refused unless
// the guard is off: the guard is meant for IP listeners and fails closed.
func (g *Guard) AllowedAddr(a net.Addr) bool {
	if g.any {
		return true
	}
	ip, ok := addrIP(a)
	return ok && g.Allowed(ip)
}

func addrIP(a net.Addr) (netip.Addr, bool) {
	switch v := a.(type) {
	case *net.TCPAddr:
		if v == nil {
			return netip.Addr{}, false
		}
		ip, ok := netip.AddrFromSlice(v.IP)
		return ip, ok
	case *net.UDPAddr:
		if v == nil {
			return netip.Addr{}, false
		}
		ip, ok := netip.AddrFromSlice(v.IP)
		return ip, ok
	case *net.IPAddr:
		if v == nil {
			return netip.Addr{}, false
		}
		ip, ok := netip.AddrFromSlice(v.IP)
		return ip, ok
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr(), true
}

// Refused is the number of connections refused by every listener of g.
func (g *Guard) Refused() uint64 { return g.refused.Load() }

// RefusedOn is the number of connections refused by the listener made with
// that name by Listener.
func (g *Guard) RefusedOn(name string) uint64 {
	g.mu.Lock()
	c := g.perListen[name]
	g.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

func (g *Guard) counter(name string) *atomic.Uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.perListen[name]
	if c == nil {
		c = new(atomic.Uint64)
		g.perListen[name] = c
	}
	return c
}

func (g *Guard) logRefusal(peer net.Addr, name string, total uint64) {
	ip, _ := addrIP(peer)
	ip = ip.Unmap().WithZone("")
	now := g.now()
	g.mu.Lock()
	last, seen := g.lastLog[ip]
	logIt := !seen || now.Sub(last) >= LogInterval
	if logIt && !seen && len(g.lastLog) >= maxLogged {
		for a, t := range g.lastLog {
			if now.Sub(t) >= LogInterval {
				delete(g.lastLog, a)
			}
		}
		logIt = len(g.lastLog) < maxLogged
	}
	if logIt {
		g.lastLog[ip] = now
	}
	g.mu.Unlock()
	if !logIt {
		return
	}
	log := g.logger.Load()
	if log == nil {
		log = slog.Default()
	}
	peerStr := "<none>"
	if peer != nil {
		peerStr = peer.String()
	}
	log.Warn("connection refused: peer outside allowed networks",
		"listener", name, "peer", peerStr, "allowed", g.spec,
		"refused_total", total, "next_log_for_peer_after", LogInterval)
}

// Listener wraps l so that Accept closes every connection whose TCP peer is
// not allowed, without reading from it, and keeps accepting. name labels the
// listener in logs and in RefusedOn. When the guard is off l is still
// wrapped, so counts stay available, but nothing is refused.
func (g *Guard) Listener(l net.Listener, name string) net.Listener {
	return &guarded{Listener: l, g: g, name: name, count: g.counter(name)}
}

type guarded struct {
	net.Listener
	g     *Guard
	name  string
	count *atomic.Uint64
}

func (l *guarded) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := c.RemoteAddr()
		if l.g.AllowedAddr(peer) {
			return c, nil
		}
		// Counted before the close, so whoever sees the close sees the count.
		l.count.Add(1)
		total := l.g.refused.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			// Reset rather than a graceful close: the peer learns at once and
			// the box keeps no TIME_WAIT state for scanners.
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		l.g.logRefusal(peer, l.name, total)
	}
}

// Refused is the number of connections this listener refused.
func (l *guarded) Refused() uint64 { return l.count.Load() }
