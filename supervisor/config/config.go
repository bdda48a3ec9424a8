// Package config reads gateway.yaml, the box's own configuration: which apps
// the supervisor keeps alive, where the console listens, which networks the
// LAN guard accepts and whether discovery runs. A person's mistake in the
// file is caught here, with the file, line and field named, before anything
// running is touched; the apps are checked by the supervisor's own rules
// (supervisor.Validate), so the file and the supervisor never disagree.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/homebox/gateway/internal/paths"
)

// Path is gateway.yaml's location for a root folder.
func Path(root string) string { return paths.Root(root).Join(paths.GatewayYAML) }

// Defaults of an app entry, applied field by field.
const (
	DefaultKillTimeout = 5 * time.Second
	DefaultBackoffMax  = 15 * time.Second
	DefaultMinUptime   = 30 * time.Second
	DefaultConsole     = ":80"
)

// Config is gateway.yaml once checked.
type Config struct {
	File      string // the file it came from
	Console   Console
	LAN       LAN
	Discovery Discovery
	Apps      []App
}

// Console is where the LAN web console listens.
type Console struct {
	Listen string // host:port; empty host means every address
	// Hosts are more names the console answers to, besides the box's
	// addresses, hostname, <hostname>.local and localhost (a name the
	// owner's router gives it, say).
	Hosts []string
}

// LAN holds the networks the broker and console accept, in the words of
// `gatewayd broker --allow-networks` ("lan", "loopback", "any", CIDRs).
type LAN struct {
	Allow []string
}

// Discovery switches the zero-config parts.
type Discovery struct {
	MDNS MDNS
}

// MDNS says whether the broker is advertised and devices browsed over mDNS.
type MDNS struct {
	Enabled    bool
	Interfaces []string // empty: every up, multicast-capable interface
}

// App is one entry under `apps:`, still with {root} unexpanded.
type App struct {
	Name        string
	Command     string
	Args        []string
	Env         map[string]string
	Cwd         string
	ReadyTCP    string
	ReadyLog    string
	KillTimeout time.Duration
	StopSignal  syscall.Signal
	Delay       time.Duration
	BackoffMax  time.Duration
	MinUptime   time.Duration
	MaxMemory   uint64
	After       []string
	User        string // run as this account when gatewayd is root (PM2's uid)
	Group       string // and this group (PM2's gid); default: the user's
	Line        int    // where the entry starts in the file
	AccountLine int    // where user: (or group:) is written
}

// Error is one mistake in the file: what, and where.
type Error struct {
	File  string
	Line  int
	Field string // e.g. apps[mqtt].kill_timeout
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every mistake found in one file, in file order. Reporting them
// all at once saves a person an edit-reload round per mistake.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and checks <root>/etc/gateway/gateway.yaml.
func Load(root string) (*Config, error) {
	return LoadFile(Path(root))
}

// LoadFile reads and checks a gateway.yaml at any path.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gateway config: %w", err)
	}
	return Parse(path, data)
}

// ErrorList returns the individual mistakes inside err, if it holds any.
func ErrorList(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	return nil
}

// CheckAccounts finds the account of every app that names one, as the
// supervisor will when it starts them: an account that does not exist is
// an error at its line, so a reload with a typo changes nothing rather than
// leave an app errored. lookup is account.Lookup.
func (c *Config) CheckAccounts(lookup func(user, group string) error) error {
	var errs Errors
	for i, a := range c.Apps {
		if a.User == "" {
			continue
		}
		if err := lookup(a.User, a.Group); err != nil {
			errs = append(errs, &Error{File: c.File, Line: a.AccountLine, Field: appField(a.Name, i) + ".user", Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
