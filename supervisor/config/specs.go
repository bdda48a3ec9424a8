package config

import (
	"maps"
	"path/filepath"
	"strings"

	"github.com/homebox/gateway/supervisor"
)

// SelfCommand is the command name that stands for gatewayd itself, so the
// file need not know where the binary is installed.
const SelfCommand = "gatewayd"

// Specs turns the apps into the supervisor's specs for a root folder:
// {root} is expanded in command, args, cwd, env and ready, and "gatewayd"
// becomes self (the running binary's path). Other commands stay as written;
// the supervisor looks them up in PATH when it starts them, so a missing
// one shows as an errored app rather than refusing the whole file.
func (c *Config) Specs(root, self string) []supervisor.Spec {
	exp := expander(root)
	specs := make([]supervisor.Spec, 0, len(c.Apps))
	for _, a := range c.Apps {
		cmd := a.Command
		if cmd == SelfCommand {
			cmd = self
		} else {
			cmd = exp(cmd)
		}
		args := make([]string, len(a.Args))
		for i, s := range a.Args {
			args[i] = exp(s)
		}
		// GATEWAY_ALLOW_NETWORKS carries lan.allow to `gatewayd broker`,
		// whose --allow-networks defaults to it.
		env := map[string]string{"GATEWAY_ROOT": root, "GATEWAY_ALLOW_NETWORKS": strings.Join(c.LAN.Allow, ",")}
		for k, v := range a.Env {
			env[k] = exp(v)
		}
		specs = append(specs, supervisor.Spec{
			Name:        a.Name,
			Command:     cmd,
			Args:        args,
			Env:         env,
			Cwd:         exp(a.Cwd),
			Ready:       supervisor.ReadyCheck{TCP: exp(a.ReadyTCP), Log: a.ReadyLog},
			KillTimeout: a.KillTimeout,
			StopSignal:  a.StopSignal,
			Restart:     supervisor.RestartPolicy{Delay: a.Delay, BackoffMax: a.BackoffMax, MinUptime: a.MinUptime},
			MaxMemory:   a.MaxMemory,
			After:       append([]string(nil), a.After...),
			User:        a.User,
			Group:       a.Group,
		})
	}
	return specs
}

// App returns the app of that name.
func (c *Config) App(name string) (App, bool) {
	for _, a := range c.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return App{}, false
}

// Clone returns a deep copy, so a caller may change it (e.g. --dev
// overrides) without touching a shared one.
func (c *Config) Clone() *Config {
	n := *c
	n.LAN.Allow = append([]string(nil), c.LAN.Allow...)
	n.Console.Hosts = append([]string(nil), c.Console.Hosts...)
	n.Discovery.MDNS.Interfaces = append([]string(nil), c.Discovery.MDNS.Interfaces...)
	n.Apps = make([]App, len(c.Apps))
	for i, a := range c.Apps {
		a.Args = append([]string(nil), a.Args...)
		a.After = append([]string(nil), a.After...)
		a.Env = maps.Clone(a.Env)
		n.Apps[i] = a
	}
	return &n
}

// expander replaces {root} so that root "/" gives "/etc/...", not "//etc/...".
func expander(root string) func(string) string {
	root = filepath.Clean(root)
	prefix := strings.TrimSuffix(root, "/") + "/"
	return func(s string) string {
		s = strings.ReplaceAll(s, "{root}/", prefix)
		return strings.ReplaceAll(s, "{root}", root)
	}
}
