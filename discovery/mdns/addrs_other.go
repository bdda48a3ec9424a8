//go:build !linux

package mdns

import "net/netip"

type ifAddr struct {
	index int
	addr  netip.Addr
}

// unusableV6 knows of no address that cannot be sent from off Linux.
func unusableV6() map[ifAddr]bool { return nil }
