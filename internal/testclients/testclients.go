// Package testclients runs the MQTT client libraries that devices and home
// automation use against our broker in end-to-end tests: Debian's
// python3-paho-mqtt and npm's mqtt (mqtt.js, the client of zigbee2mqtt and
// Node-RED). Each run is one small script under e2e/clients (connect, pub,
// sub) given its options as one JSON argument; the script prints what it saw
// as JSON lines (Event), which are read back here. scripts/test-deps.sh
// installs both libraries; a test that needs them fails when they are
// missing, it never skips.
package testclients

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// Lib is a client library: the folder of its scripts under e2e/clients.
type Lib string

const (
	Paho   Lib = "python" // Debian's python3-paho-mqtt (MQTT 3.1.1 and 5)
	MQTTJS Lib = "node"   // npm's mqtt (MQTT 3.1.1 and 5)
)

// Libs are both libraries, for tests that run a case with each.
var Libs = []Lib{Paho, MQTTJS}

// The scripts every library has.
const (
	Connect = "connect" // prints the CONNACK and leaves
	Pub     = "pub"     // publishes Options.Messages in order
	Sub     = "sub"     // subscribes and prints Options.Count messages
)

// Options are what a script is told, as JSON (the scripts read the same
// names).
type Options struct {
	Port       string    `json:"port"`
	Version    int       `json:"version,omitempty"`    // 4 (3.1.1, the default) or 5
	ID         string    `json:"id"`                   // sent as is; "" asks the broker for one
	Persistent bool      `json:"persistent,omitempty"` // clean session / clean start false
	Username   *string   `json:"username,omitempty"`
	Password   string    `json:"password,omitempty"`
	Keepalive  *int      `json:"keepalive,omitempty"`      // seconds; 30 when nil
	Expiry     *int      `json:"session_expiry,omitempty"` // MQTT 5 Session Expiry Interval
	Will       *Message  `json:"will,omitempty"`
	Topics     []string  `json:"topics,omitempty"` // sub: the filters
	QoS        int       `json:"qos,omitempty"`    // sub: the QoS asked for each filter
	Count      int       `json:"count,omitempty"`  // sub: leave after this many messages
	Messages   []Message `json:"messages,omitempty"`
	Deadline   int       `json:"deadline,omitempty"` // seconds the script may run; 10 when 0
}

// Message is one PUBLISH (or the will).
type Message struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload,omitempty"`
	Size    int    `json:"size,omitempty"` // a payload of Size bytes instead of Payload
	QoS     int    `json:"qos,omitempty"`
	Retain  bool   `json:"retain,omitempty"`
	Alias   int    `json:"alias,omitempty"` // MQTT 5 Topic Alias
}

// Str is a pointer to s, for the optional options.
func Str(s string) *string { return &s }

// Int is a pointer to n, for the optional options.
func Int(n int) *int { return &n }

// Event is one JSON line a script printed.
type Event struct {
	Event string `json:"event"` // connack, suback, published, message, disconnect (sent by the broker), closed (by the broker)

	Code           int            `json:"code"` // connack: return code (3.1.1) or reason code (5); disconnect: reason code
	SessionPresent bool           `json:"session_present"`
	Props          map[string]any `json:"props"`   // MQTT 5 properties by the spec's names without spaces
	Granted        []int          `json:"granted"` // suback: per filter, QoS granted or a failure code (>= 0x80)

	Topic   string `json:"topic"` // message, published
	Payload string `json:"payload"`
	QoS     int    `json:"qos"`
	Retain  bool   `json:"retain"`

	Error string `json:"error"` // published: the library's error (mqtt.js: an MQTT 5 PUBACK's failure code)
}

// Prop is the MQTT 5 property name as a number, and whether it was there.
func (e Event) Prop(name string) (int, bool) {
	v, ok := e.Props[name].(float64)
	return int(v), ok
}

// Events are a run's events in the order printed.
type Events []Event

// Connack is the run's CONNACK; ok is false when none came.
func (es Events) Connack() (e Event, ok bool) { return es.first("connack") }

// Accepted reports whether the broker accepted the connection (its first
// answer: Python paho connects again by itself after some refusals). It is
// the one place a refusal is judged: refusals' codes are the wire answers'
// business (gateway/mosquittowire), not these tests'.
func (es Events) Accepted() bool {
	e, ok := es.Connack()
	return ok && e.Code == 0
}

// Messages are the messages received, as "topic payload" lines.
func (es Events) Messages() []string {
	var out []string
	for _, e := range es {
		if e.Event == "message" {
			out = append(out, e.Topic+" "+e.Payload)
		}
	}
	return out
}

// Disconnected reports whether the broker ended the connection: a
// DISCONNECT (MQTT 5) or the connection closed ("closed" is not printed
// when the script leaves by itself).
func (es Events) Disconnected() bool {
	_, sent := es.first("disconnect")
	_, closed := es.first("closed")
	return sent || closed
}

func (es Events) first(kind string) (Event, bool) {
	for _, e := range es {
		if e.Event == kind {
			return e, true
		}
	}
	return Event{}, false
}

// Client is a running script.
type Client struct {
	name   string
	cmd    *exec.Cmd
	stderr testkit.Buffer

	mu     sync.Mutex
	events Events
	bad    []string // stdout lines that were not events
	done   chan struct{}
}

// Start runs lib's script with o. It is killed at the end of the test.
func Start(t testing.TB, lib Lib, script string, o Options) *Client {
	t.Helper()
	if err := Ready(lib); err != nil {
		t.Fatal(err)
	}
	dir, err := scriptsDir()
	if err != nil {
		t.Fatal(err)
	}
	arg, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch lib {
	case Paho:
		cmd = exec.Command(python, filepath.Join(dir, "python", script+".py"), string(arg))
	case MQTTJS:
		cmd = exec.Command("node", filepath.Join(dir, "node", script+".js"), string(arg))
	default:
		t.Fatalf("testclients: no library %q", lib)
	}
	c := &Client{name: fmt.Sprintf("%s %s", lib, script), cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testclients: start %s: %v", c.name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			var e Event
			c.mu.Lock()
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Event == "" {
				c.bad = append(c.bad, sc.Text())
			} else {
				c.events = append(c.events, e)
			}
			c.mu.Unlock()
		}
		_ = cmd.Wait() // after the last line is read, as Wait closes the pipe
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	})
	return c
}

// Kill ends the script as a crash would: no DISCONNECT, so the broker
// publishes its will.
func (c *Client) Kill() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// Events are the events printed so far.
func (c *Client) Events() Events {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(Events(nil), c.events...)
}

// WaitEvent waits for the first event of kind (a script that ends first,
// or the timeout, is an error with the script's stderr).
func (c *Client) WaitEvent(kind string, timeout time.Duration) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if e, ok := c.Events().first(kind); ok {
			return e, nil
		}
		select {
		case <-c.done:
			if e, ok := c.Events().first(kind); ok {
				return e, nil
			}
			return Event{}, c.fault("ended without a %s event", kind)
		case <-deadline.C:
			return Event{}, c.fault("no %s event within %s", kind, timeout)
		case <-tick.C:
		}
	}
}

// Wait waits for the script to end and returns its events. A script that
// fails (its own deadline included) or outlives timeout is an error.
func (c *Client) Wait(timeout time.Duration) (Events, error) {
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		return c.Events(), c.fault("still running after %s", timeout)
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		return c.Events(), c.fault("exit %d", code)
	}
	c.mu.Lock()
	bad := c.bad
	c.mu.Unlock()
	if len(bad) > 0 {
		return c.Events(), c.fault("printed lines that are not events: %q", bad)
	}
	return c.Events(), nil
}

func (c *Client) fault(format string, args ...any) error {
	return fmt.Errorf("%s: %s; events %s; stderr:\n%s", c.name, fmt.Sprintf(format, args...), c.eventsText(), c.stderr.String())
}

func (c *Client) eventsText() string {
	var b bytes.Buffer
	for _, e := range c.Events() {
		j, _ := json.Marshal(e)
		b.WriteString("\n  ")
		b.Write(j)
	}
	return b.String()
}

// Run runs lib's script to its end and returns its events; a failure of
// the script fails the test with its stderr.
func Run(t testing.TB, lib Lib, script string, o Options) Events {
	t.Helper()
	es, err := Start(t, lib, script, o).Wait(runTimeout(o))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// runTimeout outlives the script's own deadline, so its message wins.
func runTimeout(o Options) time.Duration {
	d := o.Deadline
	if d == 0 {
		d = 10
	}
	return time.Duration(d+5) * time.Second
}

// python is Debian's interpreter: the PATH's python3 may be another one
// (pyenv) without Debian's python3-paho-mqtt.
const python = "/usr/bin/python3"

var (
	readyMu sync.Mutex
	ready   = map[Lib]error{}
)

// Ready says why lib cannot run, or nil.
func Ready(lib Lib) error {
	readyMu.Lock()
	defer readyMu.Unlock()
	if err, done := ready[lib]; done {
		return err
	}
	var err error
	switch lib {
	case Paho:
		if out, e := exec.Command(python, "-c", "import paho.mqtt.client").CombinedOutput(); e != nil {
			err = fmt.Errorf("python3-paho-mqtt is not importable by %s (%v: %s): run `make test-deps` (scripts/test-deps.sh installs it)", python, e, strings.TrimSpace(string(out)))
		}
	case MQTTJS:
		dir, e := scriptsDir()
		if e != nil {
			err = e
		} else if _, e := exec.LookPath("node"); e != nil {
			err = fmt.Errorf("node is not installed: mqtt.js cannot run (%v)", e)
		} else if _, e := os.Stat(filepath.Join(dir, "node", "node_modules", "mqtt", "package.json")); e != nil {
			err = fmt.Errorf("mqtt.js is not installed in e2e/clients/node: run `make test-deps` (scripts/test-deps.sh runs npm ci there)")
		}
	}
	ready[lib] = err
	return err
}

func scriptsDir() (string, error) {
	root, err := testkit.ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("testclients: module root: %w", err)
	}
	return filepath.Join(root, "e2e", "clients"), nil
}
