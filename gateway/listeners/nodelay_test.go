package listeners

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestAcceptedConnectionsHaveNoDelay: set_tcp_nodelay true is what the box
// does on every connection (Go's default, which the listeners keep).
func TestAcceptedConnectionsHaveNoDelay(t *testing.T) {
	ln, err := listen(Config{ID: "nodelay", Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second) // the kernel completes it before Accept
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if v == 0 {
		t.Fatal("TCP_NODELAY is off on an accepted connection")
	}
}
