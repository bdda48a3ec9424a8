package supervisor

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ReadyCheck says when a started app counts as ready (online). With both
// fields empty an app is ready as soon as its process runs.
type ReadyCheck struct {
	TCP string // host:port that accepts a TCP connection once the app is ready
	Log string // regexp matched against each line the app prints
}

// RestartPolicy shapes restarts after an app exits on its own.
// Zero values take the defaults named below.
type RestartPolicy struct {
	Delay      time.Duration // wait before a restart after a stable run (default 0)
	BackoffMax time.Duration // cap of the doubling delay in a crash loop (default 15s)
	MinUptime  time.Duration // a run shorter than this is unstable (default 1s)
}

// Spec declares one app, as an entry under `apps:` in gateway.yaml. Paths
// are final: the caller expands {root} and resolves "gatewayd".
type Spec struct {
	Name        string
	Command     string
	Args        []string
	Env         map[string]string // added to (and overriding) gatewayd's own environment
	Cwd         string
	Ready       ReadyCheck
	KillTimeout time.Duration  // between StopSignal and SIGKILL (default 5s)
	StopSignal  syscall.Signal // default SIGTERM
	Restart     RestartPolicy
	MaxMemory   uint64   // bytes of resident memory of the app's process group; 0 = no limit
	After       []string // apps that must be ready before this one starts
}

// Defaults for zero fields of a Spec.
const (
	DefaultKillTimeout = 5 * time.Second
	DefaultBackoffMax  = 15 * time.Second
	DefaultMinUptime   = time.Second
	// backoffBase is the first delay of an unstable restart when Delay is
	// shorter: doubling a zero delay would busy-loop a crashing app.
	backoffBase = 100 * time.Millisecond
)

// ErrInvalidSpec wraps every validation error of Start and Apply.
var ErrInvalidSpec = errors.New("invalid app spec")

// reservedName is the word gwctl uses for every app at once.
const reservedName = "all"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// withDefaults returns the spec with zero fields filled in.
func (sp Spec) withDefaults() Spec {
	if sp.KillTimeout == 0 {
		sp.KillTimeout = DefaultKillTimeout
	}
	if sp.StopSignal == 0 {
		sp.StopSignal = syscall.SIGTERM
	}
	if sp.Restart.BackoffMax == 0 {
		sp.Restart.BackoffMax = max(DefaultBackoffMax, sp.Restart.Delay)
	}
	if sp.Restart.MinUptime == 0 {
		sp.Restart.MinUptime = DefaultMinUptime
	}
	return sp
}

// equal reports whether two specs would run the same thing; nil and empty
// collections are the same.
func (sp Spec) equal(o Spec) bool {
	return sp.Name == o.Name && sp.Command == o.Command && slices.Equal(sp.Args, o.Args) &&
		maps.Equal(sp.Env, o.Env) && sp.Cwd == o.Cwd && sp.Ready == o.Ready &&
		sp.KillTimeout == o.KillTimeout && sp.StopSignal == o.StopSignal &&
		sp.Restart == o.Restart && sp.MaxMemory == o.MaxMemory && slices.Equal(sp.After, o.After)
}

// validateSpecs checks a whole app list and returns it in dependency order
// (every app after those it comes after), keeping declaration order where
// dependencies allow. Every problem is reported, each naming its app.
func validateSpecs(specs []Spec) ([]string, error) {
	var errs []error
	bad := func(i int, name, format string, args ...any) {
		where := fmt.Sprintf("apps[%d]", i)
		if name != "" {
			where = fmt.Sprintf("app %q (apps[%d])", name, i)
		}
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidSpec, where, fmt.Sprintf(format, args...)))
	}
	index := make(map[string]int, len(specs))
	for i, sp := range specs {
		switch {
		case sp.Name == "":
			bad(i, "", "name is empty")
		case sp.Name == reservedName:
			bad(i, sp.Name, "the name %q is reserved (it means every app)", reservedName)
		case !nameRE.MatchString(sp.Name):
			bad(i, sp.Name, "name may hold only letters, digits, '.', '_' and '-', starting with a letter or digit")
		default:
			if j, dup := index[sp.Name]; dup {
				bad(i, sp.Name, "name already used by apps[%d]", j)
			} else {
				index[sp.Name] = i
			}
		}
		if strings.TrimSpace(sp.Command) == "" {
			bad(i, sp.Name, "command is empty")
		}
		if sp.Ready.TCP != "" && sp.Ready.Log != "" {
			bad(i, sp.Name, "ready: give tcp or log, not both")
		}
		if sp.Ready.TCP != "" {
			if _, port, err := net.SplitHostPort(sp.Ready.TCP); err != nil || port == "" || port == "0" {
				bad(i, sp.Name, "ready.tcp %q is not a host:port to connect to", sp.Ready.TCP)
			}
		}
		if sp.Ready.Log != "" {
			if _, err := regexp.Compile(sp.Ready.Log); err != nil {
				bad(i, sp.Name, "ready.log: %v", err)
			}
		}
		if sp.KillTimeout < 0 {
			bad(i, sp.Name, "kill_timeout %v is negative", sp.KillTimeout)
		}
		if sp.StopSignal < 0 || sp.StopSignal > 64 {
			bad(i, sp.Name, "stop_signal %d is not a signal", int(sp.StopSignal))
		}
		r := sp.Restart
		if r.Delay < 0 || r.BackoffMax < 0 || r.MinUptime < 0 {
			bad(i, sp.Name, "restart: delay, backoff_max and min_uptime must not be negative")
		}
		if r.BackoffMax != 0 && r.BackoffMax < r.Delay {
			bad(i, sp.Name, "restart: backoff_max %v is shorter than delay %v", r.BackoffMax, r.Delay)
		}
	}
	for i, sp := range specs {
		for _, dep := range sp.After {
			if dep == sp.Name {
				bad(i, sp.Name, "after: an app cannot come after itself")
			} else if _, ok := index[dep]; !ok {
				bad(i, sp.Name, "after: no app named %q", dep)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	order, cycle := topoOrder(specs)
	if cycle != nil {
		return nil, fmt.Errorf("%w: after: dependency cycle %s", ErrInvalidSpec, strings.Join(cycle, " -> "))
	}
	return order, nil
}

// topoOrder sorts apps so that each comes after its dependencies, stable in
// declaration order. On a cycle it returns the cycle's names instead.
func topoOrder(specs []Spec) (order []string, cycle []string) {
	byName := make(map[string]Spec, len(specs))
	for _, sp := range specs {
		byName[sp.Name] = sp
	}
	const (
		unseen = iota
		visiting
		done
	)
	mark := make(map[string]int, len(specs))
	var path []string
	var visit func(name string) bool
	visit = func(name string) bool {
		switch mark[name] {
		case done:
			return true
		case visiting:
			start := slices.Index(path, name)
			cycle = append(slices.Clone(path[start:]), name)
			return false
		}
		mark[name] = visiting
		path = append(path, name)
		for _, dep := range byName[name].After {
			if !visit(dep) {
				return false
			}
		}
		path = path[:len(path)-1]
		mark[name] = done
		order = append(order, name)
		return true
	}
	for _, sp := range specs {
		if !visit(sp.Name) {
			return nil, cycle
		}
	}
	return order, nil
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
	syscall.SIGCHLD: "SIGCHLD", syscall.SIGCONT: "SIGCONT", syscall.SIGSTOP: "SIGSTOP",
	syscall.SIGTSTP: "SIGTSTP", syscall.SIGTTIN: "SIGTTIN", syscall.SIGTTOU: "SIGTTOU",
	syscall.SIGURG: "SIGURG", syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
	syscall.SIGVTALRM: "SIGVTALRM", syscall.SIGPROF: "SIGPROF", syscall.SIGWINCH: "SIGWINCH",
	syscall.SIGIO: "SIGIO", syscall.SIGPWR: "SIGPWR", syscall.SIGSYS: "SIGSYS",
}

// SignalName gives a signal's conventional name, such as "SIGTERM".
func SignalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// ParseSignal reads a signal as gateway.yaml writes it: "SIGTERM", "TERM"
// or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for sig, n := range signalNames {
		if n == name {
			return sig, nil
		}
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 && n <= 64 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q (want a name such as SIGTERM, or a number 1-64)", s)
}
