package mdns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

// DefaultRescan is how often a Follower lists the interfaces again: short
// enough that a box whose network comes up after gatewayd is findable within
// seconds, long enough to cost nothing (one netlink dump per interface).
const DefaultRescan = 2 * time.Second

// FollowConfig says what a Follower advertises and browses, and where.
type FollowConfig struct {
	// Interfaces are the names to run on; empty: every up,
	// multicast-capable, non-loopback interface. A named interface that is
	// missing or down is waited for, not an error.
	Interfaces []string
	Hostname   string
	Services   []ServiceSpec
	Rescan     time.Duration // DefaultRescan when zero
	// Found receives the entries browsing hears; nil: no browsing.
	Found       func(Entry)
	BrowseTypes []string      // BrowseTypes when empty
	BrowseEvery time.Duration // 5 minutes when zero
	BrowseWait  time.Duration // 2 s when zero
	Logger      *slog.Logger
}

// Follower advertises and browses on the interfaces that are up and have an
// address, and follows them: every Rescan it lists them again and starts,
// re-addresses or stops the per-interface responders to match. It never
// depends on the network being up when it starts, and a listing that fails
// (Android refuses netlink to apps) is logged and retried.
type Follower struct {
	cfg    FollowConfig
	log    *slog.Logger
	adv    *Advertiser
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	close  sync.Once
	kick   chan struct{} // a new interface waits to be browsed

	// listIfaces and addrsOf are net.Interfaces and interfaceIPs; tests
	// replace them to make listing fail without touching real interfaces.
	listIfaces func() ([]net.Interface, error)
	addrsOf    func(net.Interface) ([]net.IP, error)

	mu      sync.Mutex
	links   map[string]*link // by interface name
	fresh   map[string]bool  // links not browsed yet
	failing map[failKey]bool // only the scanning goroutine touches it
}

// link is one interface being followed.
type link struct {
	iface net.Interface
	ips   []net.IP
	adv   *ifaceAdvertiser
}

// failKey is a kind of failure, logged when it starts and when it ends
// rather than at every rescan.
type failKey struct{ kind, iface string }

// Follow starts advertising and browsing. Only a hostname that cannot be
// advertised fails it; no interface being up is logged and waited out.
func Follow(cfg FollowConfig) (*Follower, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	adv, err := newAdvertiser(cfg.Hostname, cfg.Services, cfg.Logger)
	if err != nil {
		return nil, err
	}
	f := newFollower(cfg, adv)
	f.start()
	return f, nil
}

func newFollower(cfg FollowConfig, adv *Advertiser) *Follower {
	ctx, cancel := context.WithCancel(context.Background())
	return &Follower{
		cfg: cfg, log: cfg.Logger, adv: adv, ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1),
		listIfaces: net.Interfaces, addrsOf: interfaceIPs,
		links: map[string]*link{}, fresh: map[string]bool{}, failing: map[failKey]bool{},
	}
}

func (f *Follower) start() {
	// The first scan runs now: a box whose network is already up is
	// advertised before Follow returns, as before.
	f.scan()
	f.mu.Lock()
	if len(f.links) == 0 {
		f.log.Warn("mdns: no interface is up with an address yet; waiting for one", "rescan", f.cfg.Rescan)
	}
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.NewTicker(f.cfg.Rescan)
		defer t.Stop()
		for {
			select {
			case <-f.ctx.Done():
				return
			case <-t.C:
				f.scan()
			}
		}
	}()
	if f.cfg.Found != nil {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.browse()
		}()
	}
}

// Update replaces the advertised services on every interface.
func (f *Follower) Update(services []ServiceSpec) { f.adv.Update(services) }

// Interfaces are the names of the interfaces advertised on now, sorted.
func (f *Follower) Interfaces() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.links))
	for n := range f.links {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close stops following and browsing, says goodbye and stops answering.
func (f *Follower) Close() error {
	f.close.Do(func() {
		f.cancel()
		f.wg.Wait()
		f.adv.Close()
		f.mu.Lock()
		clear(f.links)
		clear(f.fresh)
		f.mu.Unlock()
	})
	return nil
}

// selected says whether ifi is one mDNS may run on now.
func (f *Follower) selected(ifi net.Interface) bool {
	if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
		return false
	}
	if len(f.cfg.Interfaces) == 0 {
		return ifi.Flags&net.FlagLoopback == 0
	}
	return slices.Contains(f.cfg.Interfaces, ifi.Name)
}

// scan lists the interfaces and makes the responders match them.
func (f *Follower) scan() {
	all, err := f.listIfaces()
	if err != nil {
		// Says nothing about the interfaces: keep what runs, try again.
		f.failed(failKey{kind: "list interfaces"}, err)
		return
	}
	f.recovered(failKey{kind: "list interfaces"})
	want := map[string]net.Interface{}
	for _, ifi := range all {
		if f.selected(ifi) {
			want[ifi.Name] = ifi
		}
	}
	for _, n := range f.cfg.Interfaces {
		if _, ok := want[n]; ok {
			f.recovered(failKey{"configured interface", n})
		} else {
			f.failed(failKey{"configured interface", n}, fmt.Errorf("%s is missing, down or cannot multicast; waiting for it", n))
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.adv.mu.Lock()
	defer f.adv.mu.Unlock()
	if f.ctx.Err() != nil {
		return
	}
	for name, l := range f.links {
		// A re-created interface has a new index: the old responder's
		// sockets are bound to one that no longer exists.
		if ifi, ok := want[name]; !ok || ifi.Index != l.iface.Index {
			f.dropLocked(l, "interface gone or down")
		}
	}
	var addrErr error
	for name, ifi := range want {
		ips, err := f.addrsOf(ifi)
		if err != nil {
			addrErr = err // keep it as it is until its addresses can be read
			continue
		}
		l := f.links[name]
		switch {
		case l == nil && len(ips) == 0:
		case l == nil:
			f.addLocked(ifi, ips)
		case len(ips) == 0:
			f.dropLocked(l, "no address left")
		case sameIPs(l.ips, ips):
		case sameFamilies(l.ips, ips):
			f.log.Info("mdns: interface address changed", "interface", name, "addresses", ips)
			l.ips = ips
			f.adv.readdressLocked(l.adv, ips)
		default:
			// The responder joined the groups of the families the
			// interface had: a family that came or went needs a new one.
			f.dropLocked(l, "address family changed")
			f.addLocked(ifi, ips)
		}
	}
	if addrErr != nil {
		f.failed(failKey{kind: "list addresses"}, addrErr)
	} else {
		f.recovered(failKey{kind: "list addresses"})
	}
	// Forget failures of interfaces that went: the map stays as small as
	// the set of interfaces.
	for k := range f.failing {
		if k.kind == "responder" {
			if _, ok := want[k.iface]; !ok {
				delete(f.failing, k)
			}
		}
	}
}

func (f *Follower) addLocked(ifi net.Interface, ips []net.IP) {
	key := failKey{"responder", ifi.Name}
	ia, err := f.adv.addLocked(ifi, ips, true)
	if err != nil {
		f.failed(key, err)
		return
	}
	f.recovered(key)
	f.links[ifi.Name] = &link{iface: ifi, ips: ips, adv: ia}
	f.fresh[ifi.Name] = true
	select {
	case f.kick <- struct{}{}:
	default: // a kick is already pending
	}
	f.log.Info("mdns: advertising and browsing on interface", "interface", ifi.Name, "addresses", ips, "hostname", f.cfg.Hostname)
}

func (f *Follower) dropLocked(l *link, why string) {
	f.adv.removeLocked(l.adv, true)
	delete(f.links, l.iface.Name)
	delete(f.fresh, l.iface.Name)
	f.log.Info("mdns: stopped on interface", "interface", l.iface.Name, "reason", why)
}

func (f *Follower) failed(k failKey, err error) {
	if f.failing[k] {
		return
	}
	f.failing[k] = true
	f.log.Warn("mdns: "+k.kind+" failed; retrying every "+f.cfg.Rescan.String(), "interface", k.iface, "error", err)
}

func (f *Follower) recovered(k failKey) {
	if !f.failing[k] {
		return
	}
	delete(f.failing, k)
	f.log.Info("mdns: "+k.kind+" works again", "interface", k.iface)
}

// browse runs a round on every followed interface every BrowseEvery, and
// one at once on each interface that appears.
func (f *Follower) browse() {
	every := f.cfg.BrowseEvery
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		var ifs []net.Interface
		select {
		case <-f.ctx.Done():
			return
		case <-f.kick:
			ifs = f.toBrowse(false)
		case <-t.C:
			ifs = f.toBrowse(true)
			t.Reset(every)
		}
		b := &Browser{Interfaces: ifs, Types: f.cfg.BrowseTypes, Wait: f.cfg.BrowseWait, Logger: f.log, Found: f.cfg.Found, follows: f.follows}
		b.Round(f.ctx)
	}
}

// toBrowse is every followed interface, or only those not browsed yet.
func (f *Follower) toBrowse(all bool) []net.Interface {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []net.Interface
	for name, l := range f.links {
		if all || f.fresh[name] {
			out = append(out, l.iface)
		}
	}
	clear(f.fresh)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// follows tells a browse round whether ifi is still followed, so that it
// does not query (and warn about) an interface that went meanwhile.
func (f *Follower) follows(ifi net.Interface) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[ifi.Name]
	return l != nil && l.iface.Index == ifi.Index
}

func sameIPs(a, b []net.IP) bool {
	return slices.EqualFunc(a, b, net.IP.Equal)
}

// sameFamilies says whether a and b have the same address families.
func sameFamilies(a, b []net.IP) bool {
	fam := func(ips []net.IP) (v4, v6 bool) {
		for _, ip := range ips {
			if ip.To4() != nil {
				v4 = true
			} else {
				v6 = true
			}
		}
		return
	}
	a4, a6 := fam(a)
	b4, b6 := fam(b)
	return a4 == b4 && a6 == b6
}
