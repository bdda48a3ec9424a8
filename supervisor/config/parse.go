package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/homebox/gateway/gateway/languard"
	"github.com/homebox/gateway/supervisor"
)

// The file is decoded by yaml.v3 into the structs below with KnownFields, so
// that an unknown key (usually a typo) is an error rather than ignored. Each
// value is a setting: it keeps its line, and a value of the wrong kind is
// recorded rather than failed, so that it is reported once its field's name
// is known, along with every other mistake.

type fileYAML struct {
	Console   consoleYAML   `yaml:"console"`
	LAN       lanYAML       `yaml:"lan"`
	Discovery discoveryYAML `yaml:"discovery"`
	Apps      []appYAML     `yaml:"apps"`
}

type consoleYAML struct {
	Listen setting[string]   `yaml:"listen"`
	Hosts  setting[[]string] `yaml:"hosts"`
}

type lanYAML struct {
	Allow setting[[]setting[string]] `yaml:"allow"`
}

type discoveryYAML struct {
	MDNS mdnsYAML `yaml:"mdns"`
}

type mdnsYAML struct {
	Enabled    setting[bool]     `yaml:"enabled"`
	Interfaces setting[[]string] `yaml:"interfaces"`
}

type appYAML struct {
	Name        setting[string]                     `yaml:"name"`
	Command     setting[string]                     `yaml:"command"`
	Args        setting[[]string]                   `yaml:"args"`
	Env         setting[map[string]setting[string]] `yaml:"env"`
	Cwd         setting[string]                     `yaml:"cwd"`
	Ready       readyYAML                           `yaml:"ready"`
	KillTimeout setting[string]                     `yaml:"kill_timeout"`
	StopSignal  setting[string]                     `yaml:"stop_signal"`
	Restart     restartYAML                         `yaml:"restart"`
	MaxMemory   setting[string]                     `yaml:"max_memory"`
	After       setting[[]string]                   `yaml:"after"`
	User        setting[string]                     `yaml:"user"`
	Group       setting[string]                     `yaml:"group"`
}

type readyYAML struct {
	TCP setting[string] `yaml:"tcp"`
	Log setting[string] `yaml:"log"`
}

type restartYAML struct {
	Delay      setting[string] `yaml:"delay"`
	BackoffMax setting[string] `yaml:"backoff_max"`
	MinUptime  setting[string] `yaml:"min_uptime"`
}

// setting is one value of the file and where it was written. Line 0: the
// key is absent (or its value is null, which yaml.v3 leaves unset).
type setting[T any] struct {
	V    T
	Line int
	Raw  string // the text as written, for messages
	Bad  bool   // the text is not a T (a list where one value belongs, ...)
}

func (s *setting[T]) UnmarshalYAML(n *yaml.Node) error {
	s.Line, s.Raw = n.Line, n.Value
	s.Bad = n.Decode(&s.V) != nil
	return nil
}

type parser struct {
	file string
	errs Errors
}

func (p *parser) errorf(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Parse checks gateway.yaml's text; path only names the file in errors.
// The error, when not nil, is an Errors, in file order.
func Parse(path string, data []byte) (*Config, error) {
	p := &parser{file: path}
	// The tree first: it reports bad syntax, and names the fields of the
	// errors yaml.v3's typed decoding reports by line only.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{yamlError(path, err)}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{File: path, Msg: "the file is empty: it needs at least an apps: list"}}
	}
	top := doc.Content[0]
	var f fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Errors{yamlError(path, err)}
		}
		p.typeErrors(te, places(top, "", nil))
	}
	cfg := p.config(&f, top)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, p.errs
	}
	return cfg, nil
}

// config reads the decoded file into a Config, checking every value.
func (p *parser) config(f *fileYAML, top *yaml.Node) *Config {
	cfg := &Config{
		File:      p.file,
		Console:   Console{Listen: DefaultConsole},
		LAN:       LAN{Allow: []string{"lan"}},
		Discovery: Discovery{MDNS: MDNS{Enabled: true}},
	}
	if s, ok := p.str(f.Console.Listen, "console.listen"); ok {
		if err := checkListen(s); err != nil {
			p.errorf(f.Console.Listen.Line, "console.listen", "%v", err)
		}
		cfg.Console.Listen = s
	}
	if l, ok := p.list(f.Console.Hosts, "console.hosts"); ok {
		for _, h := range l {
			if !validHostName(h) {
				p.errorf(f.Console.Hosts.Line, "console.hosts", "%q is not a host name (letters, digits, '-' and '.', like gateway.home.arpa)", h)
			}
		}
		cfg.Console.Hosts = l
	}
	if allow := f.LAN.Allow; allow.Line > 0 {
		if allow.Bad {
			p.errorf(allow.Line, "lan.allow", "must be a list, like [lan, 192.168.1.0/24]")
		} else if len(allow.V) == 0 {
			p.errorf(allow.Line, "lan.allow", "is empty: name at least one network (lan, loopback, any or a CIDR)")
		}
		cfg.LAN.Allow = []string{}
		for i, it := range allow.V {
			field := fmt.Sprintf("lan.allow[%d]", i)
			s, ok := p.str(it, field)
			if !ok {
				continue
			}
			if _, err := languard.ParseNetworks([]string{s}); err != nil {
				p.errorf(it.Line, field, "%v", err)
			}
			cfg.LAN.Allow = append(cfg.LAN.Allow, s)
		}
	}
	if en := f.Discovery.MDNS.Enabled; en.Line > 0 {
		if en.Bad {
			p.errorf(en.Line, "discovery.mdns.enabled", "must be true or false, not %q", en.Raw)
		}
		cfg.Discovery.MDNS.Enabled = en.V
	}
	if l, ok := p.list(f.Discovery.MDNS.Interfaces, "discovery.mdns.interfaces"); ok {
		cfg.Discovery.MDNS.Interfaces = l
	}
	p.apps(cfg, f.Apps, top)
	return cfg
}

// appLines is where each field of one app was written, to place the
// supervisor's findings.
type appLines struct {
	entry  int             // where the entry starts
	lines  map[string]int  // field (as supervisor.SpecError names it) -> line
	done   map[string]bool // fields already reported while decoding
	broken bool            // the entry could not be decoded at all
}

func (l *appLines) line(field string) int {
	if n, ok := l.lines[field]; ok {
		return n
	}
	// A mistake of a whole section ("ready") points at its first value.
	best := 0
	for f, n := range l.lines {
		if strings.HasPrefix(f, field+".") && (best == 0 || n < best) {
			best = n
		}
	}
	if best > 0 {
		return best
	}
	return l.entry
}

func (p *parser) apps(cfg *Config, apps []appYAML, top *yaml.Node) {
	// yaml.v3 leaves out of the list the entries it could not decode; the
	// tree says which they are, so that each app keeps its entry's line.
	entries := appEntries(top)
	where := make([]*appLines, len(entries))
	broken := false
	for i, n := range entries {
		w := &appLines{entry: n.Line, lines: map[string]int{}, done: map[string]bool{}}
		where[i] = w
		if !decodable(n) || len(apps) == 0 {
			w.broken, broken = true, true
			cfg.Apps = append(cfg.Apps, App{Line: n.Line})
			continue
		}
		cfg.Apps = append(cfg.Apps, p.app(&apps[0], i, w))
		apps = apps[1:]
	}
	// The app rules are the supervisor's: they run on the specs the file
	// gives, and their findings are placed on the file's lines.
	err := supervisor.Validate(cfg.Specs("/", SelfCommand))
	var specErrs supervisor.SpecErrors
	errors.As(err, &specErrs)
	for _, e := range specErrs {
		w := where[e.Index]
		// An app not decoded has no name or command: its decoding error
		// says what is wrong. Others may name it in after.
		if w.broken || w.done[e.Field] || broken && e.Field == "after" {
			continue
		}
		msg := e.Msg
		switch {
		case e.Other >= 0:
			msg += fmt.Sprintf(" (the one at line %d)", where[e.Other].entry)
		case e.Field == "command":
			msg += ` ("gatewayd" means this very binary)`
		}
		p.errorf(w.line(e.Field), appField(cfg.Apps[e.Index].Name, e.Index)+"."+e.Field, "%s", msg)
	}
}

// decodable reports whether yaml.v3 can decode an entry of apps into an
// appYAML: a mapping (or null) without a key given twice.
func decodable(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	seen := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		if seen[n.Content[i].Value] {
			return false
		}
		seen[n.Content[i].Value] = true
	}
	return true
}

func appField(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("apps[%d]", i)
	}
	return fmt.Sprintf("apps[%s]", name)
}

// app reads one entry of `apps:`, applying the defaults field by field.
func (p *parser) app(y *appYAML, i int, w *appLines) App {
	a := App{
		Line:        w.entry,
		KillTimeout: DefaultKillTimeout,
		BackoffMax:  DefaultBackoffMax,
		MinUptime:   DefaultMinUptime,
	}
	a.StopSignal, _ = supervisor.ParseStopSignal("SIGTERM")
	name := y.Name.V
	if y.Name.Bad {
		name = ""
	}
	prefix := appField(name, i) + "."
	// at notes where a field was written and gives its name for errors;
	// check notes a field already reported, so the supervisor's finding
	// about the same value is not reported twice.
	at := func(field string, line int) string {
		if line > 0 {
			w.lines[field] = line
		}
		return prefix + field
	}
	before := len(p.errs)
	check := func(field string) {
		if len(p.errs) > before {
			w.done[field] = true
			before = len(p.errs)
		}
	}

	a.Name, _ = p.str(y.Name, at("name", y.Name.Line))
	check("name")
	a.Command, _ = p.str(y.Command, at("command", y.Command.Line))
	check("command")
	a.Args, _ = p.list(y.Args, at("args", y.Args.Line))
	a.Cwd, _ = p.str(y.Cwd, at("cwd", y.Cwd.Line))
	if env := y.Env; env.Line > 0 {
		a.Env = map[string]string{}
		if env.Bad {
			p.errorf(env.Line, at("env", env.Line), "must be a mapping of names to values")
		}
		for k, v := range env.V {
			field := "env." + k
			if s, ok := p.str(v, at(field, v.Line)); ok {
				a.Env[k] = s
			}
			check(field)
		}
	}
	a.ReadyTCP, _ = p.str(y.Ready.TCP, at("ready.tcp", y.Ready.TCP.Line))
	check("ready.tcp")
	a.ReadyLog, _ = p.str(y.Ready.Log, at("ready.log", y.Ready.Log.Line))
	check("ready.log")
	if d, ok := p.duration(y.KillTimeout, at("kill_timeout", y.KillTimeout.Line)); ok {
		// In a Spec 0 means the default; written in the file it would mean
		// SIGKILL at once, which is what a person never wants.
		if d == 0 {
			p.errorf(y.KillTimeout.Line, prefix+"kill_timeout", "must be longer than 0s")
		}
		a.KillTimeout = d
	}
	check("kill_timeout")
	if s, ok := p.str(y.StopSignal, at("stop_signal", y.StopSignal.Line)); ok {
		sig, err := supervisor.ParseStopSignal(s)
		if err != nil {
			p.errorf(y.StopSignal.Line, prefix+"stop_signal", "%v", err)
		} else {
			a.StopSignal = sig
		}
	}
	check("stop_signal")
	r := y.Restart
	if d, ok := p.duration(r.Delay, at("restart.delay", r.Delay.Line)); ok {
		a.Delay = d
	}
	check("restart.delay")
	if d, ok := p.duration(r.BackoffMax, at("restart.backoff_max", r.BackoffMax.Line)); ok {
		a.BackoffMax = d
	} else if r.BackoffMax.Line == 0 {
		a.BackoffMax = max(DefaultBackoffMax, a.Delay) // as the supervisor's default
	}
	check("restart.backoff_max")
	if d, ok := p.duration(r.MinUptime, at("restart.min_uptime", r.MinUptime.Line)); ok {
		a.MinUptime = d
	}
	check("restart.min_uptime")
	if s, ok := p.str(y.MaxMemory, at("max_memory", y.MaxMemory.Line)); ok {
		b, err := ParseSize(s)
		if err != nil {
			p.errorf(y.MaxMemory.Line, prefix+"max_memory", "%v", err)
		}
		a.MaxMemory = b
	}
	a.After, _ = p.list(y.After, at("after", y.After.Line))
	check("after")
	a.User, _ = p.str(y.User, at("user", y.User.Line))
	check("user")
	a.Group, _ = p.str(y.Group, at("group", y.Group.Line))
	check("group")
	a.AccountLine = y.User.Line
	if a.AccountLine == 0 {
		a.AccountLine = y.Group.Line
	}
	return a
}

// str returns a single value that is present and well-formed.
func (p *parser) str(s setting[string], field string) (string, bool) {
	if s.Line == 0 {
		return "", false
	}
	if s.Bad {
		p.errorf(s.Line, field, "must be a single value")
		return "", false
	}
	return s.V, true
}

func (p *parser) list(s setting[[]string], field string) ([]string, bool) {
	if s.Line == 0 {
		return nil, false
	}
	if s.Bad {
		p.errorf(s.Line, field, "must be a list of single values, like [a, b]")
		return nil, false
	}
	if s.V == nil {
		return []string{}, true
	}
	return s.V, true
}

func (p *parser) duration(s setting[string], field string) (time.Duration, bool) {
	v, ok := p.str(s, field)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.errorf(s.Line, field, "%q is not a duration: write it like 500ms, 5s, 2m or 1h", v)
		return 0, false
	}
	return d, true
}

// appEntries returns the nodes of the apps list, for the lines entries
// start on.
func appEntries(top *yaml.Node) []*yaml.Node {
	if top.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "apps" && top.Content[i+1].Kind == yaml.SequenceNode {
			return top.Content[i+1].Content
		}
	}
	return nil
}

// place is a key or a value of the file with its field name.
type place struct {
	line  int
	key   string     // for a key
	value *yaml.Node // for a value
	field string
}

// places lists the keys and values under n, for naming the field of an
// error yaml.v3 reports by line.
func places(n *yaml.Node, field string, out []place) []place {
	if field == "" {
		out = append(out, place{line: n.Line, value: n})
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f := k.Value
			if field != "" {
				f = field + "." + k.Value
			}
			out = append(out, place{line: k.Line, key: k.Value, field: f}, place{line: v.Line, value: v, field: f})
			out = places(v, f, out)
		}
	case yaml.SequenceNode:
		for i, it := range n.Content {
			f := fmt.Sprintf("%s[%d]", field, i)
			if field == "apps" {
				f = appField(entryName(it), i)
			}
			out = append(out, place{line: it.Line, value: it, field: f})
			out = places(it, f, out)
		}
	}
	return out
}

func entryName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "name" && v.Kind == yaml.ScalarNode {
			return v.Value
		}
	}
	return ""
}

var (
	typeErrLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownKeyRE  = regexp.MustCompile(`^field (.*) not found in type (\S+)$`)
	givenTwiceRE  = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	wrongKindRE   = regexp.MustCompile(`^cannot unmarshal .* into (\S+)$`)
)

// section is one struct of the file: its keys, and the key it sits under
// ("apps[]" for an entry of apps).
type section struct {
	keys  []string
	under string
}

// sections are the file's structs by type name, as yaml.v3's errors name
// them, read from the structs themselves so that they cannot drift.
var sections = func() map[string]*section {
	out := map[string]*section{}
	var walk func(t reflect.Type, under string)
	walk = func(t reflect.Type, under string) {
		if t.Kind() == reflect.Slice {
			out[t.String()] = &section{under: strings.TrimSuffix(under, "[]")}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || strings.HasPrefix(t.Name(), "setting[") {
			return
		}
		s := &section{under: under}
		out[t.String()] = s
		for i := range t.NumField() {
			f := t.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			s.keys = append(s.keys, key)
			if f.Type.Kind() == reflect.Slice {
				walk(f.Type, key+"[]")
			} else {
				walk(f.Type, key)
			}
		}
		slices.Sort(s.keys)
	}
	walk(reflect.TypeFor[fileYAML](), "")
	return out
}()

// lastKey is the key a field sits under: "ready" for apps[x].ready,
// "apps[]" for apps[x].
func lastKey(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	if i := strings.IndexByte(field, '['); i >= 0 {
		return field[:i] + "[]"
	}
	return field
}

// typeErrors turns yaml.v3's decoding errors, which name a line only, into
// errors that name the field too. Settings never fail, so these are about
// keys and sections: unknown, given twice, or not a mapping (a list).
func (p *parser) typeErrors(te *yaml.TypeError, ps []place) {
	for _, s := range te.Errors {
		m := typeErrLineRE.FindStringSubmatch(s)
		if m == nil {
			p.errorf(0, "", "%s", s)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		msg := m[2]
		keyAt := func(key string) string {
			for _, pl := range ps {
				if pl.line == line && pl.value == nil && pl.key == key {
					return pl.field
				}
			}
			return key
		}
		if k := unknownKeyRE.FindStringSubmatch(msg); k != nil {
			known := ""
			if sec := sections[k[2]]; sec != nil {
				known = " (known here: " + strings.Join(sec.keys, ", ") + ")"
			}
			p.errorf(line, keyAt(k[1]), "unknown key%s", known)
			continue
		}
		if k := givenTwiceRE.FindStringSubmatch(msg); k != nil {
			p.errorf(line, keyAt(k[1]), "is given twice (first at line %s)", k[2])
			continue
		}
		if k := wrongKindRE.FindStringSubmatch(msg); k != nil && sections[k[1]] != nil {
			under := sections[k[1]].under
			want := "must be a mapping of keys to values"
			switch {
			case under == "":
				want = "the file must be a mapping of keys to values"
			case strings.HasPrefix(k[1], "[]"):
				want = `must be a list of apps (each starting with "- name: ...")`
			case under == "apps[]":
				want = "each app must be a mapping (name:, command:, ...)"
			}
			field := ""
			for _, pl := range ps {
				if pl.line == line && pl.value != nil && lastKey(pl.field) == under {
					field = pl.field
					break
				}
			}
			p.errorf(line, field, "%s", want)
			continue
		}
		p.errorf(line, "", "%s", msg)
	}
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

// validHostName accepts a DNS name as a browser would put it in Host.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
