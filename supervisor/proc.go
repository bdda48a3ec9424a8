package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// exitInfo is how one run of an app ended.
type exitInfo struct {
	Code   *int   // nil when a signal ended it
	Signal string // "SIGKILL", ... when a signal ended it
	At     time.Time
	Uptime time.Duration
}

func (e exitInfo) String() string {
	if e.Code != nil {
		return "exited with code " + strconv.Itoa(*e.Code)
	}
	return "killed by " + e.Signal
}

// proc is one run of an app: the leader process of its own process group.
type proc struct {
	pid        int    // also the group id (Setpgid)
	runsAs     string // user[:group] it runs as; empty: gatewayd's own
	startTicks uint64
	started    time.Time

	mu     sync.Mutex
	exited bool // the leader has exited: its group id may no longer be ours

	ready     chan struct{} // closed once the ready check passes
	readyOnce sync.Once

	done chan struct{} // closed once the leader is reaped and its output drained
	exit exitInfo      // set before done is closed
}

// outputGrace bounds how long output is drained after the group died; a
// descendant that escaped the group could otherwise hold the pipe open.
const outputGrace = time.Second

// startProc starts sp as the leader of a new process group with its output
// going, line by line with timestamps, to logw. It returns once the program
// runs (exec succeeded) or could not be started.
func startProc(sp Spec, logw io.Writer, readyRE *regexp.Regexp, logger *slog.Logger) (*proc, error) {
	cred, home, notTaken, err := credential(sp)
	if err != nil {
		return nil, err
	}
	if notTaken != "" {
		logger.Warn("gatewayd is not root, so the app runs as gatewayd's own user, not as gateway.yaml asks", "user", notTaken)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(sp.Command, sp.Args...)
	cmd.Dir = sp.Cwd
	cmd.Env = mergeEnv(os.Environ(), sp.Env)
	// copyOutput stamps every line: an app that reads this can leave its
	// own timestamp out, so a log line carries one.
	cmd.Env = append(cmd.Env, TimestampedEnv+"=1")
	if cred != nil {
		// The account's own HOME and USER, as su would give: an app finds
		// its dot-files, not root's.
		cmd.Env = mergeEnv(cmd.Env, map[string]string{"HOME": home, "USER": sp.User, "LOGNAME": sp.User})
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Pdeathsig: if gatewayd dies, the app dies with it. Setpgid: one signal
	// to the group reaches every descendant.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}

	p := &proc{ready: make(chan struct{}), done: make(chan struct{})}
	if cred != nil {
		p.runsAs = sp.User
		if sp.Group != "" {
			p.runsAs += ":" + sp.Group
		}
	}
	started := make(chan error, 1)
	go p.run(cmd, r, w, started, logw, readyRE, logger)
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// run forks the child and waits for it on one locked OS thread. The kernel
// sends Pdeathsig when the forking *thread* ends (golang/go#27505), so that
// thread must not be handed back to the runtime, which may end idle threads,
// while the child lives.
func (p *proc) run(cmd *exec.Cmd, r, w *os.File, started chan<- error, logw io.Writer, readyRE *regexp.Regexp, logger *slog.Logger) {
	runtime.LockOSThread()
	err := cmd.Start()
	w.Close() // the child holds its own copy
	if err != nil {
		r.Close()
		runtime.UnlockOSThread()
		started <- err
		return
	}
	p.pid = cmd.Process.Pid
	p.started = time.Now()
	if st, err := readProcStat(p.pid); err == nil {
		p.startTicks = st.StartTicks
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		copyOutput(r, logw, readyRE, p.markReady, logger)
	}()
	started <- nil

	// Learn of the exit without reaping, so the group id is still ours while
	// the rest of the group is killed: nothing outlives its app.
	if err := waitExitedNoReap(p.pid); err != nil {
		logger.Warn("waitid failed; reaping directly", "pid", p.pid, "err", err)
	}
	p.mu.Lock()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.exited = true
	p.mu.Unlock()
	werr := cmd.Wait()
	runtime.UnlockOSThread()

	p.exit = exitInfo{At: time.Now(), Uptime: time.Since(p.started)}
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.exit.Signal = SignalName(ws.Signal())
		} else {
			code := ps.ExitCode()
			p.exit.Code = &code
		}
	} else if werr != nil {
		logger.Warn("wait failed", "pid", p.pid, "err", werr)
		code := -1
		p.exit.Code = &code
	}

	select {
	case <-outDone:
	case <-time.After(outputGrace):
		r.Close() // unblocks the reader
		<-outDone
	}
	r.Close()
	close(p.done)
}

// signalGroup sends sig to the app's process group, unless the leader has
// already exited (then the group was killed already and its id may be reused).
func (p *proc) signalGroup(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func (p *proc) markReady() { p.readyOnce.Do(func() { close(p.ready) }) }

// waitTCP marks the proc ready once addr accepts a connection.
func (p *proc) waitTCP(ctx context.Context, addr string) {
	const fast, slow, fastFor = 10 * time.Millisecond, 100 * time.Millisecond, 3 * time.Second
	begin := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := net.Dialer{Timeout: 250 * time.Millisecond}
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
			p.markReady()
			return
		}
		if time.Since(begin) < fastFor {
			t.Reset(fast)
		} else {
			t.Reset(slow)
		}
	}
}

// waitExitedNoReap blocks until the process pid has exited, leaving it a
// zombie so that its pid (and group id) cannot be reused yet.
func waitExitedNoReap(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

// TimestampedEnv is set to 1 in every app's environment: the supervisor
// prefixes each line the app prints with the time.
const TimestampedEnv = "GATEWAY_LOG_TIMESTAMPED"

// tsLayout is RFC 3339 with milliseconds.
const tsLayout = "2006-01-02T15:04:05.000Z07:00"

// copyOutput writes each line read from r to w, prefixed with a timestamp,
// batching lines already waiting in the pipe into one write. A line longer
// than the buffer is cut into several.
func copyOutput(r io.Reader, w io.Writer, readyRE *regexp.Regexp, onReady func(), logger *slog.Logger) {
	const bufSize, flushAt = 64 << 10, 32 << 10
	br := bufio.NewReaderSize(r, bufSize)
	batch := make([]byte, 0, flushAt+bufSize)
	warned := false
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := w.Write(batch); err != nil && !warned {
			warned = true
			logger.Warn("app output lost: cannot write log", "err", err)
		}
		batch = batch[:0]
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if readyRE != nil && readyRE.Match(trimEOL(line)) {
				onReady()
				readyRE = nil
			}
			batch = time.Now().AppendFormat(batch, tsLayout)
			batch = append(batch, ' ')
			batch = append(batch, line...)
			if line[len(line)-1] != '\n' {
				batch = append(batch, '\n')
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			flush()
			return
		}
		// Write out before a read that may block: when no whole line is
		// buffered yet, or the batch is big.
		if len(batch) >= flushAt || !lineBuffered(br) {
			flush()
		}
	}
}

func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// mergeEnv returns base with the keys of extra set (replaced or added).
func mergeEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, override := extra[k]; !override {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, k+"="+extra[k])
	}
	return out
}
