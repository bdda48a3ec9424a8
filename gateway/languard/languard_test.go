package languard

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func mustGuard(t *testing.T, list string) *Guard {
	t.Helper()
	g, err := ParseNetworkList(list)
	if err != nil {
		t.Fatalf("ParseNetworkList(%q): %v", list, err)
	}
	return g
}

// ifaces lists fixed interface addresses, as net.InterfaceAddrs would.
func ifaces(cidrs ...string) func() ([]net.Addr, error) {
	return func() ([]net.Addr, error) {
		var out []net.Addr
		for _, c := range cidrs {
			ip, n, err := net.ParseCIDR(c)
			if err != nil {
				return nil, err
			}
			out = append(out, &net.IPNet{IP: ip, Mask: n.Mask})
		}
		return out, nil
	}
}

// lanGuard is "lan" on a box whose interfaces hold cidrs.
func lanGuard(t *testing.T, cidrs ...string) *Guard {
	t.Helper()
	g := mustGuard(t, "lan")
	g.SetInterfaceAddrs(ifaces(cidrs...))
	return g
}

func TestAllowedDecision(t *testing.T) {
	// A box on 192.168.1.0/24, with a ULA and a global IPv6 prefix.
	lan := lanGuard(t, "127.0.0.1/8", "192.168.1.10/24", "::1/128", "fd00:1::10/64", "2001:db8:1::10/64", "fe80::10/64")
	loop := mustGuard(t, "loopback")
	anyG := mustGuard(t, "any")
	custom := mustGuard(t, "10.0.0.0/8, 203.0.113.0/24,198.51.100.7,2001:db8::/32")
	tests := []struct {
		g    *Guard
		name string
		ip   string
		want bool
	}{
		// lan: IPv4
		{lan, "lan", "127.0.0.1", true},
		{lan, "lan", "127.255.255.255", true},
		{lan, "lan", "128.0.0.0", false},
		{lan, "lan", "9.255.255.255", false},
		{lan, "lan", "10.0.0.0", false}, // private, but not attached (issue 14, finding 9),
		{lan, "lan", "10.255.255.255", false},
		{lan, "lan", "11.0.0.0", false},
		{lan, "lan", "172.15.255.255", false},
		{lan, "lan", "172.16.0.0", false},
		{lan, "lan", "172.31.255.255", false},
		{lan, "lan", "172.32.0.0", false},
		{lan, "lan", "192.167.255.255", false},
		{lan, "lan", "192.168.0.0", false},
		{lan, "lan", "192.168.1.0", true},
		{lan, "lan", "192.168.1.255", true},
		{lan, "lan", "192.168.2.1", false},
		{lan, "lan", "192.168.255.255", false},
		{lan, "lan", "192.169.0.0", false},
		{lan, "lan", "169.254.0.1", true},
		{lan, "lan", "169.254.255.255", true},
		{lan, "lan", "169.253.255.255", false},
		{lan, "lan", "169.255.0.0", false},
		{lan, "lan", "100.64.0.1", false}, // carrier-grade NAT is not the owner's LAN
		{lan, "lan", "100.127.255.255", false},
		{lan, "lan", "8.8.8.8", false},
		{lan, "lan", "203.0.113.9", false},
		{lan, "lan", "0.0.0.0", false},
		{lan, "lan", "255.255.255.255", false},
		// lan: IPv6
		{lan, "lan", "::1", true},
		{lan, "lan", "::2", false},
		{lan, "lan", "::", false},
		{lan, "lan", "fe80::1", true},
		{lan, "lan", "fe80::1%eth0", true},
		{lan, "lan", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{lan, "lan", "fec0::1", false},
		{lan, "lan", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{lan, "lan", "fc00::", false},
		{lan, "lan", "fd00:1::ffff", true},
		{lan, "lan", "fd00:2::1", false},
		{lan, "lan", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{lan, "lan", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{lan, "lan", "fe00::", false},
		{lan, "lan", "2001:db8::1", false},
		{lan, "lan", "2001:db8:1::99", true},
		{lan, "lan", "2606:4700::1111", false},
		// lan: IPv4-mapped IPv6 judged as IPv4
		{lan, "lan", "::ffff:10.1.2.3", false},
		{lan, "lan", "::ffff:127.0.0.1", true},
		{lan, "lan", "::ffff:192.168.1.1", true},
		{lan, "lan", "::ffff:8.8.8.8", false},
		{lan, "lan", "::ffff:172.32.0.0", false},
		// loopback only
		{loop, "loopback", "127.0.0.1", true},
		{loop, "loopback", "127.1.2.3", true},
		{loop, "loopback", "::1", true},
		{loop, "loopback", "::ffff:127.0.0.1", true},
		{loop, "loopback", "10.0.0.1", false},
		{loop, "loopback", "fe80::1", false},
		// any
		{anyG, "any", "8.8.8.8", true},
		{anyG, "any", "2606:4700::1111", true},
		{anyG, "any", "100.64.0.1", true},
		// custom
		{custom, "custom", "10.9.9.9", true},
		{custom, "custom", "127.0.0.1", false},
		{custom, "custom", "203.0.113.0", true},
		{custom, "custom", "203.0.113.255", true},
		{custom, "custom", "203.0.114.0", false},
		{custom, "custom", "198.51.100.7", true},
		{custom, "custom", "198.51.100.8", false},
		{custom, "custom", "::ffff:198.51.100.7", true},
		{custom, "custom", "2001:db8:ffff::1", true},
		{custom, "custom", "2001:db9::1", false},
		{custom, "custom", "192.168.1.1", false},
	}
	for _, tc := range tests {
		ip := netip.MustParseAddr(tc.ip)
		if got := tc.g.Allowed(ip); got != tc.want {
			t.Errorf("%s: Allowed(%s) = %v, want %v", tc.name, tc.ip, got, tc.want)
		}
		// The same judgement through a net.Addr, as Accept does.
		addr := &net.TCPAddr{IP: net.IP(ip.AsSlice()), Port: 1234, Zone: ip.Zone()}
		if got := tc.g.AllowedAddr(addr); got != tc.want {
			t.Errorf("%s: AllowedAddr(%s) = %v, want %v", tc.name, addr, got, tc.want)
		}
	}
}

func TestAllowedOddAddresses(t *testing.T) {
	g := lanGuard(t, "192.168.1.1/24", "10.1.2.1/24")
	if g.Allowed(netip.Addr{}) {
		t.Error("zero netip.Addr allowed")
	}
	if g.AllowedAddr(nil) {
		t.Error("nil net.Addr allowed")
	}
	if g.AllowedAddr(&net.UnixAddr{Name: "/tmp/x.sock", Net: "unix"}) {
		t.Error("unix address allowed: the guard must fail closed on addresses without an IP")
	}
	if !g.AllowedAddr(&net.UDPAddr{IP: net.ParseIP("192.168.1.2"), Port: 5353}) {
		t.Error("UDP LAN address refused")
	}
	if !mustGuard(t, "any").AllowedAddr(&net.UnixAddr{Name: "x", Net: "unix"}) {
		t.Error(`"any" refused a unix address`)
	}
	// net.ParseIP gives 16-byte forms for IPv4: they must be judged as IPv4.
	if !g.AllowedAddr(&net.TCPAddr{IP: net.ParseIP("10.1.2.3").To16(), Port: 1}) {
		t.Error("16-byte IPv4 refused")
	}
}

func TestParseNetworks(t *testing.T) {
	good := []struct {
		in   string
		want string
	}{
		{"lan", "lan"},
		{"LAN", "lan"},
		{" lan , 203.0.113.0/24 ", "lan,203.0.113.0/24"},
		{"10.1.2.3/8", "10.0.0.0/8"}, // host bits masked
		{"192.0.2.1", "192.0.2.1/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"loopback,any", "loopback,any"},
	}
	for _, tc := range good {
		g, err := ParseNetworkList(tc.in)
		if err != nil {
			t.Errorf("ParseNetworkList(%q): %v", tc.in, err)
			continue
		}
		if g.String() != tc.want {
			t.Errorf("ParseNetworkList(%q).String() = %q, want %q", tc.in, g.String(), tc.want)
		}
	}
	if g := mustGuard(t, "lan,any"); !g.Off() || !g.Allowed(netip.MustParseAddr("8.8.8.8")) {
		t.Error(`"lan,any" should turn the guard off`)
	}
	if n := len(mustGuard(t, "lan,lan,loopback").Prefixes()); n != len(lanFixed) {
		t.Errorf("duplicates kept: %d prefixes, want %d", n, len(lanFixed))
	}

	bad := []struct {
		in      string
		mention []string
	}{
		{"", []string{"empty list"}},
		{"  ", []string{"empty list"}},
		{"lan,", []string{"item 2", "empty"}},
		{"lan,,10.0.0.0/8", []string{"item 2", "empty"}},
		{"lan,wan", []string{"item 2", `"wan"`}},
		{"10.0.0.0/33", []string{"item 1", `"10.0.0.0/33"`, "CIDR"}},
		{"10.0.0/8", []string{"item 1", `"10.0.0/8"`}},
		{"300.1.2.3", []string{"item 1", `"300.1.2.3"`}},
		{"lan,fe80::1%eth0", []string{"item 2", "zone"}},
		{"::ffff:0:0/90", []string{"item 1", "96"}},
		{"localhost", []string{"item 1", `"localhost"`}},
	}
	for _, tc := range bad {
		g, err := ParseNetworkList(tc.in)
		if err == nil {
			t.Errorf("ParseNetworkList(%q) = %v, want an error", tc.in, g)
			continue
		}
		for _, m := range tc.mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("ParseNetworkList(%q) error %q does not mention %q", tc.in, err, m)
			}
		}
	}
	if _, err := ParseNetworks(nil); err == nil {
		t.Error("ParseNetworks(nil) accepted an empty list")
	}
}

// logSink collects log lines for assertions.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := strings.Split(strings.TrimSpace(s.buf.String()), "\n")
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}

func newLoggedGuard(t *testing.T, list string) (*Guard, *logSink) {
	g := mustGuard(t, list)
	sink := &logSink{}
	g.SetLogger(slog.New(slog.NewTextHandler(sink, nil)))
	return g, sink
}

// refuse counts and logs a refusal as the guarded listener's Accept does,
// without a connection.
func refuse(g *Guard, peer net.Addr, name string, perListener *atomic.Uint64) {
	perListener.Add(1)
	g.logRefusal(peer, name, g.refused.Add(1))
}

func TestRefusalLogRateLimit(t *testing.T) {
	g, sink := newLoggedGuard(t, "lan")
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g.now = func() time.Time { return clock }
	c := g.counter("test")
	a := &net.TCPAddr{IP: net.ParseIP("203.0.113.5"), Port: 40000}
	aOtherPort := &net.TCPAddr{IP: net.ParseIP("203.0.113.5"), Port: 40001}
	aMapped := &net.TCPAddr{IP: net.ParseIP("::ffff:203.0.113.5"), Port: 40002}
	b := &net.TCPAddr{IP: net.ParseIP("2001:db8::5"), Port: 40000}

	refuse(g, a, "test", c)
	refuse(g, aOtherPort, "test", c) // same address, other port: not logged again
	refuse(g, aMapped, "test", c)    // same address written mapped: not logged again
	refuse(g, b, "test", c)          // another address: logged
	if n := len(sink.lines()); n != 2 {
		t.Fatalf("after 4 refusals from 2 addresses: %d log lines, want 2:\n%s", n, strings.Join(sink.lines(), "\n"))
	}
	clock = clock.Add(LogInterval - time.Second)
	refuse(g, a, "test", c)
	if n := len(sink.lines()); n != 2 {
		t.Fatalf("59 s later: %d log lines, want still 2", n)
	}
	clock = clock.Add(time.Second)
	refuse(g, a, "test", c)
	refuse(g, a, "test", c)
	if n := len(sink.lines()); n != 3 {
		t.Fatalf("a minute later: %d log lines, want 3", n)
	}
	if g.Refused() != 7 || g.RefusedOn("test") != 7 {
		t.Fatalf("Refused() = %d, RefusedOn = %d, want 7 and 7", g.Refused(), g.RefusedOn("test"))
	}
	last := sink.lines()[2]
	for _, want := range []string{"203.0.113.5:40000", "listener=test", "refused_total=6"} {
		if !strings.Contains(last, want) {
			t.Errorf("log line %q lacks %q", last, want)
		}
	}
}

func TestRefusalLogMemoryBounded(t *testing.T) {
	g, sink := newLoggedGuard(t, "lan")
	clock := time.Unix(1_700_000_000, 0)
	g.now = func() time.Time { return clock }
	c := g.counter("flood")
	for i := range maxLogged + 100 {
		ip := netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
		refuse(g, &net.TCPAddr{IP: ip.AsSlice(), Port: 1}, "flood", c)
	}
	if len(g.lastLog) > maxLogged {
		t.Fatalf("remembered %d addresses, bound is %d", len(g.lastLog), maxLogged)
	}
	if n := len(sink.lines()); n != maxLogged {
		t.Fatalf("%d log lines, want %d (new addresses past the bound are only counted)", n, maxLogged)
	}
	if g.Refused() != maxLogged+100 {
		t.Fatalf("Refused() = %d, want %d", g.Refused(), maxLogged+100)
	}
	// Once the old entries age out, new addresses are logged again.
	clock = clock.Add(LogInterval)
	refuse(g, &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 1}, "flood", c)
	if n := len(sink.lines()); n != maxLogged+1 {
		t.Fatalf("after aging: %d log lines, want %d", n, maxLogged+1)
	}
}

// dialFrom connects to addr from a chosen loopback source address, which
// lets one machine play both an allowed and a refused peer.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestListenerRefusesAndKeepsAccepting(t *testing.T) {
	g, sink := newLoggedGuard(t, "127.0.0.2")
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := g.Listener(raw, "mqtt-test")
	t.Cleanup(func() { _ = l.Close() })

	accepted := make(chan net.Conn, 4)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()

	// A refused peer, which writes first: it must see its connection reset,
	// possibly already while its dial completes.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
	bad, err := d.Dial("tcp", raw.Addr().String())
	if err == nil {
		defer bad.Close()
		_, _ = bad.Write([]byte{0x10, 0x00})
		_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
		var n int
		n, err = bad.Read(make([]byte, 1))
		if err == nil || isTimeout(err) {
			t.Fatalf("refused peer read n=%d err=%v, want the connection closed by the server", n, err)
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("refused peer got %v, want a reset or EOF", err)
	}

	// An allowed peer after it is handed out.
	good := dialFrom(t, "127.0.0.2", raw.Addr().String())
	var c net.Conn
	select {
	case c = <-accepted:
	case err := <-acceptErr:
		t.Fatalf("Accept failed: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("allowed peer never accepted")
	}
	defer c.Close()
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Fatalf("accepted peer %s, want 127.0.0.2 (the refused one leaked through?)", got)
	}
	if _, err := good.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("allowed conn read %q, %v", buf, err)
	}
	if g.Refused() != 1 || g.RefusedOn("mqtt-test") != 1 {
		t.Fatalf("Refused() = %d, RefusedOn = %d, want 1 and 1", g.Refused(), g.RefusedOn("mqtt-test"))
	}
	if r, ok := l.(interface{ Refused() uint64 }); !ok || r.Refused() != 1 {
		t.Fatalf("listener's own count wrong or missing")
	}
	lines := sink.lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "127.0.0.3") || !strings.Contains(lines[0], "mqtt-test") {
		t.Fatalf("log lines %q, want one refusal of 127.0.0.3 on mqtt-test", lines)
	}

	_ = l.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// recordingConn notes whether anything read from it, to prove a refused
// connection is closed before a byte of it is read.
type recordingConn struct {
	net.Conn
	mu            sync.Mutex
	reads, closes int
	remote        net.Addr
}

func (c *recordingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return 0, io.EOF
}

func (c *recordingConn) Close() error {
	c.mu.Lock()
	c.closes++
	c.mu.Unlock()
	return nil
}

func (c *recordingConn) RemoteAddr() net.Addr { return c.remote }

type sliceListener struct {
	conns []net.Conn
}

func (l *sliceListener) Accept() (net.Conn, error) {
	if len(l.conns) == 0 {
		return nil, net.ErrClosed
	}
	c := l.conns[0]
	l.conns = l.conns[1:]
	return c, nil
}
func (l *sliceListener) Close() error   { return nil }
func (l *sliceListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestRefusedConnNeverRead(t *testing.T) {
	g, _ := newLoggedGuard(t, "lan")
	out1 := &recordingConn{remote: &net.TCPAddr{IP: net.ParseIP("8.8.8.8"), Port: 1}}
	out2 := &recordingConn{remote: &net.TCPAddr{IP: net.ParseIP("::ffff:100.64.0.1"), Port: 2}}
	in := &recordingConn{remote: &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 3, Zone: "eth0"}}
	l := g.Listener(&sliceListener{conns: []net.Conn{out1, out2, in}}, "fake")
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if c != in {
		t.Fatalf("Accept returned %v, want the link-local peer", c.RemoteAddr())
	}
	for i, rc := range []*recordingConn{out1, out2} {
		if rc.reads != 0 || rc.closes != 1 {
			t.Errorf("refused conn %d: %d reads, %d closes; want 0 and 1", i, rc.reads, rc.closes)
		}
	}
	if in.reads != 0 || in.closes != 0 {
		t.Errorf("allowed conn touched: %d reads, %d closes", in.reads, in.closes)
	}
	if g.RefusedOn("fake") != 2 {
		t.Errorf("RefusedOn = %d, want 2", g.RefusedOn("fake"))
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on drained listener: %v, want net.ErrClosed", err)
	}
}
