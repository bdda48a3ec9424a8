package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/homebox/gateway/gateway/languard"
)

// The file is walked as yaml.Node rather than decoded into structs: nodes
// carry line numbers, so every error can point at its line, and unknown keys
// (usually typos) are caught instead of silently ignored.

type parser struct {
	file string
	errs Errors
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Parse checks gateway.yaml's text; path only names the file in errors.
// The error, when not nil, is an Errors.
func Parse(path string, data []byte) (*Config, error) {
	p := &parser{file: path}
	cfg := &Config{
		File:      path,
		Console:   Console{Listen: DefaultConsole},
		LAN:       LAN{Allow: []string{"lan"}},
		Discovery: Discovery{MDNS: MDNS{Enabled: true}},
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.errs = append(p.errs, yamlError(path, err))
		return nil, p.errs
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.errorf(nil, "", "the file is empty: it needs at least an apps: list")
		return nil, p.errs
	}
	top := doc.Content[0]
	if !p.isMap(top, "") {
		return nil, p.errs
	}
	p.fields(top, "", map[string]func(*yaml.Node){
		"console": func(n *yaml.Node) {
			p.fields(n, "console", map[string]func(*yaml.Node){
				"listen": func(v *yaml.Node) {
					if s, ok := p.str(v, "console.listen"); ok {
						if err := checkListen(s); err != nil {
							p.errorf(v, "console.listen", "%v", err)
						}
						cfg.Console.Listen = s
					}
				},
			})
		},
		"lan": func(n *yaml.Node) {
			p.fields(n, "lan", map[string]func(*yaml.Node){
				"allow": func(v *yaml.Node) {
					items, ok := p.strList(v, "lan.allow")
					if !ok {
						return
					}
					for i, it := range items {
						if _, err := languard.ParseNetworks([]string{it}); err != nil {
							p.errorf(v.Content[i], fmt.Sprintf("lan.allow[%d]", i), "%v", err)
						}
					}
					if len(items) == 0 {
						p.errorf(v, "lan.allow", "is empty: name at least one network (lan, loopback, any or a CIDR)")
					}
					cfg.LAN.Allow = items
				},
			})
		},
		"discovery": func(n *yaml.Node) {
			p.fields(n, "discovery", map[string]func(*yaml.Node){
				"mdns": func(m *yaml.Node) {
					p.fields(m, "discovery.mdns", map[string]func(*yaml.Node){
						"enabled": func(v *yaml.Node) {
							if b, ok := p.boolean(v, "discovery.mdns.enabled"); ok {
								cfg.Discovery.MDNS.Enabled = b
							}
						},
						"interfaces": func(v *yaml.Node) {
							if l, ok := p.strList(v, "discovery.mdns.interfaces"); ok {
								cfg.Discovery.MDNS.Interfaces = l
							}
						},
					})
				},
			})
		},
		"apps": func(n *yaml.Node) {
			if n.Kind != yaml.SequenceNode {
				if !isNull(n) {
					p.errorf(n, "apps", "must be a list of apps (each starting with \"- name: ...\")")
				}
				return
			}
			for i, an := range n.Content {
				if a, ok := p.app(an, i); ok {
					cfg.Apps = append(cfg.Apps, a)
				}
			}
		},
	})
	p.checkApps(cfg.Apps)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return cfg, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError turns yaml.v3's syntax error into an Error with its line.
func yamlError(path string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: path, Line: line, Msg: "not valid YAML: " + m[2]}
	}
	return &Error{File: path, Msg: "not valid YAML: " + msg}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func (p *parser) isMap(n *yaml.Node, field string) bool {
	if n.Kind == yaml.MappingNode {
		return true
	}
	if isNull(n) {
		return false // an empty section: nothing to read, nothing wrong
	}
	name := field
	if name == "" {
		name = "the file"
	}
	p.errorf(n, field, "%s must be a mapping of keys to values", name)
	return false
}

// fields calls the handler of each key of mapping n and reports keys it
// does not know and keys given twice.
func (p *parser) fields(n *yaml.Node, field string, handlers map[string]func(*yaml.Node)) {
	if !p.isMap(n, field) {
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(field, k.Value)
		if seen[k.Value] {
			p.errorf(k, name, "is given twice")
			continue
		}
		seen[k.Value] = true
		h, ok := handlers[k.Value]
		if !ok {
			known := make([]string, 0, len(handlers))
			for key := range handlers {
				known = append(known, key)
			}
			slices.Sort(known)
			p.errorf(k, name, "unknown key (known here: %s)", strings.Join(known, ", "))
			continue
		}
		h(v)
	}
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, field, "must be a single value")
		return "", false
	}
	return n.Value, true
}

func (p *parser) strList(n *yaml.Node, field string) ([]string, bool) {
	if isNull(n) {
		return []string{}, true
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, field, "must be a list, like [a, b]")
		return nil, false
	}
	out := []string{}
	ok := true
	for i, it := range n.Content {
		s, good := p.str(it, fmt.Sprintf("%s[%d]", field, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		p.errorf(n, field, "must be true or false, not %q", n.Value)
		return false, false
	}
	return b, true
}

func (p *parser) duration(n *yaml.Node, field string) (time.Duration, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		p.errorf(n, field, "%q is not a duration: write it like 500ms, 5s, 2m or 1h", s)
		return 0, false
	}
	return d, true
}

// app reads one entry of `apps:`.
func (p *parser) app(n *yaml.Node, idx int) (App, bool) {
	a := App{
		Line:        n.Line,
		KillTimeout: DefaultKillTimeout,
		StopSignal:  syscall.SIGTERM,
		BackoffMax:  DefaultBackoffMax,
		MinUptime:   DefaultMinUptime,
	}
	field := fmt.Sprintf("apps[%d]", idx)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "each app must be a mapping (name:, command:, ...)")
		return a, false
	}
	// The name goes into every other error, so read it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
			a.Name = n.Content[i+1].Value
			if a.Name != "" {
				field = fmt.Sprintf("apps[%s]", a.Name)
			}
		}
	}
	before := len(p.errs)
	p.fields(n, field, map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) {
			s, ok := p.str(v, field+".name")
			if ok {
				if err := checkName(s); err != nil {
					p.errorf(v, field+".name", "%v", err)
				}
			}
		},
		"command": func(v *yaml.Node) {
			if s, ok := p.str(v, field+".command"); ok {
				if strings.TrimSpace(s) == "" {
					p.errorf(v, field+".command", "is empty")
				}
				a.Command = s
			}
		},
		"args": func(v *yaml.Node) {
			if l, ok := p.strList(v, field+".args"); ok {
				a.Args = l
			}
		},
		"env": func(v *yaml.Node) {
			a.Env = map[string]string{}
			if isNull(v) {
				return
			}
			if !p.isMap(v, field+".env") {
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], v.Content[i+1]
				f := field + ".env." + k.Value
				if k.Value == "" || strings.ContainsAny(k.Value, "=\x00") {
					p.errorf(k, f, "is not a valid environment variable name")
					continue
				}
				if s, ok := p.str(val, f); ok {
					a.Env[k.Value] = s
				}
			}
		},
		"cwd": func(v *yaml.Node) {
			if s, ok := p.str(v, field+".cwd"); ok {
				a.Cwd = s
			}
		},
		"ready": func(v *yaml.Node) {
			p.fields(v, field+".ready", map[string]func(*yaml.Node){
				"tcp": func(t *yaml.Node) {
					if s, ok := p.str(t, field+".ready.tcp"); ok {
						if err := checkHostPort(s); err != nil {
							p.errorf(t, field+".ready.tcp", "%v", err)
						}
						a.ReadyTCP = s
					}
				},
				"log": func(t *yaml.Node) {
					if s, ok := p.str(t, field+".ready.log"); ok {
						if _, err := regexp.Compile(s); err != nil {
							p.errorf(t, field+".ready.log", "is not a valid regular expression: %v", err)
						}
						a.ReadyLog = s
					}
				},
			})
		},
		"kill_timeout": func(v *yaml.Node) {
			if d, ok := p.duration(v, field+".kill_timeout"); ok {
				if d == 0 {
					p.errorf(v, field+".kill_timeout", "must be longer than 0s")
				}
				a.KillTimeout = d
			}
		},
		"stop_signal": func(v *yaml.Node) {
			if s, ok := p.str(v, field+".stop_signal"); ok {
				sig, err := ParseSignal(s)
				if err != nil {
					p.errorf(v, field+".stop_signal", "%v", err)
				}
				a.StopSignal = sig
			}
		},
		"restart": func(v *yaml.Node) {
			p.fields(v, field+".restart", map[string]func(*yaml.Node){
				"delay": func(t *yaml.Node) {
					if d, ok := p.duration(t, field+".restart.delay"); ok {
						a.Delay = d
					}
				},
				"backoff_max": func(t *yaml.Node) {
					if d, ok := p.duration(t, field+".restart.backoff_max"); ok {
						a.BackoffMax = d
					}
				},
				"min_uptime": func(t *yaml.Node) {
					if d, ok := p.duration(t, field+".restart.min_uptime"); ok {
						a.MinUptime = d
					}
				},
			})
			if a.BackoffMax < a.Delay {
				p.errorf(v, field+".restart.backoff_max", "(%s) is shorter than delay (%s)", a.BackoffMax, a.Delay)
			}
		},
		"max_memory": func(v *yaml.Node) {
			if s, ok := p.str(v, field+".max_memory"); ok {
				b, err := ParseSize(s)
				if err != nil {
					p.errorf(v, field+".max_memory", "%v", err)
				}
				a.MaxMemory = b
			}
		},
		"after": func(v *yaml.Node) {
			if l, ok := p.strList(v, field+".after"); ok {
				a.After = l
			}
		},
	})
	if a.Name == "" {
		p.errorf(n, field+".name", "every app needs a name")
	}
	if a.Command == "" && !p.has(n, "command") {
		p.errorf(n, field+".command", "every app needs a command (\"gatewayd\" means this very binary)")
	}
	return a, len(p.errs) == before
}

func (p *parser) has(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// checkApps checks what spans entries: unique names, known and acyclic
// `after` lists.
func (p *parser) checkApps(apps []App) {
	byName := map[string]App{}
	for _, a := range apps {
		if prev, dup := byName[a.Name]; dup {
			p.errs = append(p.errs, &Error{File: p.file, Line: a.Line, Field: fmt.Sprintf("apps[%s].name", a.Name),
				Msg: fmt.Sprintf("%q is already the name of the app at line %d", a.Name, prev.Line)})
			continue
		}
		byName[a.Name] = a
	}
	for _, a := range apps {
		for _, dep := range a.After {
			if _, ok := byName[dep]; !ok {
				p.errs = append(p.errs, &Error{File: p.file, Line: a.Line, Field: fmt.Sprintf("apps[%s].after", a.Name),
					Msg: fmt.Sprintf("names %q, which is not an app of this file", dep)})
			}
			if dep == a.Name {
				p.errs = append(p.errs, &Error{File: p.file, Line: a.Line, Field: fmt.Sprintf("apps[%s].after", a.Name),
					Msg: "an app cannot come after itself"})
			}
		}
	}
	// A cycle would leave every app in it waiting forever.
	state := map[string]int{} // 0 new, 1 on the path, 2 done
	var visit func(name string, path []string) bool
	visit = func(name string, path []string) bool {
		switch state[name] {
		case 1:
			a := byName[name]
			p.errs = append(p.errs, &Error{File: p.file, Line: a.Line, Field: fmt.Sprintf("apps[%s].after", name),
				Msg: "apps wait for each other in a circle: " + strings.Join(append(path, name), " -> ")})
			return false
		case 2:
			return true
		}
		state[name] = 1
		for _, dep := range byName[name].After {
			if _, ok := byName[dep]; ok && dep != name {
				if !visit(dep, append(path, name)) {
					return false
				}
			}
		}
		state[name] = 2
		return true
	}
	for _, a := range apps {
		if state[a.Name] == 0 && !visit(a.Name, nil) {
			return
		}
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// checkName keeps names usable as log file names and in gwctl commands.
func checkName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case s == "all":
		return fmt.Errorf(`"all" is reserved: gwctl uses it for every app`)
	case len(s) > 64:
		return fmt.Errorf("%q is longer than 64 characters", s)
	case !nameRE.MatchString(s):
		return fmt.Errorf("%q may hold only letters, digits, '.', '_' and '-', starting with a letter or digit", s)
	}
	return nil
}

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

func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not [host]:port (e.g. \":80\" or \"127.0.0.1:8080\")", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", s)
	}
	return nil
}
