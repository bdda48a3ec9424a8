package fastpath

import (
	"syscall"
	"unsafe"
)

// unsentBytes is what the kernel holds for the peer, not yet acknowledged
// (SIOCOUTQ), or -1 when unknown.
func unsentBytes(raw syscall.RawConn) int {
	n := -1
	err := raw.Control(func(fd uintptr) {
		var v int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
			n = int(v)
		}
	})
	if err != nil {
		return -1
	}
	return n
}
