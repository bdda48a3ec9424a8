//go:build !linux

package fanout

import "syscall"

// unsentBytes is unknown here.
func unsentBytes(syscall.RawConn) int { return -1 }
