// Package mdns advertises the gateway's services over multicast DNS and
// browses for the devices around it, on chosen interfaces only.
//
// It builds on hashicorp/mdns (responder and client) and fills what it lacks:
// one zone serving several services, unsolicited announcements at start and
// after a change, goodbye packets on stop (RFC 6762 §8.3, §10.1), and
// per-interface operation, since its client joins the group on the default
// interface only.
package mdns

import (
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// ttl of every record we publish, in seconds (RFC 6762 suggests 120 for
// records that name a host).
const ttl = 120

// cacheFlush marks a record as unique: receivers replace what they cached.
const cacheFlush = 1 << 15

// ServiceSpec is one service to advertise.
type ServiceSpec struct {
	Type string   // "_mqtt._tcp"
	Port int      // 0: not advertised
	TXT  []string // "key=value"
}

// zone answers queries for several services of one host. It is the
// hashicorp/mdns Zone of one interface, with that interface's addresses.
type zone struct {
	mu       sync.RWMutex
	instance string // the box's hostname
	host     string // "<hostname>.local."
	ips      []net.IP
	services []ServiceSpec
}

const domain = "local."

func (z *zone) set(services []ServiceSpec) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.services = nil
	for _, s := range services {
		if s.Port > 0 {
			z.services = append(z.services, s)
		}
	}
}

// setIPs replaces the addresses the A/AAAA records name.
func (z *zone) setIPs(ips []net.IP) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.ips = ips
}

func serviceName(typ string) string { return strings.Trim(typ, ".") + "." + domain }

func (z *zone) instanceName(typ string) string {
	return escapeLabel(z.instance) + "." + serviceName(typ)
}

// escapeLabel keeps dots and backslashes in an instance name from being
// read as label separators.
func escapeLabel(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, ".", `\.`)
}

// Records answers one question (the hashicorp/mdns Zone interface).
func (z *zone) Records(q dns.Question) []dns.RR {
	z.mu.RLock()
	defer z.mu.RUnlock()
	name := strings.ToLower(q.Name)
	any := q.Qtype == dns.TypeANY
	if name == "_services._dns-sd._udp."+domain && (any || q.Qtype == dns.TypePTR) {
		var out []dns.RR
		for _, s := range z.services {
			out = append(out, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR, ttl, false), Ptr: serviceName(s.Type)})
		}
		return out
	}
	for _, s := range z.services {
		switch name {
		case strings.ToLower(serviceName(s.Type)):
			if any || q.Qtype == dns.TypePTR {
				return z.serviceRecords(s, ttl)
			}
		case strings.ToLower(z.instanceName(s.Type)):
			switch {
			case any:
				return z.serviceRecords(s, ttl)[1:]
			case q.Qtype == dns.TypeSRV:
				return append([]dns.RR{z.srv(s, ttl)}, z.addrRecords(ttl)...)
			case q.Qtype == dns.TypeTXT:
				return []dns.RR{z.txt(s, ttl)}
			}
		}
	}
	if name == strings.ToLower(z.host) && (any || q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) {
		return z.addrRecords(ttl)
	}
	return nil
}

// serviceRecords are PTR, SRV, TXT, then addresses: the order in which the
// hashicorp/mdns client, and most others, assemble an entry.
func (z *zone) serviceRecords(s ServiceSpec, t uint32) []dns.RR {
	out := []dns.RR{&dns.PTR{Hdr: hdr(serviceName(s.Type), dns.TypePTR, t, false), Ptr: z.instanceName(s.Type)}}
	out = append(out, z.srv(s, t), z.txt(s, t))
	return append(out, z.addrRecords(t)...)
}

func (z *zone) srv(s ServiceSpec, t uint32) dns.RR {
	return &dns.SRV{Hdr: hdr(z.instanceName(s.Type), dns.TypeSRV, t, true), Priority: 0, Weight: 0, Port: uint16(s.Port), Target: z.host}
}

func (z *zone) txt(s ServiceSpec, t uint32) dns.RR {
	txt := s.TXT
	if len(txt) == 0 {
		txt = []string{""} // RFC 6763 §6.1: never an empty TXT record
	}
	return &dns.TXT{Hdr: hdr(z.instanceName(s.Type), dns.TypeTXT, t, true), Txt: txt}
}

func (z *zone) addrRecords(t uint32) []dns.RR {
	var out []dns.RR
	for _, ip := range z.ips {
		if v4 := ip.To4(); v4 != nil {
			out = append(out, &dns.A{Hdr: hdr(z.host, dns.TypeA, t, true), A: v4})
		} else {
			out = append(out, &dns.AAAA{Hdr: hdr(z.host, dns.TypeAAAA, t, true), AAAA: ip})
		}
	}
	return out
}

// all is every record of every service: what an announcement carries, and,
// with ttl 0, what a goodbye withdraws.
func (z *zone) all(t uint32) []dns.RR {
	z.mu.RLock()
	defer z.mu.RUnlock()
	var out []dns.RR
	for i, s := range z.services {
		recs := z.serviceRecords(s, t)
		if i > 0 {
			recs = recs[:3] // addresses once
		}
		out = append(out, recs...)
	}
	return out
}

func hdr(name string, typ uint16, t uint32, unique bool) dns.RR_Header {
	class := uint16(dns.ClassINET)
	if unique {
		class |= cacheFlush
	}
	return dns.RR_Header{Name: name, Rrtype: typ, Class: class, Ttl: t}
}
