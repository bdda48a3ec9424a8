package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/homebox/gateway/bench/tail"
)

// The protocol between the runner and a worker, one line each way:
//
//	runner → worker: the Spec as JSON, then "go", then (optionally) "stop"
//	worker → runner: {"ready":true} or {"error":...}, later {"result":...}
//
// A worker whose stdin closes behaves as if told to stop, so a runner
// that dies takes its workers with it.
type message struct {
	Ready  bool    `json:"ready,omitempty"`
	Error  string  `json:"error,omitempty"`
	Result *Result `json:"result,omitempty"`
}

// WorkerFlag is the argument that turns the gwbench binary (or a test
// binary, from its TestMain) into a worker.
const WorkerFlag = "-worker"

// IsWorker reports whether this process was started as a worker.
func IsWorker() bool { return len(os.Args) > 1 && os.Args[1] == WorkerFlag }

// WorkerMain runs the worker protocol on stdin/stdout and returns the exit
// code.
func WorkerMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := Serve(context.Background(), os.Stdin, os.Stdout); err != nil {
		log.Error("worker failed", "error", err)
		return 1
	}
	return 0
}

// Serve is a worker's side of the protocol.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(out)
	fail := func(err error) error {
		_ = enc.Encode(message{Error: err.Error()})
		return err
	}
	if !lines.Scan() {
		return fail(errors.New("no spec on stdin"))
	}
	var s Spec
	if err := json.Unmarshal(lines.Bytes(), &s); err != nil {
		return fail(fmt.Errorf("spec: %w", err))
	}
	if err := s.Validate(); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	r := newRole(&s)
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return fail(fmt.Errorf("%s setup: %w", s.Role, err))
	}
	if err := enc.Encode(message{Ready: true}); err != nil {
		return err
	}
	if !lines.Scan() || lines.Text() != "go" {
		return fail(errors.New(`expected "go" on stdin`))
	}
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		for lines.Scan() {
			if lines.Text() == "stop" {
				return
			}
		}
	}()

	cpu0, wall0 := cpuSeconds(), time.Now()
	res, err := r.run(ctx, stop)
	res.CPU, res.Wall = cpuSeconds()-cpu0, time.Since(wall0).Seconds()
	if err != nil {
		return fail(fmt.Errorf("%s: %w", s.Role, err))
	}
	return enc.Encode(message{Result: &res})
}

// cpuSeconds is this process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// Worker is the runner's handle on a worker process.
type Worker struct {
	spec   Spec
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	msgs   chan message
	stderr *tail.Buffer
	exited chan struct{}
}

// StartWorker starts command (the binary and its arguments, WorkerFlag
// among them), hands it spec and waits until it is ready.
func StartWorker(ctx context.Context, command []string, spec Spec) (*Worker, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(command) == 0 {
		return nil, errors.New("worker command is empty")
	}
	w := &Worker{spec: spec, msgs: make(chan message, 2), stderr: &tail.Buffer{Max: 8 << 10}, exited: make(chan struct{})}
	w.cmd = exec.Command(command[0], command[1:]...)
	w.cmd.Stderr = w.stderr
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the runner
	// A race-enabled worker (under go test -race) would otherwise sleep a
	// second at exit, for every worker of every measurement.
	w.cmd.Env = append(os.Environ(), strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var err error
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", spec.Role, err)
	}
	go func() {
		dec := json.NewDecoder(stdout)
		for {
			var m message
			if dec.Decode(&m) != nil {
				break
			}
			w.msgs <- m
		}
		_ = w.cmd.Wait()
		close(w.exited)
		close(w.msgs)
	}()
	b, _ := json.Marshal(spec)
	if _, err := w.stdin.Write(append(b, '\n')); err != nil {
		w.Kill()
		return nil, fmt.Errorf("worker %s: send spec: %w", spec.Role, err)
	}
	m, err := w.next(ctx)
	if err != nil {
		w.Kill()
		return nil, err
	}
	if !m.Ready {
		w.Kill()
		return nil, fmt.Errorf("worker %s: expected ready, got %+v", spec.Role, m)
	}
	return w, nil
}

// next waits for the worker's next message; an error message, an early
// exit or ctx ending is an error carrying the worker's last stderr.
func (w *Worker) next(ctx context.Context) (message, error) {
	select {
	case m, ok := <-w.msgs:
		if !ok {
			return message{}, fmt.Errorf("worker %s exited (%v) without answering; stderr: %s", w.spec.Role, w.cmd.ProcessState, w.stderr)
		}
		if m.Error != "" {
			return message{}, fmt.Errorf("worker %s: %s", w.spec.Role, m.Error)
		}
		return m, nil
	case <-ctx.Done():
		return message{}, fmt.Errorf("worker %s: %w; stderr: %s", w.spec.Role, ctx.Err(), w.stderr)
	}
}

// Go starts the measured run.
func (w *Worker) Go() error {
	_, err := io.WriteString(w.stdin, "go\n")
	return err
}

// Stop tells the worker to finish (a subscriber then waits for quiet).
func (w *Worker) Stop() {
	_, _ = io.WriteString(w.stdin, "stop\n")
}

// Result waits for the worker's result and for it to exit.
func (w *Worker) Result(ctx context.Context) (Result, error) {
	m, err := w.next(ctx)
	if err != nil {
		w.Kill()
		return Result{}, err
	}
	_ = w.stdin.Close()
	select {
	case <-w.exited:
	case <-ctx.Done():
		w.Kill()
	}
	if m.Result == nil {
		return Result{}, fmt.Errorf("worker %s: expected a result, got %+v", w.spec.Role, m)
	}
	return *m.Result, nil
}

// Kill ends the worker at once and waits for it.
func (w *Worker) Kill() {
	_ = w.stdin.Close()
	if w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
	}
	<-w.exited
}
