package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
)

var sizeUnits = map[string]uint64{
	"": 1, "B": 1,
	"K": 1 << 10, "KIB": 1 << 10, "KB": 1000,
	"M": 1 << 20, "MIB": 1 << 20, "MB": 1000 * 1000,
	"G": 1 << 30, "GIB": 1 << 30, "GB": 1000 * 1000 * 1000,
}

// ParseSize reads a byte size such as 256MiB, 1.5GiB, 500MB, 200M or 4096.
// K, M and G alone are binary units, as PM2's max_memory_restart reads them.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || !ok {
		return 0, fmt.Errorf("%q is not a size: write it like 256MiB, 1GiB, 500MB or 200M", s)
	}
	b := v * float64(mult)
	if b < 1 || b > math.MaxInt64 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return uint64(b), nil
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"TERM": syscall.SIGTERM, "ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM,
	"PWR": syscall.SIGPWR, "WINCH": syscall.SIGWINCH,
}

// ParseSignal reads a signal name: SIGTERM, TERM or sigterm.
func ParseSignal(s string) (syscall.Signal, error) {
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("%q is not a signal name this box knows (SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL, ...)", s)
}

// SignalName is the SIG-prefixed name of sig, as gateway.yaml writes it.
func SignalName(sig syscall.Signal) string {
	for name, v := range signals {
		if v == sig {
			return "SIG" + name
		}
	}
	return fmt.Sprintf("signal %d", int(sig))
}
