package bridge

import (
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// sockOpts are the socket settings of a bridge's connection to its remote:
// bridge_bind_address, bridge_tcp_keepalive and bridge_tcp_user_timeout.
type sockOpts struct {
	bind        string // local IP; "" = chosen by the system
	keepIdle    time.Duration
	keepIntvl   time.Duration
	keepCount   int
	userTimeout time.Duration // TCP_USER_TIMEOUT; 0 = the system's
}

func newSockOpts(c mosquittoconf.Bridge) sockOpts {
	return sockOpts{
		bind:        c.BindAddress,
		keepIdle:    time.Duration(c.TCPKeepaliveIdle) * time.Second,
		keepIntvl:   time.Duration(c.TCPKeepaliveInterval) * time.Second,
		keepCount:   c.TCPKeepaliveCount,
		userTimeout: time.Duration(c.TCPUserTimeout) * time.Millisecond,
	}
}

// dialer is a net.Dialer with these settings.
func (so sockOpts) dialer() (*net.Dialer, error) {
	d := &net.Dialer{Timeout: connectTimeout}
	if so.bind != "" {
		ip := net.ParseIP(so.bind)
		if ip == nil {
			return nil, fmt.Errorf("bridge_bind_address %q is not an IP address", so.bind)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	if so.keepIdle > 0 {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: so.keepIdle, Interval: so.keepIntvl, Count: so.keepCount}
	}
	if so.userTimeout > 0 {
		ms := int(so.userTimeout / time.Millisecond)
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("bridge_tcp_user_timeout: %w", serr)
			}
			return nil
		}
	}
	return d, nil
}
