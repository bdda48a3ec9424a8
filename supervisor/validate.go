package supervisor

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// ErrInvalidSpec is what every SpecError is (errors.Is): Start and Apply
// return it for a list they refuse.
var ErrInvalidSpec = errors.New("invalid app spec")

// SpecError is one mistake in an app list. Fields are named as gateway.yaml
// spells its keys, so the file's loader can point at the line.
type SpecError struct {
	Index int    // the app's position in the list
	Name  string // the app's name, when it has one
	Field string // e.g. "ready.tcp", "restart.backoff_max", "env.PATH"
	Msg   string // what is wrong
	Other int    // another app the mistake involves (where a repeated name is first used); -1: none
}

func (e *SpecError) Error() string {
	where := fmt.Sprintf("apps[%d]", e.Index)
	if e.Name != "" {
		where = fmt.Sprintf("app %q (apps[%d])", e.Name, e.Index)
	}
	msg := e.Msg
	if e.Other >= 0 {
		msg += fmt.Sprintf(" (apps[%d])", e.Other)
	}
	return fmt.Sprintf("%v: %s: %s: %s", ErrInvalidSpec, where, e.Field, msg)
}

func (e *SpecError) Unwrap() error { return ErrInvalidSpec }

// SpecErrors is every mistake found in one list, in list order.
type SpecErrors []*SpecError

func (es SpecErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es SpecErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// reservedName is the word gwctl uses for every app at once.
const reservedName = "all"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// accountRE is a POSIX user or group name, or a number.
var accountRE = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}\$?|[0-9]{1,10})$`)

// Validate checks a whole app list: the one set of rules for apps, whether
// they come from gateway.yaml or are built in code. Start and Apply refuse a
// list it refuses. Every problem is reported; the error, when not nil, is
// a SpecErrors. Zero fields are fine: they take the defaults.
func Validate(specs []Spec) error {
	var errs SpecErrors
	bad := func(i int, field, format string, args ...any) *SpecError {
		e := &SpecError{Index: i, Name: specs[i].Name, Field: field, Msg: fmt.Sprintf(format, args...), Other: -1}
		errs = append(errs, e)
		return e
	}
	index := make(map[string]int, len(specs))
	for i, sp := range specs {
		if err := checkName(sp.Name); err != nil {
			bad(i, "name", "%v", err)
		} else if j, dup := index[sp.Name]; dup {
			bad(i, "name", "%q is already the name of another app", sp.Name).Other = j
		} else {
			index[sp.Name] = i
		}
		if strings.TrimSpace(sp.Command) == "" {
			bad(i, "command", "every app needs a command")
		}
		for k := range sp.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				bad(i, "env."+k, "%q is not a valid environment variable name", k)
			}
		}
		if sp.User != "" && !accountRE.MatchString(sp.User) {
			bad(i, "user", "%q is not a user name or number", sp.User)
		}
		if sp.Group != "" && !accountRE.MatchString(sp.Group) {
			bad(i, "group", "%q is not a group name or number", sp.Group)
		}
		if sp.Group != "" && sp.User == "" {
			bad(i, "group", "needs a user too: an app runs as gatewayd's own user and group otherwise")
		}
		if sp.Ready.TCP != "" && sp.Ready.Log != "" {
			bad(i, "ready", "give tcp or log, not both")
		}
		if sp.Ready.TCP != "" {
			if err := checkHostPort(sp.Ready.TCP); err != nil {
				bad(i, "ready.tcp", "%v", err)
			}
		}
		if sp.Ready.Log != "" {
			if _, err := regexp.Compile(sp.Ready.Log); err != nil {
				bad(i, "ready.log", "is not a valid regular expression: %v", err)
			}
		}
		if sp.KillTimeout < 0 {
			bad(i, "kill_timeout", "%v is negative", sp.KillTimeout)
		}
		if sp.StopSignal != 0 && !isStopSignal(sp.StopSignal) {
			bad(i, "stop_signal", "%s cannot stop an app: use one of %s", SignalName(sp.StopSignal), stopSignalList())
		}
		r := sp.Restart
		if r.Delay < 0 {
			bad(i, "restart.delay", "%v is negative", r.Delay)
		}
		if r.BackoffMax < 0 {
			bad(i, "restart.backoff_max", "%v is negative", r.BackoffMax)
		}
		if r.MinUptime < 0 {
			bad(i, "restart.min_uptime", "%v is negative", r.MinUptime)
		}
		// A zero backoff_max takes the default, which is never below delay.
		if r.BackoffMax > 0 && r.BackoffMax < r.Delay {
			bad(i, "restart.backoff_max", "(%s) is shorter than delay (%s)", r.BackoffMax, r.Delay)
		}
	}
	for i, sp := range specs {
		for _, dep := range sp.After {
			if dep == sp.Name {
				bad(i, "after", "an app cannot come after itself")
			} else if _, ok := index[dep]; !ok {
				bad(i, "after", "names %q, which is not an app", dep)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// A cycle would leave every app in it waiting forever.
	if _, cycle := topoOrder(specs); cycle != nil {
		bad(index[cycle[0]], "after", "apps wait for each other in a circle: %s", strings.Join(cycle, " -> "))
		return errs
	}
	return nil
}

// checkName keeps names usable as log file names and in gwctl commands.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("every app needs a name")
	case s == reservedName:
		return fmt.Errorf("%q is reserved: gwctl uses it for every app", s)
	case len(s) > 64:
		return fmt.Errorf("%q is longer than 64 characters", s)
	case !nameRE.MatchString(s):
		return fmt.Errorf("%q may hold only letters, digits, '.', '_' and '-', starting with a letter or digit", s)
	}
	return nil
}

// checkHostPort wants an address to dial: a host (an empty one would dial
// whatever the system picks) and a port.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host == "" {
		return fmt.Errorf("%q has no host: write e.g. 127.0.0.1%s", s, s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 1 to 65535", s)
	}
	return nil
}

// checkedOrder validates specs and returns their names in dependency order
// (every app after those it comes after), keeping declaration order where
// dependencies allow.
func checkedOrder(specs []Spec) ([]string, error) {
	if err := Validate(specs); err != nil {
		return nil, err
	}
	order, _ := topoOrder(specs)
	return order, nil
}
