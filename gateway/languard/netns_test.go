//go:build linux

package languard

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/netnstest"
)

// The guard judged inside a real namespace: "lan" is the subnet of the
// box's veth, read from the kernel, and follows an address added and
// removed. The peer is a second namespace on the same wire holding an
// address on the box's subnet and one on another network (routed by the
// box through it), all in documentation ranges.
func TestNetnsLANFollowsTheInterfaces(t *testing.T) {
	ns := netnstest.New(t, "box", "peer")
	for _, n := range []string{"box", "peer"} {
		ns.Sysctl(n, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	ns.Veth("box", "lan0", "peer", "eth0")
	ns.In("box", "addr", "add", "192.0.2.1/24", "dev", "lan0")
	ns.In("peer", "addr", "add", "192.0.2.10/24", "dev", "eth0")
	ns.In("peer", "addr", "add", "198.51.100.10/24", "dev", "eth0")
	ns.In("box", "route", "add", "198.51.100.0/24", "via", "192.0.2.10")

	g := mustGuard(t, "lan")
	g.SetLogger(quietLog())
	now := time.Now()
	var mu sync.Mutex
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	var ln net.Listener
	ns.Do("box", func() {
		raw, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Errorf("listen in box: %v", err)
			return
		}
		// The first listing happens here, on the box's thread.
		if got := g.Attached(); len(got) != 2 || !contains(got, "192.0.2.0/24") {
			t.Errorf("attached in box = %v, want 127.0.0.0/8 and 192.0.2.0/24", got)
		}
		ln = g.Listener(raw, "netns")
	})
	if ln == nil {
		t.FailNow()
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi"))
			_ = c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	dial := func(from string) error {
		var err error
		ns.Do("peer", func() {
			d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			var c net.Conn
			c, err = d.Dial("tcp4", "192.0.2.1:"+port)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			var b []byte
			b, err = io.ReadAll(c)
			if err == nil && string(b) != "hi" {
				err = errors.New("closed without a greeting")
			}
		})
		return err
	}
	if err := dial("192.0.2.10"); err != nil {
		t.Fatalf("peer on the box's subnet refused: %v", err)
	}
	if err := dial("198.51.100.10"); err == nil {
		t.Fatal("peer on another network accepted")
	}
	// The box gets an address on 198.51.100.0/24: that subnet is attached
	// once the listing is due again. The listing is made here, on the box's
	// thread: the accepting goroutine's thread is in the test's namespace.
	ns.In("box", "addr", "add", "198.51.100.1/24", "dev", "lan0")
	advance(attachedFresh)
	ns.Do("box", func() { g.Attached() })
	if err := dial("198.51.100.10"); err != nil {
		t.Fatalf("peer on a newly attached subnet refused: %v", err)
	}
	ns.In("box", "addr", "del", "198.51.100.1/24", "dev", "lan0")
	advance(attachedFresh)
	ns.Do("box", func() { g.Attached() })
	if err := dial("198.51.100.10"); err == nil {
		t.Fatal("peer accepted after its subnet was removed from the box")
	}
	if g.Allowed(netip.MustParseAddr("10.1.2.3")) {
		t.Fatal("a private address outside the attached subnets allowed")
	}
}

func contains(ps []netip.Prefix, s string) bool {
	for _, p := range ps {
		if p.String() == s {
			return true
		}
	}
	return false
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
