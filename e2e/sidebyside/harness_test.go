package sidebyside

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// A scenario is one mosquitto.conf and one client script. The conf may use
// {port} (the broker's listener), {dir} (a fresh folder, readable by
// Mosquitto's dropped account) and {remote} (the port of a third broker,
// Debian's mosquitto on Remote's conf, started fresh for each run).
type scenario struct {
	name   string
	conf   string
	remote string
	// setup, when set, prepares files in dir before the broker starts
	// (password files made with mosquitto_passwd, ACL files).
	setup  func(t *testing.T, dir string)
	script func(t *testing.T, e *env)
}

// env is what a script gets: one broker's address and a transcript.
type env struct {
	broker string // "mosquitto" or "gateway": for the log only, never for the transcript
	port   string
	remote string // the remote broker's port, when the scenario has one
	dir    string

	mu    sync.Mutex
	lines []string
}

func (e *env) addr() string { return "127.0.0.1:" + e.port }

// log adds one line to the transcript.
func (e *env) log(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lines = append(e.lines, fmt.Sprintf(format, args...))
}

// logSorted adds lines whose order no broker promises, sorted.
func (e *env) logSorted(prefix string, lines []string) {
	s := slices.Clone(lines)
	sort.Strings(s)
	for _, l := range s {
		e.log("%s%s", prefix, l)
	}
	if len(s) == 0 {
		e.log("%s(nothing)", prefix)
	}
}

func (e *env) transcript() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.lines)
}

// runBoth runs sc's script against each broker (at once: they share
// nothing) and compares the transcripts.
func runBoth(t *testing.T, sc scenario) {
	t.Helper()
	kinds := []string{"mosquitto", "gateway"}
	got := make([][]string, len(kinds))
	t.Run("run", func(t *testing.T) {
		for i, kind := range kinds {
			t.Run(kind, func(t *testing.T) {
				t.Parallel()
				e := startFor(t, kind, sc)
				sc.script(t, e)
				got[i] = e.transcript()
			})
		}
	})
	if t.Failed() {
		return
	}
	compare(t, sc.name, got[0], got[1])
}

// startFor starts a fresh broker of kind (and the remote when the scenario
// has one) and returns the env its script runs in.
func startFor(t *testing.T, kind string, sc scenario) *env {
	t.Helper()
	e := &env{broker: kind, dir: testkit.SharedDir(t)}
	conf := sc.conf
	if sc.remote != "" {
		e.remote = startMosquitto(t, testkit.SharedDir(t), sc.remote)
		conf = strings.ReplaceAll(conf, "{remote}", e.remote)
	}
	if sc.setup != nil {
		sc.setup(t, e.dir)
	}
	if kind == "mosquitto" {
		e.port = startMosquitto(t, e.dir, conf)
	} else {
		e.port = startGateway(t, e.dir, conf)
	}
	return e
}

// writeConf fills in the placeholders and writes the conf into dir.
func writeConf(t *testing.T, dir, conf string) (path, port string) {
	t.Helper()
	port = fmt.Sprint(testkit.FreePort(t))
	conf = strings.NewReplacer("{port}", port, "{dir}", dir).Replace(conf)
	path = filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, port
}

// startMosquitto runs Debian's mosquitto on conf and returns its port.
func startMosquitto(t *testing.T, dir, conf string) string {
	t.Helper()
	testkit.RequireTool(t, "mosquitto")
	return startOnFreePort(t, dir, conf, func(path, port string) *testkit.Proc {
		p := testkit.Start(t, "mosquitto", "-v", "-c", path)
		// Mosquitto says "Opening" before it binds.
		p.WaitLine(t, 10*time.Second, regexp.MustCompile(`Opening ipv4 listen socket on port `+port+`|Error`))
		return p
	})
}

// startGateway runs `gatewayd broker` on conf and returns its port.
func startGateway(t *testing.T, dir, conf string) string {
	t.Helper()
	bin := testkit.Build(t, "./cmd/gatewayd")
	return startOnFreePort(t, dir, conf, func(path, _ string) *testkit.Proc {
		p := testkit.Start(t, bin, "broker", "--config", path)
		p.WaitLine(t, 20*time.Second, regexp.MustCompile(`msg="broker running"|level=ERROR`))
		return p
	})
}

// startOnFreePort starts a broker on a port FreePort found free, until
// one accepts connections: between FreePort and the broker's bind another
// program (another test) may take the port. Three tries.
func startOnFreePort(t *testing.T, dir, conf string, start func(path, port string) *testkit.Proc) string {
	t.Helper()
	for range 3 {
		path, port := writeConf(t, dir, conf)
		p := start(path, port)
		up := false
		testkit.WaitFor(t, 10*time.Second, "broker listening on "+port, func() bool {
			c, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err == nil {
				c.Close()
				up = true
			}
			return up || p.Exited()
		})
		if up {
			logOnFailure(t, p)
			return port
		}
		t.Logf("broker on port %s exited; trying another port:\n%s", port, p.Output())
	}
	t.Fatal("no broker could listen in three tries")
	return ""
}

// logOnFailure prints a broker's log when the test fails.
func logOnFailure(t *testing.T, p *testkit.Proc) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (exited: %v):\n%s", p.Cmd.Path, p.Exited(), p.Output())
		}
	})
}

// compare fails on any difference between the transcripts that is not the
// scenario's listed one; a listed difference that is gone fails too, so
// its entry is dropped.
func compare(t *testing.T, name string, mosq, gw []string) {
	t.Helper()
	onlyM, onlyG := lineDiff(mosq, gw)
	want, listed := knownDifferences[name]
	if listed {
		t.Logf("known difference (%s): %s", name, want.reason)
	}
	if listed && want.racy {
		t.Logf("racy: not compared; transcripts:\n%s", sideBySide(mosq, gw))
		return
	}
	if !listed && len(onlyM) == 0 && len(onlyG) == 0 {
		t.Logf("same transcript:\n  %s", strings.Join(mosq, "\n  "))
		return
	}
	if listed && slices.Equal(onlyM, want.mosquitto) && slices.Equal(onlyG, want.gateway) {
		t.Logf("transcripts:\n%s", sideBySide(mosq, gw))
		return
	}
	what := "transcripts differ"
	if listed {
		what = "transcripts differ other than the listed difference"
		if len(onlyM) == 0 && len(onlyG) == 0 {
			what = "the listed difference is gone: drop its entry in knownDifferences and docs/BROKER.md"
		}
	}
	t.Errorf("%s: %s\nonly mosquitto: %q\nonly gateway:   %q\n%s", name, what, onlyM, onlyG, sideBySide(mosq, gw))
}

// lineDiff returns the lines of a that b lacks and of b that a lacks, in
// order, by the longest common subsequence.
func lineDiff(a, b []string) (onlyA, onlyB []string) {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			onlyA = append(onlyA, a[i])
			i++
		default:
			onlyB = append(onlyB, b[j])
			j++
		}
	}
	onlyA = append(onlyA, a[i:]...)
	onlyB = append(onlyB, b[j:]...)
	return onlyA, onlyB
}

// sideBySide prints both transcripts in two columns, "!" where they differ.
func sideBySide(mosq, gw []string) string {
	w := len("mosquitto")
	for _, l := range mosq {
		w = max(w, len(l))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "   %-*s | %s\n", w, "mosquitto", "gateway")
	for i := range max(len(mosq), len(gw)) {
		var l, r string
		if i < len(mosq) {
			l = mosq[i]
		}
		if i < len(gw) {
			r = gw[i]
		}
		mark := " "
		if l != r {
			mark = "!"
		}
		fmt.Fprintf(&b, " %s %-*s | %s\n", mark, w, l, r)
	}
	return b.String()
}
