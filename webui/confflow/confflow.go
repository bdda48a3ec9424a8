// Package confflow is the one way the console changes the broker's files:
// check, write atomically keeping the old version, restart the broker
// through the supervisor, wait until it is ready, and when it does not
// come up put the old files back and restart again. A broken config thus
// never leaves the box without a broker, and the owner gets the broker's
// own words about what went wrong. Changes run one at a time, each as a
// read-modify-write under the flow's lock, so two browsers cannot lose
// each other's edits.
package confflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/atomicfile"
	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/supervisor"
)

// Apps is what the flow needs of the supervisor; *supervisor.Supervisor
// has it.
type Apps interface {
	RestartApp(name string) error
	Get(name string) (supervisor.AppState, error)
	LogFile(name string) (string, error)
	Subscribe() (<-chan supervisor.AppState, func())
}

// History kinds of the files the flow keeps.
const (
	KindConf      = "mosquitto.conf"
	KindPasswords = "password_file"
	KindACL       = "acl_file"
)

// Options configure a Flow.
type Options struct {
	Apps     Apps
	App      string // the broker's app name [mqtt]
	ConfPath string // mosquitto.conf, absolute
	// BrokerDir is the broker's working folder, where relative paths of
	// the conf are taken from. "" asks the supervisor for the app's cwd,
	// else the conf's own folder.
	BrokerDir string
	// Root is the box's root folder (gatewayd's --root). The conf the
	// console writes may name files only in the box's folders under it
	// (see Confinement). "" takes it from ConfPath when that is
	// <root>/etc/mosquitto/mosquitto.conf; otherwise only the conf's
	// folder and BrokerDir are allowed.
	Root         string
	History      *History
	ReadyTimeout time.Duration // [15s]
	// Settle is how long a ready broker must stay up to count: a broker
	// binds its listeners one by one, so the ready port can answer for a
	// moment before a later listener fails and the process exits [1s].
	Settle time.Duration
	Logger *slog.Logger
	// OnStep, when set, hears every step as it happens (the console's
	// event stream). It must not block.
	OnStep func(Step)
	// BeforeRestart, when set, runs before each restart of the broker, on
	// the files as they are then (new, or put back): gatewayd hands the
	// files the broker reads to the account it runs as. An error fails the
	// restart.
	BeforeRestart func() error
}

// Step is one stage of a change, for a page that shows progress.
type Step struct {
	Flow    string    `json:"flow"`
	Kind    string    `json:"kind"`
	Step    string    `json:"step"`   // check, write, restart, wait, rollback, done
	Status  string    `json:"status"` // running, ok, failed
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// File is one file a change writes.
type File struct {
	Path string
	Kind string // history kind (KindConf, KindPasswords)
	Data []byte
	Mode os.FileMode // 0 keeps the current file's mode
}

// Result is a change that took effect (or had nothing to do).
type Result struct {
	Flow      string `json:"flow"`
	Unchanged bool   `json:"unchanged"`
	// Version is the history id holding mosquitto.conf as it was before
	// (empty when the conf was not changed).
	Version string `json:"version,omitempty"`
}

// CheckError is a new mosquitto.conf that does not check; nothing was
// written.
type CheckError struct {
	Diagnostics mosquittoconf.Diagnostics
}

func (e *CheckError) Error() string {
	n := len(e.Diagnostics.Errors)
	s := "s"
	if n == 1 {
		s = ""
	}
	return fmt.Sprintf("mosquitto.conf has %d error%s; nothing was written", n, s)
}

// RolledBackError is a change the broker would not start with: the old
// files are back.
type RolledBackError struct {
	Flow        string
	Cause       error    // why the new broker was judged not ready
	BrokerError string   // the broker's own error line, if it printed one
	Log         []string // the last lines of the broker's log during the attempt
	// RestoreErr is set when putting the old files back or restarting on
	// them failed too: the box needs a person.
	RestoreErr error
}

func (e *RolledBackError) Error() string {
	msg := "the broker did not start with the new config; the previous one is back in force"
	if e.RestoreErr != nil {
		msg = "the broker did not start with the new config, and restoring the previous one failed too: " + e.RestoreErr.Error()
	}
	return msg
}

func (e *RolledBackError) Unwrap() error { return e.Cause }

// ErrUnavailable wraps failures of a part the flow needs that is not
// running (no supervisor, no broker app).
var ErrUnavailable = errors.New("unavailable")

// Flow runs config changes one at a time.
type Flow struct {
	o  Options
	mu sync.Mutex
	n  atomic.Int64
}

// New returns a Flow.
func New(o Options) *Flow {
	if o.App == "" {
		o.App = "mqtt"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 15 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Flow{o: o}
}

// ConfPath is the mosquitto.conf the flow changes.
func (f *Flow) ConfPath() string { return f.o.ConfPath }

// History is where earlier versions are kept.
func (f *Flow) History() *History { return f.o.History }

// BrokerDir is the folder relative paths of the conf are taken from: the
// broker's working folder, as the broker itself resolves them.
func (f *Flow) BrokerDir() string {
	if f.o.BrokerDir != "" {
		return f.o.BrokerDir
	}
	if f.o.Apps != nil {
		if st, err := f.o.Apps.Get(f.o.App); err == nil && st.Cwd != "" {
			return st.Cwd
		}
	}
	return filepath.Dir(f.o.ConfPath)
}

// Check checks conf text as the broker would read it, with the files it
// names confined to the box's folders (Confinement): lines that are in the
// conf on the box already, as its owner wrote them, are kept wherever they
// point.
func (f *Flow) Check(text []byte) (*mosquittoconf.Config, mosquittoconf.Diagnostics) {
	return f.check(text, nil)
}

// check is Check with the files a change writes beside the conf counted
// as there.
func (f *Flow) check(text []byte, pending []string) (*mosquittoconf.Config, mosquittoconf.Diagnostics) {
	c := f.Confinement()
	c.Kept = f.ownersLines()
	return mosquittoconf.CheckWith(filepath.Base(f.o.ConfPath), text, f.BrokerDir(), mosquittoconf.CheckOptions{Confine: &c, Pending: pending})
}

// root is the box's root, or "" when it is not known.
func (f *Flow) root() string {
	if f.o.Root != "" {
		return f.o.Root
	}
	suffix := string(filepath.Separator) + filepath.FromSlash(paths.MosquittoConf)
	if r, ok := strings.CutSuffix(filepath.Clean(f.o.ConfPath), suffix); ok {
		if r == "" {
			r = string(filepath.Separator)
		}
		return r
	}
	return ""
}

// Confinement is where the files the console's conf names may be: the
// conf's folder (certificates are uploaded to its certs folder) and the
// broker's working folder <root>/data, each with what is below it, and
// for log_dest file also <root>/var/log/gateway; gatewayd's own state
// (<root>/data/gateway: the console's login, this history) is refused.
func (f *Flow) Confinement() mosquittoconf.Confinement {
	c := mosquittoconf.Confinement{Folders: []string{filepath.Dir(f.o.ConfPath)}}
	if r := f.root(); r != "" {
		at := paths.Root(r)
		c.Folders = append(c.Folders, at.Join(paths.Data))
		c.LogFolders = []string{at.Join(paths.Logs)}
		c.Refused = []string{at.Join(filepath.Dir(paths.ConsoleLogin))}
	} else {
		c.Folders = append(c.Folders, f.BrokerDir())
	}
	if f.o.History != nil {
		c.Refused = append(c.Refused, f.o.History.dir)
	}
	return c
}

// Confined says why the console may not read or write the file at p, a
// path from the conf (relative ones are taken from the broker's working
// folder); nil when it may. Unlike Check, it keeps no owner's line: the
// console itself never opens a file outside the box's folders.
func (f *Flow) Confined(p string) error {
	c := f.Confinement()
	if err := c.Check(p, f.BrokerDir(), false); err != nil {
		return outsideError{err}
	}
	return nil
}

// ErrOutside is what errors.Is finds in the error of a file the console
// will not read or write because it is outside the box's folders.
var ErrOutside = errors.New("outside the box's folders")

// outsideError says which file and why; it is ErrOutside.
type outsideError struct{ err error }

func (e outsideError) Error() string        { return e.err.Error() }
func (e outsideError) Is(target error) bool { return target == ErrOutside }

// ownersLines reports the file options of the conf on the box, by option
// and value: an edit through the console may keep them as they are.
func (f *Flow) ownersLines() func(option, value string) bool {
	data, err := os.ReadFile(f.o.ConfPath)
	if err != nil {
		return nil
	}
	kept := map[[2]string]bool{}
	for _, l := range mosquittoconf.ParseDocument(filepath.Base(f.o.ConfPath), data).Lines {
		if l.IsOption() {
			kept[[2]string{l.Option, l.Rest}] = true
		}
	}
	return func(option, value string) bool { return kept[[2]string{option, value}] }
}

// Resolve turns a path from the conf into one this process can open.
func (f *Flow) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.BrokerDir(), p)
}

// Run makes one change. prepare runs under the flow's lock: it reads the
// current files and returns the new ones (an error from it is returned as
// is, with nothing written). A new mosquitto.conf is checked first
// (*CheckError). Then the files are written, the broker restarted and
// waited for; when it is not ready in time, the old files come back and
// the error is a *RolledBackError.
func (f *Flow) Run(ctx context.Context, kind string, prepare func() ([]File, error)) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := "f-" + strconv.FormatInt(f.n.Add(1), 10)
	res := Result{Flow: id}
	step := func(name, status, format string, args ...any) {
		s := Step{Flow: id, Kind: kind, Step: name, Status: status, Message: fmt.Sprintf(format, args...), Time: time.Now().UTC()}
		f.o.Logger.Info("config change", "flow", id, "kind", kind, "step", name, "status", status, "message", s.Message)
		if f.o.OnStep != nil {
			f.o.OnStep(s)
		}
	}

	step("check", "running", "checking the change")
	files, err := prepare()
	if err != nil {
		step("check", "failed", "%v", err)
		return res, err
	}
	for _, nf := range files {
		if nf.Path != f.o.ConfPath {
			// The console writes only in the box's folders, whatever
			// the conf on the box names.
			if err := f.Confined(nf.Path); err != nil {
				step("check", "failed", "%v", err)
				return res, err
			}
		}
		if nf.Path == f.o.ConfPath {
			var pending []string
			for _, o := range files {
				if o.Path != f.o.ConfPath {
					pending = append(pending, o.Path)
				}
			}
			if _, ds := f.check(nf.Data, pending); !ds.OK() {
				step("check", "failed", "mosquitto.conf has errors; nothing was written")
				return res, &CheckError{Diagnostics: ds}
			}
		}
	}
	// What is there now, to keep and to put back.
	olds := make([]old, len(files))
	changed := false
	for i, nf := range files {
		b, err := os.ReadFile(nf.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			step("check", "failed", "read %s: %v", nf.Path, err)
			return res, fmt.Errorf("read %s: %w", nf.Path, err)
		default:
			st, _ := os.Stat(nf.Path)
			olds[i] = old{data: b, exists: true, mode: st.Mode().Perm()}
		}
		if !olds[i].exists || !bytes.Equal(b, nf.Data) {
			changed = true
		}
	}
	if !changed {
		step("check", "ok", "nothing to change")
		step("done", "ok", "the files already say that; the broker was not restarted")
		res.Unchanged = true
		return res, nil
	}
	step("check", "ok", "the change checks")
	if f.o.Apps == nil {
		step("check", "failed", "the supervisor is not running")
		return res, fmt.Errorf("%w: the supervisor is not running, so the broker cannot be restarted", ErrUnavailable)
	}
	if _, err := f.o.Apps.Get(f.o.App); err != nil {
		step("check", "failed", "no app %q", f.o.App)
		return res, fmt.Errorf("%w: no app %q in gateway.yaml: %v", ErrUnavailable, f.o.App, err)
	}

	step("write", "running", "keeping the current version and writing the new one")
	var versions []keptVersion
	for i, nf := range files {
		if olds[i].exists && f.o.History != nil {
			e, err := f.o.History.Save(nf.Kind, olds[i].data, "before a "+kind+" change")
			if err != nil {
				step("write", "failed", "%v", err)
				return res, err
			}
			versions = append(versions, keptVersion{nf.Kind, e.ID, describeChange(nf.Kind, olds[i].data, nf.Data)})
			if nf.Path == f.o.ConfPath {
				res.Version = e.ID
			}
		}
	}
	// The kept versions say what replaced them and how that ended.
	outcome := func(o string) {
		for _, k := range versions {
			if err := f.o.History.Update(k.kind, k.id, func(e *Entry) { e.Change, e.Outcome = k.change, o }); err != nil {
				f.o.Logger.Warn("history: outcome not recorded", "version", k.id, "error", err)
			}
		}
	}
	written := 0
	for _, nf := range files {
		if err := atomicfile.Write(nf.Path, nf.Data, nf.Mode); err != nil {
			step("write", "failed", "%v", err)
			restoreErr := f.putBack(files[:written], olds)
			return res, errors.Join(err, restoreErr)
		}
		written++
	}
	step("write", "ok", "written")

	logFile, _ := f.o.Apps.LogFile(f.o.App)
	offset := fileSize(logFile)
	cause := f.restartAndWait(ctx, step)
	if cause == nil {
		outcome(OutcomeApplied)
		step("done", "ok", "the broker is up on the new config")
		return res, nil
	}
	outcome(OutcomeRolledBack)
	rb := &RolledBackError{Flow: id, Cause: cause}
	rb.Log = f.unquoteOthers(readFrom(logFile, offset, 20))
	rb.BrokerError = brokerError(rb.Log)

	step("rollback", "running", "putting the previous files back")
	res.Version = ""
	if err := f.putBack(files, olds); err != nil {
		rb.RestoreErr = err
		step("rollback", "failed", "%v", err)
		return res, rb
	}
	if err := f.restartAndWait(context.WithoutCancel(ctx), nil); err != nil {
		rb.RestoreErr = fmt.Errorf("the broker did not come back on the previous files either: %w", err)
		step("rollback", "failed", "%v", rb.RestoreErr)
		return res, rb
	}
	step("rollback", "ok", "the broker is up again on the previous files")
	step("done", "failed", "%s", rb.Error())
	return res, rb
}

// keptVersion is a version a change kept in the history, and what the
// change did to it.
type keptVersion struct{ kind, id, change string }

// old is a file as it was before a change.
type old struct {
	data   []byte
	exists bool
	mode   os.FileMode
}

func (f *Flow) putBack(files []File, olds []old) error {
	var errs []error
	for i, nf := range files {
		var err error
		if olds[i].exists {
			err = atomicfile.Write(nf.Path, olds[i].data, olds[i].mode)
		} else {
			err = atomicfile.Remove(nf.Path)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// restartAndWait restarts the broker app and waits until it is ready. A
// broker that exits (its process changes or ends) fails at once rather
// than at the timeout.
func (f *Flow) restartAndWait(ctx context.Context, step func(name, status, format string, args ...any)) error {
	if step == nil {
		step = func(string, string, string, ...any) {}
	}
	name := f.o.App
	ch, unsub := f.o.Apps.Subscribe()
	defer unsub()
	step("restart", "running", "restarting %s", name)
	if f.o.BeforeRestart != nil {
		if err := f.o.BeforeRestart(); err != nil {
			step("restart", "failed", "%v", err)
			return fmt.Errorf("before restarting %s: %w", name, err)
		}
	}
	if err := f.o.Apps.RestartApp(name); err != nil {
		step("restart", "failed", "%v", err)
		return fmt.Errorf("restart %s: %w", name, err)
	}
	st0, err := f.o.Apps.Get(name)
	if err != nil {
		return err
	}
	step("restart", "ok", "%s restarted (pid %d)", name, st0.PID)
	step("wait", "running", "waiting for %s to be ready", name)
	ctx, cancel := context.WithTimeout(ctx, f.o.ReadyTimeout)
	defer cancel()
	// Events can be dropped for a slow reader: look again now and then.
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	var settled <-chan time.Time
	for {
		st, err := f.o.Apps.Get(name)
		if err != nil {
			return err
		}
		switch {
		case st0.PID == 0 || st.PID != st0.PID || st.LastExitAt.After(st0.LastExitAt):
			why := st.LastError
			if why == "" {
				why = "it exited"
			}
			err := fmt.Errorf("%s did not stay up: %s", name, why)
			step("wait", "failed", "%v", err)
			return err
		case st.Ready && settled == nil:
			t := time.NewTimer(f.o.Settle)
			defer t.Stop()
			settled = t.C
		}
		select {
		case <-settled:
			if st, err := f.o.Apps.Get(name); err == nil && st.Ready && st.PID == st0.PID {
				step("wait", "ok", "%s is ready", name)
				return nil
			}
			settled = nil
		case <-ch:
		case <-poll.C:
		case <-ctx.Done():
			err := fmt.Errorf("%s was not ready within %s (%s)", name, f.o.ReadyTimeout, st.Status)
			step("wait", "failed", "%v", err)
			return err
		}
	}
}

func fileSize(path string) int64 {
	if path == "" {
		return 0
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns the last max whole lines written to path after offset
// (from the start when the file is now shorter: it was rotated).
func readFrom(path string, offset int64, max int) []string {
	if path == "" {
		return nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil && st.Size() < offset {
		offset = 0
	}
	const limit = 256 << 10
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(fh, offset, 1<<62), limit))
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > max {
		lines = lines[len(lines)-max:]
	}
	return lines
}

// unquoteOthers cuts, from the broker's log lines, what follows the
// FILE:LINE: position of a line of a file other than the conf being
// edited: the broker's own errors quote such lines (an ACL keyword, a user
// name), and the console shows the content of no file but mosquitto.conf.
func (f *Flow) unquoteOthers(lines []string) []string {
	conf := filepath.Base(f.o.ConfPath)
	for i, l := range lines {
		for from := 0; ; {
			p, end := filePos(l, from)
			if end < 0 {
				break
			}
			if p != conf && f.Resolve(p) != f.o.ConfPath && isFile(f.Resolve(p)) {
				lines[i] = l[:end] + " (the rest is not shown: the console quotes no file but " + conf + "; look at this line on the box)"
				break
			}
			from = end
		}
	}
	return lines
}

// isFile reports whether p is a file: a FILE:LINE: naming none (a time of
// day, an address and port) quotes nothing.
func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// filePos finds the first FILE:LINE: in l at or after from: the file and
// the index just past the position; end is -1 when there is none.
func filePos(l string, from int) (file string, end int) {
	for i := from; i < len(l); i++ {
		if l[i] != ':' {
			continue
		}
		j := i + 1
		for j < len(l) && l[j] >= '0' && l[j] <= '9' {
			j++
		}
		if j == i+1 || j == len(l) || l[j] != ':' {
			continue
		}
		k := i
		for k > 0 && !strings.ContainsRune(" \t\"'(", rune(l[k-1])) {
			k--
		}
		if k < i {
			return l[k:i], j + 1
		}
	}
	return "", -1
}

// brokerError picks the broker's own error line out of its log: the last
// line saying "error", without the supervisor's timestamp.
func brokerError(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if strings.Contains(l, "[gatewayd]") {
			continue // the supervisor's own notes
		}
		if strings.Contains(strings.ToLower(l), "error") {
			if _, rest, ok := strings.Cut(l, " "); ok && looksLikeTime(l) {
				return rest
			}
			return l
		}
	}
	return ""
}

func looksLikeTime(l string) bool {
	return len(l) > 10 && l[4] == '-' && l[7] == '-'
}
