// Command gwctl shows and steers the box's apps over SSH, the way pm2 does:
// a thin client of gatewayd's control API on its root-only socket. It never
// touches the apps or their files itself, so what it shows is what the
// supervisor knows.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/homebox/gateway/internal/version"
)

const usage = `usage: gwctl [--root DIR] <command>

commands:
  status [NAME] [--json]        the apps as a table, or every detail of one app
  start|stop|restart NAME|all   steer one app or every app
  logs NAME [-n N] [-f]         the last N lines (default 100) of an app's log; -f follows it
  devices [--json]              the devices discovery found
  users [--json]                the broker's users and whether logins are required
  users add|passwd NAME         add a user or change its password (read from stdin)
  users rm NAME                 remove a user
  users device NAME [--json]    make a login for one device and print its settings
  users require|open            require logins of every client, or let anonymous clients in
  console-password              set the LAN console's admin password (read from stdin)
  system [--json]               version, root slots (A/B), the last update
  system rollback --yes         boot the other slot again (reboots)
  update FILE                   install a signed update bundle into the other slot and reboot into it
  factory-reset --yes           wipe everything the owner changed (reboots; the box starts as new)
  --version                     print the version

--root defaults to $GATEWAY_ROOT, else /. gwctl talks to <root>/run/gateway/gatewayd.sock.
exit codes: 0 done, 1 error, 2 usage.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// opts is the parsed command line. Flags may come before or after the
// command and its arguments: people type `gwctl status mqtt --json`.
type opts struct {
	root   string
	json   bool
	yes    bool
	n      int
	follow bool
	args   []string
}

type usageError string

func (e usageError) Error() string { return string(e) }

func parseArgs(args []string) (opts, error) {
	o := opts{root: os.Getenv("GATEWAY_ROOT"), n: 100}
	if o.root == "" {
		o.root = "/"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		next := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", usageError(name + " needs a value")
			}
			i++
			return args[i], nil
		}
		switch {
		case name == "--root" || name == "-root":
			v, err := next()
			if err != nil {
				return o, err
			}
			o.root = v
		case a == "--json" || a == "-json":
			o.json = true
		case a == "--yes" || a == "-y":
			o.yes = true
		case a == "-f" || a == "--follow":
			o.follow = true
		case name == "-n" || name == "--lines":
			v, err := next()
			if err != nil {
				return o, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return o, usageError(fmt.Sprintf("%s %q: give a number of lines", name, v))
			}
			o.n = n
		case a == "--version" || a == "-version" || a == "-h" || a == "--help" || a == "help":
			o.args = append(o.args, a)
		case a == "--":
			o.args = append(o.args, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			return o, usageError(fmt.Sprintf("unknown flag %s", a))
		default:
			o.args = append(o.args, a)
		}
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "gwctl: %v\n\n%s", err, usage)
		return 2
	}
	if len(o.args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := o.args[0], o.args[1:]
	want := func(min, max int, form string) bool {
		if len(rest) < min || len(rest) > max {
			fmt.Fprintf(stderr, "gwctl: usage: gwctl %s\n", form)
			return false
		}
		return true
	}
	switch cmd {
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "gwctl %s (%s)\n", version.Version, version.Commit)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	c := newClient(o.root)
	var runErr error
	switch cmd {
	case "status":
		if !want(0, 1, "status [NAME] [--json]") {
			return 2
		}
		if len(rest) == 0 {
			runErr = c.statusAll(stdout, o.json)
		} else {
			runErr = c.statusOne(stdout, rest[0], o.json)
		}
	case "start", "stop", "restart":
		if !want(1, 1, cmd+" NAME|all") {
			return 2
		}
		runErr = c.action(stdout, cmd, rest[0], o.json)
	case "logs":
		if !want(1, 1, "logs NAME [-n N] [-f]") {
			return 2
		}
		runErr = c.logs(stdout, rest[0], o.n, o.follow)
	case "devices":
		if !want(0, 0, "devices [--json]") {
			return 2
		}
		runErr = c.devices(stdout, o.json)
	case "users":
		runErr = c.users(stdout, rest, o.json)
		var ue usageError
		if errors.As(runErr, &ue) {
			fmt.Fprintf(stderr, "gwctl: %v\n", ue)
			return 2
		}
	case "console-password":
		if !want(0, 0, "console-password < password") {
			return 2
		}
		runErr = c.consolePassword(os.Stdin, stdout)
	case "system":
		if !want(0, 1, "system [rollback --yes] [--json]") {
			return 2
		}
		switch {
		case len(rest) == 0:
			runErr = c.system(stdout, o.json)
		case rest[0] == "rollback" && o.yes:
			runErr = c.systemAction(stdout, "/api/system/rollback", "rolling back: the box reboots into the other slot")
		case rest[0] == "rollback":
			fmt.Fprintln(stderr, "gwctl: system rollback reboots the box into the other slot: add --yes to do it")
			return 2
		default:
			fmt.Fprintf(stderr, "gwctl: unknown system command %q\n", rest[0])
			return 2
		}
	case "update":
		if !want(1, 1, "update FILE") {
			return 2
		}
		runErr = c.update(stdout, rest[0])
	case "factory-reset":
		if !want(0, 0, "factory-reset --yes") {
			return 2
		}
		if !o.yes {
			fmt.Fprintln(stderr, "gwctl: factory-reset wipes every conf, password, key, stored message and log on the box, then reboots: add --yes to do it")
			return 2
		}
		runErr = c.systemAction(stdout, "/api/system/factory-reset", "factory reset: the box reboots, wipes its data partition and starts as new")
	default:
		fmt.Fprintf(stderr, "gwctl: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "gwctl: %v\n", runErr)
		return 1
	}
	return 0
}
