package mdns

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	hmdns "github.com/hashicorp/mdns"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/homebox/gateway/internal/testkit"
)

// The tests re-run this binary inside network namespaces they create; the
// environment variable picks what the child does there.
const helperEnv = "GW_MDNS_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// Addresses exist only inside the test's own namespaces.
const (
	gwAddr  = "10.77.0.1"
	devAddr = "10.77.0.2"
)

type netns struct{ gw, dev string }

// newNetns makes two namespaces joined by a veth pair "gw" <-> "dev"; the
// machine's own interfaces are never touched.
func newNetns(t *testing.T) netns {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "" {
			t.Skip("network namespaces need root (CI runs this as root)")
		}
		t.Fatal("network namespaces need root: run the tests as root")
	}
	ipTool := tool(t, "ip")
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	ns := netns{gw: "gwt-gw-" + suffix, dev: "gwt-dev-" + suffix}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipTool, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns.gw)
	t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns.gw).Run() })
	run("netns", "add", ns.dev)
	t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns.dev).Run() })
	for _, n := range []string{ns.gw, ns.dev} {
		// IPv4 only: no duplicate-address-detection wait, one family to reason about.
		run("netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run("-n", n, "link", "set", "lo", "up")
		run("-n", n, "link", "set", "lo", "multicast", "on")
	}
	run("-n", ns.gw, "link", "add", "gw", "type", "veth", "peer", "name", "dev", "netns", ns.dev)
	run("-n", ns.gw, "addr", "add", gwAddr+"/24", "dev", "gw")
	run("-n", ns.dev, "addr", "add", devAddr+"/24", "dev", "dev")
	run("-n", ns.gw, "link", "set", "dev", "gw", "up")
	run("-n", ns.dev, "link", "set", "dev", "dev", "up")
	run("-n", ns.gw, "route", "add", "224.0.0.0/4", "dev", "gw")
	run("-n", ns.dev, "route", "add", "224.0.0.0/4", "dev", "dev")
	return ns
}

func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	t.Fatalf("%s is needed by this test and is not installed (Debian: iproute2; make test-deps)", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// child is a helper process running in a namespace; its stdout lines are
// collected.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startChild(t *testing.T, ns, mode string, env ...string) *child {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool(t, "ip"), "netns", "exec", ns, self, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	c := &child{cmd: cmd, done: make(chan struct{})}
	c.stdin, _ = cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

func (c *child) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *child) waitLine(t *testing.T, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range c.Lines() {
			if match(l) {
				return l
			}
		}
		select {
		case <-c.done:
			for _, l := range c.Lines() {
				if match(l) {
					return l
				}
			}
			t.Fatalf("helper ended before %s; it printed:\n%s", what, strings.Join(c.Lines(), "\n"))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; helper printed:\n%s", what, strings.Join(c.Lines(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *child) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("helper did not finish; printed:\n%s", strings.Join(c.Lines(), "\n"))
	}
}

// packetLine is what the "listen" helper prints for each mDNS response heard.
type packetLine struct {
	Records []struct {
		Name string `json:"name"`
		Type string `json:"type"`
		TTL  uint32 `json:"ttl"`
		Port int    `json:"port,omitempty"`
		Addr string `json:"addr,omitempty"`
	} `json:"records"`
}

func hasRecord(line, name, typ string, ttl0 bool, port int) bool {
	var p packetLine
	if json.Unmarshal([]byte(line), &p) != nil {
		return false
	}
	for _, r := range p.Records {
		if r.Name == name && r.Type == typ && (r.TTL == 0) == ttl0 && (port == 0 || r.Port == port) {
			return true
		}
	}
	return false
}

// Our advertiser in the gateway namespace; hashicorp/mdns's client and a raw
// listener in the device namespace.
func TestAdvertiseAcrossNamespaces(t *testing.T) {
	ns := newNetns(t)
	listen := startChild(t, ns.dev, "listen", "IFACE=dev")
	listen.waitLine(t, 10*time.Second, "listener ready", func(l string) bool { return l == "READY" })

	adv := startChild(t, ns.gw, "advertise", "IFACE=gw")
	adv.waitLine(t, 10*time.Second, "advertiser ready", func(l string) bool { return l == "READY" })

	// Announcements at start: at least two, unsolicited.
	countAnnounce := func(port int) int {
		n := 0
		for _, l := range listen.Lines() {
			if hasRecord(l, "testbox._mqtt._tcp.local.", "SRV", false, port) {
				n++
			}
		}
		return n
	}
	heard := func() string { return "listener heard:\n" + strings.Join(listen.Lines(), "\n") }
	testkit.WaitForReport(t, 10*time.Second, "2 announcements", func() bool { return countAnnounce(1883) >= 2 }, heard)

	// A client that is not ours finds both services with their TXT.
	q := startChild(t, ns.dev, "query", "IFACE=dev", "SERVICE=_mqtt._tcp")
	line := q.waitLine(t, 10*time.Second, "_mqtt._tcp answer", func(l string) bool { return strings.Contains(l, `"port":1883`) })
	var e struct {
		Name string   `json:"name"`
		Host string   `json:"host"`
		Addr string   `json:"addr"`
		Port int      `json:"port"`
		TXT  []string `json:"txt"`
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	if e.Name != "testbox._mqtt._tcp.local." || e.Host != "testbox.local." || e.Addr != gwAddr {
		t.Errorf("mqtt entry = %+v", e)
	}
	for _, kv := range []string{"model=homebox-test", "version=1.2.3", "gateway_id=gw-test"} {
		if !strings.Contains(strings.Join(e.TXT, " "), kv) {
			t.Errorf("TXT %v lacks %s", e.TXT, kv)
		}
	}
	q.wait(t, 10*time.Second)
	q = startChild(t, ns.dev, "query", "IFACE=dev", "SERVICE=_http._tcp")
	q.waitLine(t, 10*time.Second, "_http._tcp answer", func(l string) bool { return strings.Contains(l, `"port":8080`) })
	q.wait(t, 10*time.Second)

	// A port change is announced and answered.
	fmt.Fprintln(adv.stdin, "update 1884")
	adv.waitLine(t, 5*time.Second, "update done", func(l string) bool { return l == "UPDATED" })
	testkit.WaitForReport(t, 10*time.Second, "the port change announced", func() bool { return countAnnounce(1884) >= 2 }, heard)
	if !slicesAny(listen.Lines(), func(l string) bool { return hasRecord(l, "testbox._mqtt._tcp.local.", "SRV", true, 1883) }) {
		t.Error("old SRV (port 1883) not withdrawn with TTL 0")
	}
	q = startChild(t, ns.dev, "query", "IFACE=dev", "SERVICE=_mqtt._tcp")
	q.waitLine(t, 10*time.Second, "new port answered", func(l string) bool { return strings.Contains(l, `"port":1884`) })
	q.wait(t, 10*time.Second)

	// Stop: goodbye packets (TTL 0) for both services.
	adv.stdin.Close()
	adv.wait(t, 10*time.Second)
	listen.waitLine(t, 5*time.Second, "goodbye", func(l string) bool {
		return hasRecord(l, "_mqtt._tcp.local.", "PTR", true, 0) && hasRecord(l, "_http._tcp.local.", "PTR", true, 0)
	})
}

// A device that is not ours in the device namespace; our browser in the
// gateway namespace.
func TestBrowseAcrossNamespaces(t *testing.T) {
	ns := newNetns(t)
	dev := startChild(t, ns.dev, "device", "IFACE=dev")
	dev.waitLine(t, 10*time.Second, "device ready", func(l string) bool { return l == "READY" })
	b := startChild(t, ns.gw, "browse", "IFACE=gw")
	line := b.waitLine(t, 15*time.Second, "entry", func(l string) bool { return strings.HasPrefix(l, "{") })
	var e Entry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != "_esphomelib._tcp" || e.Instance != "kitchen-sensor" || e.Port != 6053 || e.Interface != "gw" ||
		len(e.Addrs) == 0 || e.Addrs[0].String() != devAddr || !strings.Contains(strings.Join(e.TXT, " "), "mac=a4cf12ab34cd") {
		t.Errorf("browsed entry = %+v", e)
	}
	b.wait(t, 20*time.Second)
}

func slicesAny(list []string, f func(string) bool) bool {
	for _, s := range list {
		if f(s) {
			return true
		}
	}
	return false
}

// runHelper is the child side, inside a namespace.
func runHelper(mode string) int {
	if mode == "follow" {
		return followHelper()
	}
	ifi, err := net.InterfaceByName(os.Getenv("IFACE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch mode {
	case "advertise":
		txt := []string{"model=homebox-test", "version=1.2.3", "gateway_id=gw-test"}
		specs := func(mqtt int) []ServiceSpec {
			return []ServiceSpec{{Type: "_mqtt._tcp", Port: mqtt, TXT: txt}, {Type: "_http._tcp", Port: 8080, TXT: txt}}
		}
		a, err := Advertise([]net.Interface{*ifi}, "testbox", specs(1883), logger)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		fmt.Println("READY")
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			var port int
			if _, err := fmt.Sscanf(sc.Text(), "update %d", &port); err == nil {
				a.Update(specs(port))
				fmt.Println("UPDATED")
			}
		}
		a.Close()
		fmt.Println("CLOSED")
		return 0
	case "query":
		entries := make(chan *hmdns.ServiceEntry, 32)
		err := hmdns.Query(&hmdns.QueryParam{Service: os.Getenv("SERVICE"), Domain: "local", Timeout: 2 * time.Second,
			Interface: ifi, Entries: entries, DisableIPv6: true, Logger: log.New(io.Discard, "", 0)})
		close(entries)
		for e := range entries {
			b, _ := json.Marshal(map[string]any{"name": e.Name, "host": e.Host, "addr": e.AddrV4.String(), "port": e.Port, "txt": e.InfoFields})
			fmt.Println(string(b))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		return 0
	case "listen":
		return listenHelper(ifi)
	case "device":
		svc, err := hmdns.NewMDNSService("kitchen-sensor", "_esphomelib._tcp", "", "kitchen-sensor.local.", 6053,
			[]net.IP{net.ParseIP(devAddr)}, []string{"mac=a4cf12ab34cd", "friendly_name=Kitchen sensor", "version=2024.6.1"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		srv, err := hmdns.NewServer(&hmdns.Config{Zone: svc, Iface: ifi, Logger: log.New(io.Discard, "", 0)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		fmt.Println("READY")
		io.Copy(io.Discard, os.Stdin)
		srv.Shutdown()
		return 0
	case "browse":
		b := &Browser{Interfaces: []net.Interface{*ifi}, Types: []string{"_esphomelib._tcp"}, Wait: 3 * time.Second, Logger: logger,
			Found: func(e Entry) {
				out, _ := json.Marshal(e)
				fmt.Println(string(out))
			}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Round(ctx)
		return 0
	}
	fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
	return 2
}

// listenHelper joins the mDNS group (IPv4, or IPv6 with NET=udp6) on one interface and prints every
// response it hears, one JSON line each.
func listenHelper(ifi *net.Interface) int {
	network, group := "udp4", groupV4
	if os.Getenv("NET") == "udp6" {
		network, group = "udp6", groupV6
	}
	c, err := net.ListenMulticastUDP(network, ifi, group)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	if network == "udp6" {
		ipv6.NewPacketConn(c).SetMulticastLoopback(false)
	} else {
		ipv4.NewPacketConn(c).SetMulticastLoopback(false)
	}
	go func() { io.Copy(io.Discard, os.Stdin); c.Close() }()
	fmt.Println("READY")
	buf := make([]byte, 65536)
	for {
		n, src, err := c.ReadFromUDP(buf)
		if err != nil {
			return 0
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) != nil || !m.Response || src.Port != 5353 {
			continue
		}
		var pl packetLine
		for _, rr := range m.Answer {
			r := struct {
				Name string `json:"name"`
				Type string `json:"type"`
				TTL  uint32 `json:"ttl"`
				Port int    `json:"port,omitempty"`
				Addr string `json:"addr,omitempty"`
			}{Name: rr.Header().Name, Type: dns.TypeToString[rr.Header().Rrtype], TTL: rr.Header().Ttl}
			switch rr := rr.(type) {
			case *dns.SRV:
				r.Port = int(rr.Port)
			case *dns.A:
				r.Addr = rr.A.String()
			case *dns.AAAA:
				r.Addr = rr.AAAA.String()
			}
			pl.Records = append(pl.Records, r)
		}
		out, _ := json.Marshal(pl)
		fmt.Println(string(out))
	}
}
