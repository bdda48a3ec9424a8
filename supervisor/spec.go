package supervisor

import (
	"maps"
	"slices"
	"syscall"
	"time"
)

// ReadyCheck says when a started app counts as ready (online). With both
// fields empty an app is ready as soon as its process runs.
type ReadyCheck struct {
	TCP string // host:port that accepts a TCP connection once the app is ready
	Log string // regexp matched against each line the app prints
}

// String names the check for people: "tcp HOST:PORT", "log REGEXP", or
// "process running" when the app is ready as soon as it runs.
func (r ReadyCheck) String() string {
	switch {
	case r.TCP != "":
		return "tcp " + r.TCP
	case r.Log != "":
		return "log " + r.Log
	}
	return "process running"
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
	// User and Group run the app as another account (PM2's uid and gid):
	// a name or a number; Group defaults to the user's own group. They
	// apply when gatewayd runs as root; otherwise the app runs as gatewayd
	// does (see credential.go).
	User  string
	Group string
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
		sp.Restart == o.Restart && sp.MaxMemory == o.MaxMemory && slices.Equal(sp.After, o.After) &&
		sp.User == o.User && sp.Group == o.Group
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
