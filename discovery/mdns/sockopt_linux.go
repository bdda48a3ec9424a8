package mdns

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// ipMulticastAll is IP_MULTICAST_ALL from linux/in.h (not in package syscall).
const ipMulticastAll = 49

// listen5353 opens a send-only socket on the mDNS port, shared with the
// responders (SO_REUSEADDR) and deaf to multicast (IP_MULTICAST_ALL off), so
// it never steals or queues queries meant for them.
func listen5353(network, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			if serr == nil && network == "udp4" {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipMulticastAll, 0)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("mdns: open %s %s: %w", network, addr, err)
	}
	return pc.(*net.UDPConn), nil
}
