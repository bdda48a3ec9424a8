package sidebyside

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// bridgeConf bridges x/# both ways, QoS 1, to the remote (Debian's
// mosquitto on anonConf, fresh for each broker under test).
const bridgeConf = anonConf + "connection r\naddress 127.0.0.1:{remote}\ntopic x/# both 1\n"

func TestBridge(t *testing.T) {
	for _, sc := range []scenario{
		{name: "bridge/both", conf: bridgeConf, remote: anonConf, script: func(t *testing.T, e *env) {
			remote := &env{port: e.remote}
			local := connect3(t, e, "local sub", opts3(e, 4, "lsub", true))
			local.subscribe(t, "x/#", 1)
			local.subscribe(t, "y/#", 1)
			far := connect3(t, remote, "remote sub", opts3(remote, 4, "rsub", true))
			far.subscribe(t, "x/#", 1)
			far.subscribe(t, "y/#", 1)
			awaitBridge(t, e, remote, local, far)
			mosqPub(t, e, "local pub", "-q", "1", "-t", "x/from-local", "-m", "L")
			mosqPub(t, e, "local pub retained", "-q", "1", "-r", "-t", "x/ret", "-m", "R")
			mosqPub(t, e, "local pub not bridged", "-q", "1", "-t", "y/local", "-m", "N")
			mosqPub(t, remote, "remote pub", "-q", "1", "-t", "x/from-remote", "-m", "F")
			mosqPub(t, remote, "remote pub not bridged", "-q", "1", "-t", "y/remote", "-m", "N")
			// Markers last, from each side: a copy looping back or a
			// message out of place shows before them.
			mosqPub(t, e, "local marker", "-q", "1", "-t", "x/end-local", "-m", "end")
			mosqPub(t, remote, "remote marker", "-q", "1", "-t", "x/end-remote", "-m", "end")
			for _, side := range []struct {
				name string
				c    *c3
			}{{"local", local}, {"remote", far}} {
				name, c := side.name, side.c
				var got []string
				testkit.WaitForReport(t, waitLong, name+" markers", func() bool {
					got = withoutProbes(c.in.all())
					return count(got, "end-local") == 1 && count(got, "end-remote") == 1
				}, func() string { return fmt.Sprint(got) })
				e.logSorted(name+" sub got ", got)
			}
			// A later subscriber on the remote gets the retained copy.
			later := connect3(t, remote, "remote later", opts3(remote, 4, "rlater", true))
			later.subscribe(t, "x/ret", 1)
			e.logSorted("remote later got ", withoutProbes(later.in.take(t, 1)))
			for _, l := range remote.transcript() {
				e.log("on the remote: %s", l)
			}
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { runBoth(t, sc) })
	}
}

// awaitBridge publishes probes each way until both arrive: the bridge is
// connected and its subscription on the remote is in place. The probes
// are not logged (withoutProbes).
func awaitBridge(t *testing.T, e, remote *env, local, far *c3) {
	t.Helper()
	for _, way := range []struct {
		name string
		from *env
		to   *c3
	}{{"out", e, far}, {"in", remote, local}} {
		deadline := time.Now().Add(15 * time.Second)
		for i := 0; ; i++ {
			if time.Now().After(deadline) {
				t.Fatalf("bridge %s: no probe through in 15 s", way.name)
			}
			probe := fmt.Sprintf("x/probe/%s/%d", way.name, i)
			out, code := testkit.Run(t, waitLong, "mosquitto_pub", "-h", "127.0.0.1", "-p", way.from.port, "-q", "1", "-t", probe, "-m", "p")
			if code != 0 {
				t.Fatalf("probe: exit %d: %s", code, out)
			}
			if way.to.in.within(probe, 300*time.Millisecond) != nil {
				break
			}
		}
	}
}

// withoutProbes drops awaitBridge's probes, which may still come late.
func withoutProbes(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		if !strings.HasPrefix(m, "x/probe/") {
			out = append(out, m)
		}
	}
	return out
}

func count(msgs []string, part string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, part) {
			n++
		}
	}
	return n
}
