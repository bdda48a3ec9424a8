// Command gatewayd is the box's one binary: `run` keeps the box alive (the
// supervisor, its apps and the control API), `broker` is the MQTT broker
// process the supervisor starts, `init` lays the shipped defaults down, and
// `service` installs `run` as a system service.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/homebox/gateway/internal/footprint"
	"github.com/homebox/gateway/internal/version"
)

const usage = `usage: gatewayd <command> [flags]

commands:
  run [--root DIR] [--dev]     run the box in the foreground (SIGTERM stops it, SIGHUP reloads gateway.yaml)
  init [--root DIR]            write the shipped defaults under DIR, keeping every file already there
  broker --config FILE         the MQTT broker process (started by run, from gateway.yaml)
  service install|uninstall|start|stop|status [--root DIR]
                               gatewayd run as a system service
  factory-reset --apply [--root DIR]
                               at boot, before anything uses DIR/data: wipe it if a factory reset was
                               asked for (gwctl factory-reset); the box then starts as new
  grow-data DIR                the disk image's data partition, mounted at DIR, takes the rest of the disk
  --version                    print the version

--root defaults to $GATEWAY_ROOT, else /.
`

func main() {
	serveMemStats()
	if len(os.Args) > 1 && (os.Args[1] == "run" || os.Args[1] == "broker") {
		// Both run for weeks on a box with little RAM: what start-up
		// touched is handed back once it is over, and garbage while idle
		// (see package footprint).
		footprint.Keep(os.Stderr)
	}
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs a subcommand and returns the exit code: 0 done, 1 failed,
// 2 usage.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runMain(args[1:], stdout, stderr)
	case "init":
		return initMain(args[1:], stdout, stderr)
	case "broker":
		return runBroker(args[1:])
	case "service":
		return serviceMain(args[1:], stdout, stderr)
	case "factory-reset":
		return factoryResetMain(args[1:], stdout, stderr)
	case "grow-data":
		return growDataMain(args[1:], stderr)
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "gatewayd %s (%s)\n", version.Version, version.Commit)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "gatewayd: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// defaultRoot is $GATEWAY_ROOT, else /.
func defaultRoot() string {
	if r := os.Getenv("GATEWAY_ROOT"); r != "" {
		return r
	}
	return "/"
}
