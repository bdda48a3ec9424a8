package mdns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	hmdns "github.com/hashicorp/mdns"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

var (
	groupV4 = &net.UDPAddr{IP: net.ParseIP("224.0.0.251"), Port: 5353}
	groupV6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353}
)

// announceGap separates the repeated announcements (RFC 6762 §8.3: at least
// two, one second apart).
const announceGap = time.Second

// Advertiser answers queries for the gateway's services on each chosen
// interface, announces them when they start or change, and says goodbye
// when stopped. Interfaces can be added, re-addressed and removed while it
// runs (see Follower).
type Advertiser struct {
	log      *slog.Logger
	instance string // the box's hostname
	host     string // "<label>.local."
	services []ServiceSpec
	ifs      []*ifaceAdvertiser
	mu       sync.Mutex
	wg       sync.WaitGroup
	ctx      context.Context
	stop     context.CancelFunc
	close    sync.Once
}

type ifaceAdvertiser struct {
	iface  net.Interface
	zone   *zone
	server *hmdns.Server
}

func newAdvertiser(hostname string, services []ServiceSpec, logger *slog.Logger) (*Advertiser, error) {
	if logger == nil {
		logger = slog.Default()
	}
	label := HostLabel(hostname)
	if label == "" {
		return nil, fmt.Errorf("mdns: hostname %q has no letters or digits to advertise", hostname)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Advertiser{log: logger, instance: hostname, host: label + "." + domain, services: services, ctx: ctx, stop: cancel}, nil
}

// Advertise starts answering for services on the interfaces, named hostname
// (the instance name and the host's .local name), and announces them.
func Advertise(ifaces []net.Interface, hostname string, services []ServiceSpec, logger *slog.Logger) (*Advertiser, error) {
	a, err := newAdvertiser(hostname, services, logger)
	if err != nil {
		return nil, err
	}
	// a is not shared yet: no lock needed until the announcement.
	for _, ifi := range ifaces {
		ips, err := interfaceIPs(ifi)
		if err != nil {
			a.shutdown(false)
			return nil, err
		}
		if len(ips) == 0 {
			a.log.Warn("mdns: interface has no address, not advertised there", "interface", ifi.Name)
			continue
		}
		if _, err := a.addLocked(ifi, ips, false); err != nil {
			a.shutdown(false)
			return nil, err
		}
	}
	if len(a.ifs) == 0 {
		a.stop()
		return nil, errors.New("mdns: no interface with an address to advertise on")
	}
	a.mu.Lock()
	a.announceLocked(a.ifs)
	a.mu.Unlock()
	return a, nil
}

// addLocked starts a responder on ifi answering with ips, and announces on
// it when announce is set.
func (a *Advertiser) addLocked(ifi net.Interface, ips []net.IP, announce bool) (*ifaceAdvertiser, error) {
	z := &zone{instance: a.instance, host: a.host, ips: ips}
	z.set(a.services)
	srv, err := hmdns.NewServer(&hmdns.Config{Zone: z, Iface: &ifi, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		return nil, fmt.Errorf("mdns: responder on %s: %w", ifi.Name, err)
	}
	ia := &ifaceAdvertiser{iface: ifi, zone: z, server: srv}
	a.ifs = append(a.ifs, ia)
	if announce {
		a.announceLocked([]*ifaceAdvertiser{ia})
	}
	return ia, nil
}

// removeLocked withdraws the records from ia's interface (if it can still
// send there) and stops its responder.
func (a *Advertiser) removeLocked(ia *ifaceAdvertiser, goodbye bool) {
	for i, x := range a.ifs {
		if x == ia {
			a.ifs = append(a.ifs[:i], a.ifs[i+1:]...)
			break
		}
	}
	if goodbye {
		// Usually the interface has just gone or lost its addresses: a
		// failure here is expected, not worth a warning.
		if err := send(ia.iface, ia.zone.all(0)); err != nil {
			a.log.Debug("mdns: goodbye not sent", "interface", ia.iface.Name, "error", err)
		}
	}
	ia.server.Shutdown()
}

// readdressLocked makes ia answer with ips: the addresses it no longer has
// are withdrawn, the current ones announced.
func (a *Advertiser) readdressLocked(ia *ifaceAdvertiser, ips []net.IP) {
	old := ia.zone.all(0)
	ia.zone.setIPs(ips)
	a.withdrawLocked(ia, old)
	a.announceLocked([]*ifaceAdvertiser{ia})
}

// withdrawLocked sends goodbyes for the records of old that ia no longer
// publishes.
func (a *Advertiser) withdrawLocked(ia *ifaceAdvertiser, old []dns.RR) {
	now := ia.zone.all(ttl)
	var gone []dns.RR
	for _, rr := range old {
		if !containsRR(now, rr) {
			gone = append(gone, rr)
		}
	}
	if len(gone) > 0 {
		if err := send(ia.iface, gone); err != nil {
			a.log.Warn("mdns: goodbye for changed records not sent", "interface", ia.iface.Name, "error", err)
		}
	}
}

// Update replaces the advertised services (after a port change) and
// announces the new records; services no longer present are withdrawn.
func (a *Advertiser) Update(services []ServiceSpec) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return
	}
	a.services = services
	for _, ia := range a.ifs {
		old := ia.zone.all(0)
		ia.zone.set(services)
		a.withdrawLocked(ia, old)
	}
	a.announceLocked(a.ifs)
}

func containsRR(list []dns.RR, rr dns.RR) bool {
	for _, x := range list {
		y := dns.Copy(x)
		y.Header().Ttl = rr.Header().Ttl
		if dns.IsDuplicate(y, rr) {
			return true
		}
	}
	return false
}

// Close sends goodbye packets (records with TTL 0) and stops answering.
func (a *Advertiser) Close() error {
	a.shutdown(true)
	return nil
}

func (a *Advertiser) shutdown(goodbye bool) {
	a.close.Do(func() {
		a.mu.Lock()
		a.stop()
		a.mu.Unlock()
		a.wg.Wait()
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, ia := range a.ifs {
			if goodbye {
				if err := send(ia.iface, ia.zone.all(0)); err != nil {
					a.log.Warn("mdns: goodbye not sent", "interface", ia.iface.Name, "error", err)
				}
			}
			ia.server.Shutdown()
		}
		a.ifs = nil
	})
}

// announceLocked sends the records on targets now and once more a second
// later, on those of them still advertised then.
func (a *Advertiser) announceLocked(targets []*ifaceAdvertiser) {
	if len(targets) == 0 || a.ctx.Err() != nil {
		return
	}
	for _, ia := range targets {
		if err := send(ia.iface, ia.zone.all(ttl)); err != nil {
			a.log.Warn("mdns: announcement not sent", "interface", ia.iface.Name, "error", err)
		}
	}
	targets = append([]*ifaceAdvertiser(nil), targets...)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTimer(announceGap)
		defer t.Stop()
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.ctx.Err() != nil {
			return
		}
		for _, ia := range targets {
			if !slices.Contains(a.ifs, ia) {
				continue // removed or replaced meanwhile
			}
			if err := send(ia.iface, ia.zone.all(ttl)); err != nil {
				a.log.Warn("mdns: announcement not sent", "interface", ia.iface.Name, "error", err)
			}
		}
	}()
}

// send multicasts an unsolicited response out of one interface, from port
// 5353 as RFC 6762 §11 requires (receivers drop responses from other ports).
func send(ifi net.Interface, records []dns.RR) error {
	if len(records) == 0 {
		return nil
	}
	msg := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true, Answer: records}
	buf, err := msg.Pack()
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	v4, v6, err := families(ifi)
	if err != nil {
		return err
	}
	var errs []error
	if v4 {
		errs = append(errs, sendV4(ifi, buf))
	}
	if v6 {
		errs = append(errs, sendV6(ifi, buf))
	}
	return errors.Join(errs...)
}

func sendV4(ifi net.Interface, buf []byte) error {
	c, err := listen5353("udp4", "0.0.0.0:5353")
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastInterface(&ifi); err != nil {
		return fmt.Errorf("ipv4 multicast interface %s: %w", ifi.Name, err)
	}
	if err := p.SetMulticastTTL(255); err != nil {
		return fmt.Errorf("ipv4 multicast ttl: %w", err)
	}
	if _, err := p.WriteTo(buf, nil, groupV4); err != nil {
		return fmt.Errorf("ipv4 send on %s: %w", ifi.Name, err)
	}
	return nil
}

func sendV6(ifi net.Interface, buf []byte) error {
	c, err := listen5353("udp6", "[::]:5353")
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv6.NewPacketConn(c)
	if err := p.SetMulticastInterface(&ifi); err != nil {
		return fmt.Errorf("ipv6 multicast interface %s: %w", ifi.Name, err)
	}
	if err := p.SetMulticastHopLimit(255); err != nil {
		return fmt.Errorf("ipv6 hop limit: %w", err)
	}
	// No zone on the destination: the kernel then sends out of the
	// multicast interface set above, by index. A zone by name goes through
	// Go's name->index cache (refreshed once a minute) and, after the
	// interface was re-created, names the dead one: ENETUNREACH.
	if _, err := p.WriteTo(buf, nil, groupV6); err != nil {
		return fmt.Errorf("ipv6 send on %s: %w", ifi.Name, err)
	}
	return nil
}

// interfaceIPs lists the usable unicast addresses of an interface.
func interfaceIPs(ifi net.Interface) ([]net.IP, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("mdns: addresses of %s: %w", ifi.Name, err)
	}
	var ips []net.IP
	var skip map[ifAddr]bool
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsMulticast() {
			continue
		}
		if n.IP.To4() == nil {
			if skip == nil {
				skip = unusableV6()
			}
			if ip, ok := netip.AddrFromSlice(n.IP); ok && skip[ifAddr{index: ifi.Index, addr: ip}] {
				continue
			}
		}
		ips = append(ips, n.IP)
	}
	return ips, nil
}

// families tells which address families ifi has addresses of, to know
// which multicast groups to use on it.
func families(ifi net.Interface) (v4, v6 bool, err error) {
	ips, err := interfaceIPs(ifi)
	if err != nil {
		return false, false, err
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6, nil
}

// HostLabel turns a hostname into a DNS label: letters, digits and dashes,
// the first label only.
func HostLabel(hostname string) string {
	hostname, _, _ = strings.Cut(hostname, ".")
	var b strings.Builder
	for _, r := range strings.ToLower(hostname) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-' || r == '_' || r == ' ':
			b.WriteByte('-')
		}
		if b.Len() == 63 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// Interfaces picks the interfaces mDNS runs on: the named ones (each must
// exist, be up and multicast-capable), or with none named every up,
// multicast-capable, non-loopback interface.
func Interfaces(names []string) ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("mdns: list interfaces: %w", err)
	}
	usable := func(ifi net.Interface) bool {
		return ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0
	}
	if len(names) == 0 {
		var out []net.Interface
		for _, ifi := range all {
			if usable(ifi) && ifi.Flags&net.FlagLoopback == 0 {
				out = append(out, ifi)
			}
		}
		return out, nil
	}
	var out []net.Interface
	for _, n := range names {
		var found *net.Interface
		for i := range all {
			if all[i].Name == n {
				found = &all[i]
			}
		}
		if found == nil {
			return nil, fmt.Errorf("mdns: interface %q does not exist", n)
		}
		if !usable(*found) {
			return nil, fmt.Errorf("mdns: interface %q is down or cannot multicast", n)
		}
		out = append(out, *found)
	}
	return out, nil
}
