package fastpath

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// unsentBytes is what the kernel holds for the peer, not yet acknowledged
// (SIOCOUTQ), or -1 when unknown.
func unsentBytes(raw syscall.RawConn) int {
	n := -1
	err := raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.TIOCOUTQ); err == nil {
			n = v
		}
	})
	if err != nil {
		return -1
	}
	return n
}
