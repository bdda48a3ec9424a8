//go:build linux

package mdns

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/netnstest"
	"github.com/homebox/gateway/internal/testkit"
)

// followHelper runs a Follower on whatever interfaces its namespace has
// (none at first) and reports its state when asked on stdin.
func followHelper() int {
	txt := []string{"model=homebox-test", "version=1.2.3", "gateway_id=gw-test"}
	f, err := Follow(FollowConfig{
		Hostname:    "testbox",
		Services:    []ServiceSpec{{Type: "_mqtt._tcp", Port: 1883, TXT: txt}},
		Rescan:      100 * time.Millisecond,
		Found:       func(Entry) {},
		BrowseTypes: []string{"_esphomelib._tcp"},
		BrowseWait:  200 * time.Millisecond,
		BrowseEvery: time.Hour,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	fmt.Println("READY")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "state %d", &n); err == nil {
			fmt.Printf("STATE %d links=%s goroutines=%d\n", n, strings.Join(f.Interfaces(), ","), runtime.NumGoroutine())
		}
	}
	f.Close()
	return 0
}

// followState asks the follow helper for the interfaces it advertises on
// and its goroutine count.
type followState struct {
	c *child
	n int
}

func (s *followState) get(t *testing.T) (links string, goroutines int) {
	t.Helper()
	s.n++
	fmt.Fprintf(s.c.stdin, "state %d\n", s.n)
	prefix := fmt.Sprintf("STATE %d ", s.n)
	line := s.c.waitLine(t, 5*time.Second, "state", func(l string) bool { return strings.HasPrefix(l, prefix) })
	if _, err := fmt.Sscanf(strings.TrimPrefix(line, prefix), "links=%s goroutines=%d", &links, &goroutines); err != nil {
		// No links: "links= goroutines=N".
		if _, err := fmt.Sscanf(strings.TrimPrefix(line, prefix), "links= goroutines=%d", &goroutines); err != nil {
			t.Fatalf("state line %q: %v", line, err)
		}
		links = ""
	}
	return links, goroutines
}

// heardAddr says whether the listener heard testbox.local.'s address addr
// announced (ttl0 false) or withdrawn (ttl0 true).
func heardAddr(listen *child, typ, addr string, ttl0 bool) bool {
	for _, l := range listen.Lines() {
		var p packetLine
		if json.Unmarshal([]byte(l), &p) != nil {
			continue
		}
		for _, r := range p.Records {
			if r.Name == "testbox.local." && r.Type == typ && r.Addr == addr && (r.TTL == 0) == ttl0 {
				return true
			}
		}
	}
	return false
}

// The box starts with no usable interface; its interface then appears,
// changes address, goes and comes back, and flaps; a client in the LAN
// namespace finds the box each time it should.
func TestFollowInterfaces(t *testing.T) {
	ns := netnstest.New(t, "box", "lan")
	// The LAN side is a bridge, so the box's end of the veth can be deleted
	// and re-made while the listener keeps its socket on br0.
	ns.In("lan", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	ns.In("lan", "addr", "add", "192.0.2.2/24", "dev", "br0")
	ns.In("lan", "link", "set", "br0", "up")
	ns.In("lan", "route", "add", "224.0.0.0/4", "dev", "br0")
	// As systemd sets it: deleting the old address keeps the new one of the
	// same subnet (the kernel's default deletes both).
	ns.Sysctl("box", "net.ipv4.conf.all.promote_secondaries=1", "net.ipv4.conf.default.promote_secondaries=1")
	plug := func(addrs ...string) {
		t.Helper()
		ns.Veth("box", "eth0", "lan", "lanp")
		ns.In("lan", "link", "set", "lanp", "master", "br0")
		for _, a := range addrs {
			ns.In("box", "addr", "add", a, "dev", "eth0")
		}
	}

	start := time.Now()
	box := startChild(t, ns.Name("box"), "follow")
	box.waitLine(t, 10*time.Second, "follower ready with no interface", func(l string) bool { return l == "READY" })
	st := &followState{c: box}
	if links, _ := st.get(t); links != "" {
		t.Fatalf("advertising on %q with no interface up", links)
	}

	listen := startChild(t, ns.Name("lan"), "listen", "IFACE=br0")
	listen.waitLine(t, 10*time.Second, "listener ready", func(l string) bool { return l == "READY" })
	listen6 := startChild(t, ns.Name("lan"), "listen", "IFACE=br0", "NET=udp6")
	listen6.waitLine(t, 10*time.Second, "IPv6 listener ready", func(l string) bool { return l == "READY" })
	heard := func() string { return "listener heard:\n" + strings.Join(listen.Lines(), "\n") }

	// browsable: a client that is not ours, in the LAN, finds the box's
	// broker at addr. Polled: each query listens 2 s.
	browsable := func(addr string) {
		t.Helper()
		testkit.WaitForReport(t, 20*time.Second, "_mqtt._tcp browsable at "+addr, func() bool {
			q := startChild(t, ns.Name("lan"), "query", "IFACE=br0", "SERVICE=_mqtt._tcp")
			q.wait(t, 10*time.Second)
			return slicesAny(q.Lines(), func(l string) bool {
				return strings.Contains(l, `"addr":"`+addr+`"`) && strings.Contains(l, `"port":1883`)
			})
		}, heard)
	}

	// The network comes up after the service started.
	plug("192.0.2.1/24", "2001:db8::1/64")
	testkit.WaitForReport(t, 10*time.Second, "A 192.0.2.1 announced", func() bool { return heardAddr(listen, "A", "192.0.2.1", false) }, heard)
	browsable("192.0.2.1")
	t.Logf("browsable %s after the interface appeared", time.Since(start).Round(time.Millisecond))
	// The IPv6 address is usable once duplicate address detection ends.
	testkit.WaitForReport(t, 15*time.Second, "AAAA 2001:db8::1 announced", func() bool { return heardAddr(listen, "AAAA", "2001:db8::1", false) }, heard)

	// The address changes: the new one is announced, the old withdrawn.
	ns.In("box", "addr", "add", "192.0.2.77/24", "dev", "eth0")
	ns.In("box", "addr", "del", "192.0.2.1/24", "dev", "eth0")
	testkit.WaitForReport(t, 10*time.Second, "A 192.0.2.77 announced", func() bool { return heardAddr(listen, "A", "192.0.2.77", false) }, heard)
	testkit.WaitForReport(t, 10*time.Second, "A 192.0.2.1 withdrawn", func() bool { return heardAddr(listen, "A", "192.0.2.1", true) }, heard)
	browsable("192.0.2.77")

	// The interface goes: the service keeps running, on nothing.
	ns.In("box", "link", "del", "eth0")
	testkit.WaitFor(t, 5*time.Second, "eth0 dropped", func() bool { links, _ := st.get(t); return links == "" })
	_, base := st.get(t)

	// It flaps; every responder it had is stopped, nothing accumulates.
	const flaps = 5
	for i := 0; i < flaps; i++ {
		plug("192.0.2.1/24")
		testkit.WaitFor(t, 5*time.Second, "eth0 followed", func() bool { links, _ := st.get(t); return links == "eth0" })
		ns.In("box", "link", "del", "eth0")
		testkit.WaitFor(t, 5*time.Second, "eth0 dropped", func() bool { links, _ := st.get(t); return links == "" })
	}
	// Announcements still due end within a second; then the count is back.
	var after int
	testkit.WaitForReport(t, 10*time.Second, "goroutines back to the count before the flaps", func() bool {
		_, after = st.get(t)
		return after <= base
	}, func() string { return fmt.Sprintf("%d goroutines, %d before %d flaps", after, base, flaps) })

	// And it comes back, on IPv6 too: announcements go out of the new
	// eth0, not the deleted one of the same name.
	before := len(listen6.Lines())
	plug("192.0.2.1/24")
	browsable("192.0.2.1")
	testkit.WaitForReport(t, 15*time.Second, "an IPv6 announcement from the re-created eth0", func() bool {
		return slicesAny(listen6.Lines()[before:], func(l string) bool { return hasRecord(l, "testbox._mqtt._tcp.local.", "SRV", false, 1883) })
	}, func() string { return "IPv6 listener heard:\n" + strings.Join(listen6.Lines(), "\n") })
}
