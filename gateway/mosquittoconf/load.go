package mosquittoconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Load reads the conf file at path and the files its include_dir names,
// and checks them. Relative paths in the file (include_dir, certfile,
// password_file...) are taken from the working directory, as Mosquitto
// does. The Config is nil whenever Diagnostics holds an error.
func Load(path string) (*Config, Diagnostics) {
	data, err := os.ReadFile(path)
	if err != nil {
		var ds Diagnostics
		ds.errorf(Pos{File: path}, "", "cannot read the config file: "+pathErrText(err))
		return nil, ds
	}
	return check(path, data, "")
}

// Check is Load for text not yet written (the console's Check button).
// dir is the folder relative paths are taken from: the broker's working
// directory. An empty dir means this process's working directory.
func Check(name string, data []byte, dir string) (*Config, Diagnostics) {
	return check(name, data, dir)
}

func check(name string, data []byte, dir string) (*Config, Diagnostics) {
	return CheckWith(name, data, dir, CheckOptions{})
}

// Defaults returns the meaning of an empty mosquitto.conf: Mosquitto 2's
// defaults, with no listener written (the broker then listens on 1883 on
// loopback only).
func Defaults() *Config {
	return &Config{
		PersistenceFile:     "mosquitto.db",
		AutosaveInterval:    1800,
		MaxConnections:      -1,
		MaxInflightMessages: 20,
		MaxQueuedMessages:   1000,
		MaxKeepalive:        65535,
		RetainAvailable:     true,
		SysInterval:         10,
		LogDest:             []string{"stderr"},
		LogType:             []string{"error", "warning", "notice", "information"},
		ConnectionMessages:  true,
		MaxQoS:              2,
		LogFacility:         3 << 3, // daemon
		MaxTopicAlias:       10,
		Security:            Security{Pos: map[string]Pos{}},
		Where:               map[string]Pos{},
	}
}

// SecurityFor returns the security that applies to clients of l: the
// listener's own under per_listener_settings, the broker's otherwise.
func (c *Config) SecurityFor(l Listener) Security {
	if c.PerListenerSettings {
		return l.Security
	}
	return c.Security
}

// includeDir reads the *.conf files of an include_dir folder in the order
// Mosquitto does (sorted by name, ignoring case), each starting outside
// any listener or bridge.
func (in *interp) includeDir(st *fileState, pos Pos, l *Line) {
	if st.level > 0 {
		in.ds.warnf(pos, l.Option, "only read from the main config file, ignored")
		return
	}
	dir, ok := in.rest(pos, l)
	if !ok || in.refused {
		return
	}
	full := in.resolve(dir)
	// A folder outside is read only when it is the owner's own line
	// (Confinement.Kept); what its files say is then not shown at all.
	keptOutside := in.confine != nil && in.confine.check(dir, in.baseDir, false) != nil
	entries, err := os.ReadDir(full)
	if err != nil {
		in.ds.errorf(pos, l.Option, fmt.Sprintf("cannot read folder %q: %s", dir, pathErrText(err)))
		return
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); len(n) > len(".conf") && strings.HasSuffix(n, ".conf") {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(a, b int) bool {
		la, lb := strings.ToLower(names[a]), strings.ToLower(names[b])
		if la != lb {
			return la < lb
		}
		return names[a] < names[b]
	})
	for _, n := range names {
		shown := filepath.Join(dir, n)
		if keptOutside {
			in.outside[shown] = true
		} else if in.confine != nil {
			// An entry may be a link to a file outside.
			if err := in.confine.check(filepath.Join(full, n), "", false); err != nil {
				in.ds.errorf(pos, l.Option, err.Error())
				continue
			}
		}
		fi, err := os.Stat(filepath.Join(full, n))
		if err != nil {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("cannot read %q: %s", shown, pathErrText(err)))
			continue
		}
		if !fi.Mode().IsRegular() {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("%q is not a regular file", shown))
			continue
		}
		data, err := os.ReadFile(filepath.Join(full, n))
		if err != nil {
			in.ds.errorf(pos, l.Option, fmt.Sprintf("cannot read %q: %s", shown, pathErrText(err)))
			continue
		}
		in.run(ParseDocument(shown, data), st.level+1)
	}
}

// resolve makes a path from the conf usable from this process.
func (in *interp) resolve(p string) string {
	if filepath.IsAbs(p) || in.baseDir == "" {
		return p
	}
	return filepath.Join(in.baseDir, p)
}

// fileRef is a file or folder named by an option, checked once the whole
// config is read.
type fileRef struct {
	option string
	path   string
	pos    Pos
	dir    bool
}

// checkFiles makes sure every named file exists and can be opened, so a
// broker never starts half-configured because a certificate is missing.
func (in *interp) checkFiles() {
	if in.skipFiles {
		return
	}
	for _, r := range in.refs {
		full := in.resolve(r.path)
		if abs, err := filepath.Abs(full); err == nil && !r.dir && slices.Contains(in.pending, abs) {
			continue
		}
		where := ""
		if full != r.path || !filepath.IsAbs(r.path) {
			if abs, err := filepath.Abs(full); err == nil {
				where = " (looked for " + abs + ")"
			}
		}
		fi, err := os.Stat(full)
		if err != nil {
			in.ds.errorf(r.pos, r.option, fmt.Sprintf("cannot use %q: %s%s", r.path, pathErrText(err), where))
			continue
		}
		if r.dir {
			if !fi.IsDir() {
				in.ds.errorf(r.pos, r.option, fmt.Sprintf("%q is not a folder%s", r.path, where))
				continue
			}
		} else if !fi.Mode().IsRegular() {
			in.ds.errorf(r.pos, r.option, fmt.Sprintf("%q is not a regular file%s", r.path, where))
			continue
		}
		f, err := os.Open(full)
		if err != nil {
			in.ds.errorf(r.pos, r.option, fmt.Sprintf("cannot read %q: %s%s", r.path, pathErrText(err), where))
			continue
		}
		_ = f.Close()
	}
}

// pathErrText is the reason of a file error without the path, which the
// caller names in its own words.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or folder"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// sortDiagnostics orders messages by file (in the order read) and line.
func (in *interp) sortDiagnostics() {
	order := map[string]int{}
	for i, f := range in.cfg.Files {
		if _, ok := order[f]; !ok {
			order[f] = i
		}
	}
	less := func(ds []Diagnostic) func(a, b int) bool {
		return func(a, b int) bool {
			fa, fb := order[ds[a].Pos.File], order[ds[b].Pos.File]
			if fa != fb {
				return fa < fb
			}
			return ds[a].Pos.Line < ds[b].Pos.Line
		}
	}
	sort.SliceStable(in.ds.Errors, less(in.ds.Errors))
	sort.SliceStable(in.ds.Warnings, less(in.ds.Warnings))
}
