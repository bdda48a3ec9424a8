package listeners

import "syscall"

// bindToDevice ties a socket to one network interface (bind_interface):
// the kernel then only hands it packets that came in on that interface.
func bindToDevice(iface string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, iface)
		}); cerr != nil {
			return cerr
		}
		return err
	}
}
