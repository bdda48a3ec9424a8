//go:build !unix

package listeners

import "net"

// newPooledReadConn returns c: pooled reads rely on non-blocking Unix
// sockets (see pooledread.go), and the gateway runs on Linux.
func newPooledReadConn(c net.Conn) net.Conn { return c }
