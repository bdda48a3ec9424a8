package languard

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 14, finding 9: "lan" took every private range, so a 10.x peer
// routed in from another network was let in. It is the attached subnets.
func TestLANIsTheAttachedSubnetsNotThePrivateRanges(t *testing.T) {
	g := lanGuard(t, "192.168.1.10/24", "fe80::1/64")
	for addr, want := range map[string]bool{
		"192.168.1.77":       true,
		"127.0.0.1":          true,
		"::1":                true,
		"169.254.10.10":      true,
		"fe80::abcd":         true,
		"10.1.2.3":           false, // another private network, behind a router
		"172.20.0.5":         false,
		"192.168.7.7":        false,
		"fd00::1":            false,
		"::ffff:10.1.2.3":    false,
		"198.51.100.10":      false,
		"::ffff:192.168.1.5": true,
	} {
		if got := g.Allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	// Other private ranges when listed.
	g2 := mustGuard(t, "lan,10.0.0.0/8")
	g2.SetInterfaceAddrs(ifaces("192.168.1.10/24"))
	if !g2.Allowed(netip.MustParseAddr("10.1.2.3")) || g2.Allowed(netip.MustParseAddr("172.20.0.5")) {
		t.Error(`"lan,10.0.0.0/8" must let 10.x in and nothing else private`)
	}
}

// The attached subnets follow the interfaces: re-read every few seconds,
// and at once (at most once a second) when a peer matches none.
func TestAttachedFollowsInterfaceChanges(t *testing.T) {
	g := mustGuard(t, "lan")
	now := time.Unix(1e9, 0)
	var mu sync.Mutex
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cidrs := []string{"192.0.2.1/24"}
	calls := 0
	g.SetInterfaceAddrs(func() ([]net.Addr, error) { calls++; return ifaces(cidrs...)() })

	peer := netip.MustParseAddr("203.0.113.9")
	if !g.Allowed(netip.MustParseAddr("192.0.2.9")) || g.Allowed(peer) {
		t.Fatal("first listing not used")
	}
	cidrs = []string{"192.0.2.1/24", "203.0.113.1/24"} // a new interface comes up
	if g.Allowed(peer) {
		t.Fatal("listed again within a second of the last listing")
	}
	advance(attachedRetry)
	if !g.Allowed(peer) {
		t.Fatal("a peer on a new subnet refused after the retry interval")
	}
	cidrs = []string{"203.0.113.1/24"} // the old lease is gone
	before := calls
	for range 100 {
		g.Allowed(netip.MustParseAddr("192.0.2.9")) // still cached
	}
	if calls != before {
		t.Fatalf("%d listings for 100 peers within the cache time", calls-before)
	}
	advance(attachedFresh)
	if g.Allowed(netip.MustParseAddr("192.0.2.9")) {
		t.Fatal("a subnet that is gone still allowed after the cache time")
	}
}

// Android refuses netlink to apps: without a listing, "lan" is loopback and
// link-local, and the failure is logged once.
func TestListingFailureFallsBackAndLogsOnce(t *testing.T) {
	g := mustGuard(t, "lan")
	var logs bytes.Buffer
	g.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Unix(1e9, 0)
	g.now = func() time.Time { return now }
	g.SetInterfaceAddrs(func() ([]net.Addr, error) { return nil, errors.New("netlinkrib: permission denied") })
	for i := range 5 {
		now = now.Add(attachedFresh)
		if !g.Allowed(netip.MustParseAddr("127.0.0.1")) || !g.Allowed(netip.MustParseAddr("169.254.3.3")) || !g.Allowed(netip.MustParseAddr("fe80::2")) {
			t.Fatalf("round %d: loopback or link-local refused", i)
		}
		if g.Allowed(netip.MustParseAddr("192.168.1.5")) {
			t.Fatalf("round %d: a private address allowed with no interface listing", i)
		}
	}
	if n := strings.Count(logs.String(), "cannot list the network interfaces"); n != 1 {
		t.Fatalf("listing failure logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestAttachedPrefixes(t *testing.T) {
	addrs, _ := ifaces("192.0.2.1/24", "192.0.2.2/24", "2001:db8:1::1/64", "10.9.9.9/32", "0.0.0.0/0")()
	addrs = append(addrs, &net.IPNet{IP: net.ParseIP("198.51.100.1"), Mask: net.CIDRMask(120, 128)}, &net.IPAddr{IP: net.ParseIP("192.0.2.1")})
	got := attachedPrefixes(addrs)
	want := []string{"192.0.2.0/24", "2001:db8:1::/64", "10.9.9.9/32", "198.51.100.0/24"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].String() != w {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
