//go:build !linux

package listeners

import (
	"errors"
	"syscall"
)

// bindToDevice: only Linux can tie a socket to an interface.
func bindToDevice(string) func(network, address string, c syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		return errors.New("bind_interface needs Linux")
	}
}
