package mosquittoconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// fileKind is what a file option names.
type fileKind int

const (
	kindFile    fileKind = iota // a file the broker reads
	kindDir                     // a folder the broker reads (or, for persistence_location, writes in)
	kindWritten                 // a file the broker creates or appends to
	kindLog                     // log_dest file PATH: may also be in the log folders
)

// fileOptions are the options of the table in options.go whose value
// names a file or folder, supported or not (an option the broker ignores
// today may be read by a later one). log_dest names a file only in its
// `file PATH` form, and persistence_file is taken under
// persistence_location; both are handled where they are read.
var fileOptions = map[string]fileKind{
	"include_dir":          kindDir,
	"persistence_location": kindDir,
	"persistence_file":     kindWritten,
	"pid_file":             kindWritten,
	"log_dest":             kindLog,

	"certfile":    kindFile,
	"keyfile":     kindFile,
	"cafile":      kindFile,
	"capath":      kindDir,
	"crlfile":     kindFile,
	"dhparamfile": kindFile,
	"http_dir":    kindDir,

	"password_file": kindFile,
	"acl_file":      kindFile,
	"psk_file":      kindFile,
	"plugin":        kindFile,
	"auth_plugin":   kindFile,
	"global_plugin": kindFile,

	"bridge_cafile":   kindFile,
	"bridge_capath":   kindDir,
	"bridge_certfile": kindFile,
	"bridge_keyfile":  kindFile,
}

// CheckOptions change how CheckWith judges a conf.
type CheckOptions struct {
	// Confine, when set, keeps every file and folder the conf names inside
	// the box's own folders. The console sets it: whoever holds the
	// console's password must not get the broker (root) to read, list or
	// write other files. The broker and `gatewayd broker --test-config`
	// leave it unset: an owner with a shell may name any file.
	Confine *Confinement
	// Pending are files (absolute) written in the same change as the conf
	// (a first password file): they count as there.
	Pending []string
}

// Confinement is where the files a conf names may be. Paths are taken as
// the broker takes them (relative ones from its working folder) and
// followed through symbolic links, so that a link inside cannot lead
// outside.
type Confinement struct {
	// Folders, absolute, are where any file option may point: each folder
	// and everything below it.
	Folders []string
	// LogFolders are further folders for `log_dest file` only.
	LogFolders []string
	// Refused are folders below Folders that are refused all the same
	// (gatewayd's own state: the console's login, the config history).
	Refused []string
	// Kept, when set, is asked about each file option before it is
	// confined: lines it keeps (the same option and value as in the conf
	// already on the box, written by its owner) may point anywhere, so an
	// edit through the console does not fail on a certificate the owner put
	// in /etc/ssl. Only the confinement is skipped; the checks that the
	// file exists still run, and never read its content.
	Kept func(option, value string) bool
}

// CheckWith is Check with options. With a Confinement, a file option that
// names something outside it is an error at its line, and the file is
// never opened, stat'ed for its kind or, for include_dir, listed. Errors
// at lines of included files then do not quote those lines.
func CheckWith(name string, data []byte, dir string, o CheckOptions) (*Config, Diagnostics) {
	in := newInterp(dir)
	in.pending = o.Pending
	if o.Confine != nil {
		in.confine = newConfiner(*o.Confine)
		in.main = name
	}
	in.run(ParseDocument(name, data), 0)
	in.finish()
	in.redactIncluded()
	in.sortDiagnostics()
	if !in.ds.OK() {
		return nil, in.ds
	}
	return in.cfg, in.ds
}

// confiner is a Confinement with its folders resolved.
type confiner struct {
	folders, logFolders, refused []string
	kept                         func(option, value string) bool
}

func newConfiner(c Confinement) *confiner {
	real := func(ds []string) []string {
		var out []string
		for _, d := range ds {
			if d == "" {
				continue
			}
			if r, err := realPath(d); err == nil {
				out = append(out, r)
			}
		}
		return out
	}
	return &confiner{folders: real(c.Folders), logFolders: real(c.LogFolders), refused: real(c.Refused), kept: c.Kept}
}

// Check says why the file at p (absolute, or relative to dir) may not be
// used; nil when it may. log allows the log folders as well.
func (c *Confinement) Check(p, dir string, log bool) error {
	return newConfiner(*c).check(p, dir, log)
}

func (c *confiner) check(p, dir string, log bool) error {
	full := p
	if !filepath.IsAbs(p) {
		if dir == "" {
			dir = "."
		}
		// Not filepath.Join, which would take "link/.." away before the
		// link is followed.
		full = dir + string(filepath.Separator) + p
	}
	real, err := realPath(full)
	if err != nil {
		return fmt.Errorf("%s: cannot be followed to a file (%s): the console only accepts files in the box's folders", p, pathErrText(err))
	}
	allowed := c.folders
	if log {
		allowed = append(allowed[:len(allowed):len(allowed)], c.logFolders...)
	}
	shown := p
	if real != p {
		shown = p + " (" + real + ")"
	}
	for _, r := range c.refused {
		if within(real, r) {
			return fmt.Errorf("%s is in %s, gatewayd's own folder: the console does not accept files there", shown, r)
		}
	}
	for _, a := range allowed {
		if within(real, a) {
			return nil
		}
	}
	return fmt.Errorf("%s is outside the box's folders (%s): the console only accepts files there", shown, strings.Join(allowed, ", "))
}

// within reports whether p is dir or below it; both are clean and absolute.
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(p, dir)
}

// maxLinks bounds the symbolic links followed for one path (Linux's own
// limit is 40).
const maxLinks = 40

// realPath is where p leads once every symbolic link in it is followed:
// filepath.EvalSymlinks, except that the path need not exist. A part that
// does not exist ends the links; what follows it is taken as written, as a
// file created there would be.
func realPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = wd + string(filepath.Separator) + p
	}
	sep := string(filepath.Separator)
	todo := strings.Split(p, sep)
	cur := sep
	links := 0
	missing := false
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		if missing {
			cur = next
			continue
		}
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = true
			cur = next
			continue
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink == 0:
			cur = next
			continue
		}
		links++
		if links > maxLinks {
			return "", errors.New("too many symbolic links")
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = sep
		}
		todo = append(strings.Split(target, sep), todo...)
	}
	return cur, nil
}

// confined checks the path an option names against the confinement, and
// reports it at pos when refused. True when the path may be used (or when
// there is no confinement).
func (in *interp) confined(pos Pos, option, value, path string, kind fileKind) bool {
	c := in.confine
	if c == nil || (c.kept != nil && pos.File == in.main && c.kept(option, value)) {
		return true
	}
	err := c.check(path, in.baseDir, kind == kindLog)
	if err == nil {
		return true
	}
	if pos.File != in.main {
		// A line of an included file: its text is not shown, not even the
		// path it names.
		in.ds.errorf(pos, option, "names a file outside the box's folders, or in gatewayd's own: the console only accepts files in the box's folders")
		return false
	}
	in.ds.errorf(pos, option, err.Error())
	return false
}

// confinedLine checks the path a file option's line names, before
// anything else is done with the line. False when the line is refused.
func (in *interp) confinedLine(pos Pos, l *Line) bool {
	if in.confine == nil {
		return true
	}
	kind, ok := fileOptions[l.Option]
	if !ok || l.Rest == "" {
		return true
	}
	path := l.Rest
	switch l.Option {
	case "log_dest":
		w := l.Words()
		if len(w) == 0 || w[0] != "file" {
			return true
		}
		path = strings.Trim(strings.TrimPrefix(l.Rest, "file"), " \t")
		if path == "" {
			return true
		}
	case "persistence_file":
		return true // taken under persistence_location: checked by finish
	}
	return in.confined(pos, l.Option, l.Rest, path, kind)
}

// confinePersistence checks the store file, persistence_file under
// persistence_location, once both are known.
func (in *interp) confinePersistence() {
	c := in.cfg
	pos, set := c.Where["persistence_file"]
	if in.confine == nil || !set {
		return
	}
	p := c.PersistenceFile
	if c.PersistenceLocation != "" {
		p = c.PersistenceLocation + string(filepath.Separator) + p
	}
	in.confined(pos, "persistence_file", c.PersistenceFile, p, kindWritten)
}

// generic messages of included lines that quote nothing of the line.
var quoteFree = []string{
	"unknown option",
	"not supported by this broker, ignored",
	"only read from the main config file, ignored",
	"missing value",
	"only allowed in a bridge, after a connection line",
	"names a file outside the box's folders",
}

// redactIncluded, under a confinement, replaces what diagnostics at lines
// of included files say by words that quote nothing of those lines, which
// the console does not show: only the option word and a fixed reason stay.
func (in *interp) redactIncluded() {
	if in.confine == nil {
		return
	}
	redact := func(ds []Diagnostic, what string) {
		for i := range ds {
			d := &ds[i]
			if d.Pos.File == in.main || d.Pos.File == "" {
				continue
			}
			keep := false
			if in.outside[d.Pos.File] {
				// Not even the option word of a file outside.
				d.Option = ""
				d.Message = what + " (the console does not quote files outside the box's folders: look at this line on the box)"
				continue
			}
			for _, q := range quoteFree {
				if strings.HasPrefix(d.Message, q) {
					keep = true
				}
			}
			if !keep {
				d.Message = what + " (the console does not quote included files: look at this line on the box)"
			}
		}
	}
	redact(in.ds.Errors, "this line is wrong")
	redact(in.ds.Warnings, "this line is taken differently from what it says")
}
