package security

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/bench/brokers"
	"github.com/homebox/gateway/internal/netnstest"
	"github.com/homebox/gateway/internal/testkit"
)

// The network of the tests (doc.go).
const (
	boxV4    = "192.0.2.1"
	boxV6    = "2001:db8:1::1"
	lanV4    = "192.0.2.10"
	lanV6    = "2001:db8:1::10"
	routerV4 = "192.0.2.254"
	routerV6 = "2001:db8:1::fe"
	outV4    = "198.51.100.10"
	outV6    = "2001:db8:2::10"

	mqttPort = "1883"
	wsPort   = "9001"

	// connectTimeout is the broker's CONNECT deadline in these tests
	// ($GATEWAY_CONNECT_TIMEOUT; 10 s by default).
	connectTimeout = 2 * time.Second
)

// shippedConf is rootfs/etc/mosquitto/mosquitto.conf's settings, with the
// store in the test's folder.
const shippedConf = `listener 1883
protocol mqtt
listener 9001
protocol websockets
allow_anonymous true
persistence true
persistence_location %s/
sys_interval 10
log_dest stdout
`

type harness struct {
	ns     *netnstest.Set
	broker *testkit.Proc
	pid    int
}

// newHarness makes the namespaces and starts the broker in "box".
func newHarness(t *testing.T) *harness {
	t.Helper()
	ns := netnstest.New(t, "sw", "box", "lan", "router", "out")
	ns.In("sw", "link", "add", "br0", "type", "bridge")
	ns.In("sw", "link", "set", "br0", "up")
	for _, n := range []string{"box", "lan", "router", "out"} {
		// No duplicate address detection: addresses are usable at once.
		ns.Sysctl(n, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	for _, n := range []string{"box", "lan", "router"} {
		port := "p-" + n
		ns.Veth(n, "eth0", "sw", port)
		ns.In("sw", "link", "set", port, "master", "br0")
	}
	ns.Veth("router", "wan0", "out", "eth0")
	ns.Sysctl("router", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

	addr := func(n, dev string, cidrs ...string) {
		for _, c := range cidrs {
			ns.In(n, "addr", "add", c, "dev", dev, "nodad")
		}
	}
	addr("box", "eth0", boxV4+"/24", boxV6+"/64")
	addr("lan", "eth0", lanV4+"/24", lanV6+"/64")
	addr("router", "eth0", routerV4+"/24", routerV6+"/64")
	addr("router", "wan0", "198.51.100.254/24", "2001:db8:2::fe/64")
	addr("out", "eth0", outV4+"/24", outV6+"/64")
	for _, n := range []string{"box", "lan"} {
		ns.In(n, "route", "add", "default", "via", routerV4)
		ns.In(n, "-6", "route", "add", "default", "via", routerV6)
	}
	ns.In("out", "route", "add", "default", "via", "198.51.100.254")
	ns.In("out", "-6", "route", "add", "default", "via", "2001:db8:2::fe")

	bin := os.Getenv("GW_SECURITY_GATEWAYD")
	if bin == "" {
		bin = testkit.Build(t, "./cmd/gatewayd")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	testkit.WriteFile(t, conf, fmt.Sprintf(shippedConf, dir))
	t.Setenv("GATEWAY_CONNECT_TIMEOUT", connectTimeout.String())
	allow := os.Getenv("GW_SECURITY_ALLOW_NETWORKS") // to try an older build's "lan" on the other findings
	if allow == "" {
		allow = "lan"
	}
	t.Setenv("GATEWAY_ALLOW_NETWORKS", allow)
	p := testkit.Start(t, netnstest.IPTool(t), "netns", "exec", ns.Name("box"), bin, "broker", "--config", conf)
	p.WaitLine(t, 20*time.Second, regexp.MustCompile(`broker running`))
	h := &harness{ns: ns, broker: p, pid: p.Cmd.Process.Pid}
	// ip netns exec execs the broker: the pid is the broker's own.
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", h.pid)); err != nil || filepath.Base(exe) != filepath.Base(bin) {
		t.Fatalf("pid %d is %q (%v), not the broker", h.pid, exe, err)
	}
	// The LAN host reaches the box (ARP, routes) before any test judges it.
	h.waitReachable(t)
	return h
}

// waitReachable waits until the LAN host's TCP connections reach the
// broker's port (accepted, whatever the guard then decides).
func (h *harness) waitReachable(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, "the box reachable from the LAN host", func() bool {
		var err error
		h.ns.Do("lan", func() {
			var c net.Conn
			c, err = net.DialTimeout("tcp", net.JoinHostPort(boxV4, mqttPort), time.Second)
			if err == nil {
				c.Close()
			}
		})
		return err == nil
	})
}

// rssKiB is the broker's VmRSS.
func (h *harness) rssKiB(t *testing.T) int64 {
	t.Helper()
	m, err := brokers.ReadMemory(h.pid)
	if err != nil {
		t.Fatalf("broker pid %d: %v (did it restart or die?)\n%s", h.pid, err, tail(h.broker.Output()))
	}
	return m.RSS
}

// alive fails the test when the broker process is gone.
func (h *harness) alive(t *testing.T) {
	t.Helper()
	if h.broker.Exited() || !testkit.Alive(h.pid) {
		t.Fatalf("broker pid %d is gone:\n%s", h.pid, tail(h.broker.Output()))
	}
}

func tail(s string) string {
	l := strings.Split(s, "\n")
	if len(l) > 30 {
		l = l[len(l)-30:]
	}
	return strings.Join(l, "\n")
}

// dial opens a TCP connection from namespace n (from: a source address of
// it, or "" for the kernel's choice).
func (h *harness) dial(t *testing.T, n, from, to string) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	var err error
	h.ns.Do(n, func() {
		d := net.Dialer{Timeout: 3 * time.Second}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		c, err = d.Dial("tcp", to)
	})
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// mosquitto runs a mosquitto client tool inside namespace n.
func (h *harness) mosquitto(t *testing.T, n, tool string, args ...string) (string, error) {
	t.Helper()
	testkit.RequireTool(t, tool)
	cmd := h.ns.Command(n, tool, args...)
	out, err := runBounded(cmd, 20*time.Second)
	return out, err
}
