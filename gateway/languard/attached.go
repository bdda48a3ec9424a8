package languard

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The subnets attached to the box's interfaces are read again at most every
// attachedFresh, or, when a peer matches none of them, once attachedRetry
// has passed (a lease just renewed, an interface just up), so a scanner
// cannot make the box list its interfaces more than once a second.
const (
	attachedFresh = 5 * time.Second
	attachedRetry = time.Second
)

// attached is the "lan" part that follows the interfaces.
type attached struct {
	g *Guard

	mu       sync.Mutex
	list     func() ([]net.Addr, error)
	prefixes []netip.Prefix
	checked  time.Time
	failed   bool // the last listing failed and was logged
}

func newAttached(g *Guard) *attached {
	return &attached{g: g, list: net.InterfaceAddrs}
}

// SetInterfaceAddrs replaces how "lan" lists the box's interface addresses
// (net.InterfaceAddrs); for tests. It has no effect without "lan".
func (g *Guard) SetInterfaceAddrs(list func() ([]net.Addr, error)) {
	if g.lan == nil {
		return
	}
	g.lan.mu.Lock()
	g.lan.list, g.lan.checked, g.lan.prefixes = list, time.Time{}, nil
	g.lan.mu.Unlock()
}

// Attached returns the subnets "lan" currently takes from the interfaces
// (nil without "lan", or when they cannot be listed).
func (g *Guard) Attached() []netip.Prefix {
	if g.lan == nil {
		return nil
	}
	a := g.lan
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked(g.now(), attachedFresh)
	return append([]netip.Prefix(nil), a.prefixes...)
}

// contains reports whether ip is on a subnet attached to an interface.
func (a *attached) contains(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.g.now()
	a.refreshLocked(now, attachedFresh)
	if match(a.prefixes, ip) {
		return true
	}
	if a.refreshLocked(now, attachedRetry) {
		return match(a.prefixes, ip)
	}
	return false
}

func match(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refreshLocked lists the interfaces again when the last listing is older
// than maxAge; it reports whether it listed. A listing that fails keeps the
// last good one (none at first: "lan" is then loopback and link-local),
// and is logged once until a listing works again: Android refuses netlink
// to apps, so there it fails every time.
func (a *attached) refreshLocked(now time.Time, maxAge time.Duration) bool {
	if !a.checked.IsZero() && now.Sub(a.checked) < maxAge {
		return false
	}
	a.checked = now
	addrs, err := a.list()
	if err != nil {
		if !a.failed {
			a.failed = true
			log := a.g.logger.Load()
			if log == nil {
				log = slog.Default()
			}
			log.Warn(`cannot list the network interfaces: "lan" is loopback, link-local and the subnets last seen until they can be listed`,
				"error", err, "subnets_last_seen", len(a.prefixes))
		}
		return true
	}
	a.failed = false
	a.prefixes = attachedPrefixes(addrs)
	return true
}

// attachedPrefixes turns interface addresses (192.0.2.1/24) into their
// subnets (192.0.2.0/24). A prefix of length 0 (a default-route-like
// address) would be the whole Internet and is skipped.
func attachedPrefixes(addrs []net.Addr) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, bits := ipn.Mask.Size()
		ip = ip.Unmap().WithZone("")
		if bits == 128 && ip.Is4() {
			ones -= 96
		}
		if ones <= 0 {
			continue
		}
		p, err := ip.Prefix(ones)
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}
