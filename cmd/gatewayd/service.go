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

	"github.com/homebox/gateway/rootfs"
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

	unit, err := systemdUnit(exe, absRoot)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd service: %v\n", err)
		return 1
	}
	script, err := sysvScript(exe, absRoot)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd service: %v\n", err)
		return 1
	}
	s, err := service.New(program{}, &service.Config{
		Name:        serviceName,
		DisplayName: "Home gateway",
		Description: "Home gateway: MQTT broker, app supervisor, discovery and web console",
		Executable:  exe,
		Arguments:   []string{"run", "--root", absRoot},
		Option: service.KeyValue{
			"SystemdScript": unit,
			"SysvScript":    script,
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

// The init files are the ones the image ships (rootfs), for /usr/bin/gatewayd
// and root /; install writes them with this binary's path and root in their
// one line each. They hold no template actions, so what kardianos writes is
// exactly this text.
const (
	systemdUnitFile = "etc/systemd/system/gatewayd.service"
	sysvScriptFile  = "etc/init.d/gatewayd"
)

// systemdUnit is the unit file: Restart=always a second after an exit,
// SIGTERM, then SIGKILL of the control group after 90 s.
func systemdUnit(exe, root string) (string, error) {
	return initFile(systemdUnitFile, map[string]string{
		"ExecStart=": "ExecStart=" + sdQuote(exe) + " run --root " + sdQuote(root),
	})
}

// sysvScript is the /etc/init.d script. A keeper loop restarts gatewayd a
// second after it dies; stop ends the keeper, sends SIGTERM and, after
// GATEWAYD_STOP_TIMEOUT seconds (default 90), SIGKILL. The apps die with
// gatewayd (parent-death signal), so killing it leaves none behind.
func sysvScript(exe, root string) (string, error) {
	return initFile(sysvScriptFile, map[string]string{
		"exe=":  "exe=" + shQuote(exe),
		"root=": "root=" + shQuote(root),
	})
}

// initFile is a shipped init file with the line starting with each key
// replaced. Each key must start exactly one line, so that an edit of the
// shipped file cannot leave the shipped path in an installed one.
func initFile(name string, lines map[string]string) (string, error) {
	data, err := rootfs.FS.ReadFile(name)
	if err != nil {
		return "", err
	}
	text := strings.SplitAfter(string(data), "\n")
	for prefix, line := range lines {
		found := 0
		for i, l := range text {
			if strings.HasPrefix(l, prefix) {
				text[i] = line + "\n"
				found++
			}
		}
		if found != 1 {
			return "", fmt.Errorf("rootfs/%s: %d lines start with %q, want 1", name, found, prefix)
		}
	}
	return strings.Join(text, ""), nil
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
