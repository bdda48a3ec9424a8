//go:build !linux

package mdns

import (
	"fmt"
	"net"
)

// listen5353 on systems other than the box's (Linux) sends from any port:
// enough for development, though strict receivers drop such responses.
func listen5353(network, _ string) (*net.UDPConn, error) {
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("mdns: open %s: %w", network, err)
	}
	return c, nil
}
