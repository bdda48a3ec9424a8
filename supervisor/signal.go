package supervisor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Signal names come from x/sys's table for the running architecture (the
// numbers differ on mips, for one), so the box keeps no table of its own.

// stopSignals are the signals an app may be asked to stop with (its
// stop_signal): the ones a program can catch to end cleanly, and SIGKILL.
// Others (SIGSTOP, SIGCHLD, SIGSEGV, ...) would leave it running until
// kill_timeout, or mislead it.
var stopSignals = []syscall.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGKILL, unix.SIGABRT, unix.SIGALRM, unix.SIGPWR, unix.SIGWINCH,
}

func isStopSignal(sig syscall.Signal) bool { return slices.Contains(stopSignals, sig) }

func stopSignalList() string {
	names := make([]string, len(stopSignals))
	for i, sig := range stopSignals {
		names[i] = SignalName(sig)
	}
	return strings.Join(names, ", ")
}

// SignalName gives a signal's conventional name, such as "SIGTERM".
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// signalNum reads a signal name: "SIGTERM", "TERM" or "sigterm".
func signalNum(s string) syscall.Signal {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	return unix.SignalNum(name)
}

// ParseSignal reads a signal name ("SIGTERM", "TERM", "sigterm") or number.
func ParseSignal(s string) (syscall.Signal, error) {
	if sig := signalNum(s); sig != 0 {
		return sig, nil
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 && n <= 64 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q (want a name such as SIGTERM, or a number 1-64)", s)
}

// ParseStopSignal reads a stop_signal as gateway.yaml writes it: a name
// (numbers differ between architectures, so the file does not take them)
// of a signal that can stop an app.
func ParseStopSignal(s string) (syscall.Signal, error) {
	sig := signalNum(s)
	if sig == 0 {
		return 0, fmt.Errorf("%q is not a signal name: use one of %s", s, stopSignalList())
	}
	if !isStopSignal(sig) {
		return 0, fmt.Errorf("%q cannot stop an app: use one of %s", s, stopSignalList())
	}
	return sig, nil
}
