package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"
)

const serviceName = "gatewayd"

// serviceMain is `gatewayd service install|uninstall|start|stop|status`.
// The service runs `gatewayd run --root ROOT`, through our own systemd unit
// and sysv script: kardianos' stock unit waits 120 s before a restart and its
// sysv stop never escalates to SIGKILL, and a box must be back in a second.
func serviceMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: gatewayd service install|uninstall|start|stop|status [--root DIR]\n")
		return 2
	}
	action := args[0]
	fs := flag.NewFlagSet("gatewayd service "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", defaultRoot(), "the box's root folder the service runs")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	switch action {
	case "install", "uninstall", "start", "stop", "status":
	default:
		fmt.Fprintf(stderr, "gatewayd service: unknown action %q (install, uninstall, start, stop, status)\n", action)
		return 2
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd service: find this binary's path: %v\n", err)
		return 1
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd service: %v\n", err)
		return 1
	}

	platform := service.Platform()
	if ok, why := serviceSupport(hostProbe(platform)); !ok {
		fmt.Fprintf(stderr, "gatewayd service: this system has no service manager gatewayd can use: %s.\n", why)
		fmt.Fprintf(stderr, "Start the box at boot by adding this line to the platform's boot script\n(e.g. /etc/rc.local, a Magisk service.d script or a Termux:Boot script):\n\n")
		fmt.Fprintln(stdout, bootLine(exe, absRoot))
		return 1
	}

	s, err := service.New(program{}, &service.Config{
		Name:        serviceName,
		DisplayName: "Home gateway",
		Description: "Home gateway: MQTT broker, app supervisor, discovery and web console",
		Executable:  exe,
		Arguments:   []string{"run", "--root", absRoot},
		Option: service.KeyValue{
			"SystemdScript": systemdUnit(exe, absRoot),
			"SysvScript":    sysvScript(exe, absRoot),
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd service: %v\n", err)
		return 1
	}
	switch action {
	case "install":
		err = s.Install()
		if err == nil {
			fmt.Fprintf(stdout, "installed %s (%s): gatewayd run --root %s; start it with `gatewayd service start`\n", serviceName, platform, absRoot)
		}
	case "uninstall":
		err = s.Uninstall()
		if err == nil {
			fmt.Fprintf(stdout, "uninstalled %s (%s)\n", serviceName, platform)
		}
	case "start":
		err = s.Start()
	case "stop":
		err = s.Stop()
	case "status":
		var st service.Status
		st, err = s.Status()
		switch {
		case errors.Is(err, service.ErrNotInstalled):
			fmt.Fprintf(stdout, "%s: not installed (%s)\n", serviceName, platform)
			return 1
		case err != nil:
		case st == service.StatusRunning:
			fmt.Fprintf(stdout, "%s: running (%s)\n", serviceName, platform)
		case st == service.StatusStopped:
			fmt.Fprintf(stdout, "%s: stopped (%s)\n", serviceName, platform)
			return 1
		default:
			fmt.Fprintf(stdout, "%s: unknown (%s)\n", serviceName, platform)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd service %s (%s): %v\n", action, platform, err)
		return 1
	}
	return 0
}

// program satisfies service.Interface, which service.New requires. Its
// methods never run: the init system starts `gatewayd run` directly, and
// run handles SIGTERM itself, so kardianos' Run is not used.
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

// probe is what serviceSupport looks at, apart so tests can feed it.
type probe struct {
	platform string
	exists   func(path string) bool
	getenv   func(string) string
}

func hostProbe(platform string) probe {
	return probe{
		platform: platform,
		exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		getenv:   os.Getenv,
	}
}

// serviceSupport says whether kardianos' pick can really start gatewayd at
// boot. Its last resort is "unix-systemv", chosen on any Linux: a script in
// /etc/init.d that, on an Android-class userland, nothing ever runs.
func serviceSupport(p probe) (bool, string) {
	if p.getenv("ANDROID_ROOT") != "" || p.exists("/system/bin/app_process") {
		return false, "this is an Android-class userland, whose init never runs /etc/init.d scripts"
	}
	switch p.platform {
	case "":
		return false, "no service manager was detected"
	case "unix-systemv":
		if !p.exists("/etc/init.d") {
			return false, "there is no systemd, OpenRC or /etc/init.d"
		}
		for _, d := range []string{"/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d", "/etc/rc.d/rc3.d"} {
			if p.exists(d) {
				return true, ""
			}
		}
		return false, "there is no systemd or OpenRC, and no runlevel folders (/etc/rcN.d) that would run an /etc/init.d script at boot"
	}
	return true, ""
}

// bootLine is the one line for a boot script on a system without a usable
// service manager; the loop does what Restart=always would.
func bootLine(exe, root string) string {
	return fmt.Sprintf("(while :; do %s run --root %s; sleep 1; done) </dev/null >/dev/null 2>&1 &", shQuote(exe), shQuote(root))
}

// systemdUnit is the unit file. It is complete text with no template
// actions, so what kardianos writes is exactly what this returns.
func systemdUnit(exe, root string) string {
	return `[Unit]
Description=Home gateway: MQTT broker, app supervisor, discovery and web console
After=network.target
Wants=network.target
# An appliance never gives up restarting.
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=` + sdQuote(exe) + ` run --root ` + sdQuote(root) + `
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=1
# gatewayd stops its apps itself on SIGTERM; whatever is left of the
# control group after TimeoutStopSec is killed with it.
KillMode=control-group
KillSignal=SIGTERM
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
`
}

// sysvScript is the /etc/init.d script. A keeper loop restarts gatewayd a
// second after it dies; stop ends the keeper, sends SIGTERM and, after
// GATEWAYD_STOP_TIMEOUT seconds (default 90), SIGKILL. The apps die with
// gatewayd (parent-death signal), so killing it leaves none behind.
func sysvScript(exe, root string) string {
	return `#!/bin/sh
### BEGIN INIT INFO
# Provides:          gatewayd
# Required-Start:    $local_fs $network
# Required-Stop:     $local_fs $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: Home gateway
# Description:       MQTT broker, app supervisor, discovery and web console
### END INIT INFO

exe=` + shQuote(exe) + `
root=` + shQuote(root) + `
rundir="${root%/}/run/gateway"
pidfile="$rundir/gatewayd.pid"
keeperfile="$rundir/gatewayd.keeper.pid"
stop_timeout="${GATEWAYD_STOP_TIMEOUT:-90}"

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -f "$1" ] && cat "$1" 2>/dev/null; }

start() {
	if alive "$(pid_of "$keeperfile")"; then
		echo "gatewayd is already running"
		return 0
	fi
	mkdir -p "$rundir" || return 1
	(
		trap 'exit 0' TERM
		while :; do
			"$exe" run --root "$root" </dev/null >/dev/null 2>&1 &
			echo $! >"$pidfile"
			wait $!
			sleep 1
		done
	) </dev/null >/dev/null 2>&1 &
	echo $! >"$keeperfile"
	echo "gatewayd started"
}

stop() {
	keeper=$(pid_of "$keeperfile")
	if alive "$keeper"; then
		kill -TERM "$keeper"
	fi
	rm -f "$keeperfile"
	pid=$(pid_of "$pidfile")
	if ! alive "$pid"; then
		rm -f "$pidfile"
		echo "gatewayd stopped"
		return 0
	fi
	kill -TERM "$pid"
	waited=0
	while alive "$pid" && [ "$waited" -lt "$stop_timeout" ]; do
		sleep 1
		waited=$((waited + 1))
	done
	if alive "$pid"; then
		echo "gatewayd did not stop within ${stop_timeout}s: sending SIGKILL"
		kill -KILL "$pid"
		while alive "$pid"; do sleep 1; done
	fi
	rm -f "$pidfile"
	echo "gatewayd stopped"
}

status() {
	if alive "$(pid_of "$pidfile")"; then
		echo "Running"
		return 0
	fi
	echo "Stopped"
	return 3
}

case "$1" in
start) start ;;
stop) stop ;;
restart) stop; start ;;
reload) kill -HUP "$(pid_of "$pidfile")" ;;
status) status ;;
*)
	echo "usage: $0 {start|stop|restart|reload|status}"
	exit 2
	;;
esac
`
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sdQuote quotes s for a systemd command line, where % starts a specifier
// and $ a variable.
func sdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	return `"` + r.Replace(s) + `"`
}
