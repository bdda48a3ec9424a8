//go:build !linux

package fastpath

import "syscall"

// unsentBytes is unknown here.
func unsentBytes(syscall.RawConn) int { return -1 }
