package ownhost

import (
	"errors"
	"net"
	"testing"
)

func TestAllowed(t *testing.T) {
	h := &Hosts{
		Names:    []string{"box.home.arpa."},
		Hostname: func() (string, error) { return "HomeBox", nil },
		Addrs: func() ([]net.Addr, error) {
			return []net.Addr{
				&net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(24, 32)},
				&net.IPNet{IP: net.ParseIP("2001:db8:1::1"), Mask: net.CIDRMask(64, 128)},
			}, nil
		},
	}
	for host, want := range map[string]bool{
		"192.0.2.1":            true,
		"192.0.2.1:9001":       true,
		"[2001:db8:1::1]:80":   true,
		"[::ffff:192.0.2.1]":   true,
		"127.0.0.1:8080":       true,
		"[::1]:8080":           true,
		"localhost:3000":       true,
		"homebox":              true,
		"HOMEBOX.local:8080":   true,
		"homebox.local.":       true,
		"box.home.arpa":        true,
		"192.0.2.2":            false, // a neighbour, not the box
		"evil.example":         false,
		"evil.example:8080":    false,
		"homebox.evil.example": false,
		"":                     false,
	} {
		if got := h.Allowed(host); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestListingFailureKeepsLoopbackAndNames(t *testing.T) {
	h := &Hosts{
		Hostname: func() (string, error) { return "homebox", nil },
		Addrs:    func() ([]net.Addr, error) { return nil, errors.New("netlink refused") },
	}
	if !h.Allowed("127.0.0.1") || !h.Allowed("homebox.local") {
		t.Error("loopback and the hostname must be allowed when interfaces cannot be listed")
	}
	if h.Allowed("192.0.2.1") {
		t.Error("an address must not be allowed when interfaces cannot be listed")
	}
}
