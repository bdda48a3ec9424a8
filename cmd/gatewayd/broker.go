package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/homebox/gateway/gateway"
	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/gateway/languard"
	"github.com/homebox/gateway/gateway/listeners"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/version"
)

// runBroker is `gatewayd broker`: the MQTT broker process. It runs until
// SIGTERM or SIGINT (graceful stop, exit 0); SIGHUP re-reads the password
// and ACL files.
func runBroker(args []string) int {
	return brokerMain(args, os.Stdout, os.Stderr)
}

func brokerMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	confPath := fs.String("config", "/etc/mosquitto/mosquitto.conf", "the mosquitto.conf to serve")
	fs.StringVar(confPath, "c", "/etc/mosquitto/mosquitto.conf", "short for --config")
	defAllow := "lan"
	if env := os.Getenv("GATEWAY_ALLOW_NETWORKS"); env != "" {
		defAllow = env // lan.allow of gateway.yaml, passed on by `gatewayd run`
	}
	allow := fs.String("allow-networks", defAllow, "networks whose clients are accepted: lan, any, loopback or CIDRs, comma-separated (default: $GATEWAY_ALLOW_NETWORKS or lan)")
	connectTimeout := fs.Duration("connect-timeout", envDuration(stderr, "GATEWAY_CONNECT_TIMEOUT", listeners.DefaultConnectTimeout),
		"how long a client may take from accept (TLS, websocket upgrade included) to a complete CONNECT (default: $GATEWAY_CONNECT_TIMEOUT or 10s)")
	maxHalfOpen := fs.Int("max-half-open", envInt(stderr, "GATEWAY_MAX_HALF_OPEN", listeners.DefaultMaxHalfOpen),
		"connections accepted and not yet CONNECTed, box-wide; past it the oldest is closed (default: $GATEWAY_MAX_HALF_OPEN or 512)")
	testOnly := fs.Bool("test-config", false, "check the config, print errors and warnings, start nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	cfg, diags := mosquittoconf.Load(*confPath)
	for _, w := range diags.Warnings {
		fmt.Fprintln(stderr, "warning:", w.Error())
	}
	for _, e := range diags.Errors {
		fmt.Fprintln(stderr, "error:", e.Error())
	}
	guard, err := languard.ParseNetworkList(*allow)
	if err != nil {
		fmt.Fprintln(stderr, "error: --allow-networks:", err)
		return 1
	}
	if *connectTimeout <= 0 || *maxHalfOpen <= 0 {
		fmt.Fprintln(stderr, "error: --connect-timeout and --max-half-open must be above 0")
		return 2
	}
	if !diags.OK() {
		return 1
	}
	if *testOnly {
		fmt.Fprintf(stdout, "%s: configuration OK (%d warnings)\n", *confPath, len(diags.Warnings))
		return 0
	}

	log, closeLog, err := gateway.NewLogger(cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	defer closeLog.Close()

	// The box's own logins, from the gatewayd that started this broker.
	box, err := auth.ParseBoxAccounts(os.Getenv(auth.BoxAccountsEnv))
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	b, err := gateway.New(gateway.Options{Config: cfg, Guard: guard, Version: version.Version, Logger: log,
		ConnectTimeout: *connectTimeout, MaxHalfOpen: *maxHalfOpen, BoxAccounts: box, IsBoxUser: auth.IsServiceUser})
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	// Signals are caught before start so a stop during start is not lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := b.Start(); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	if err := dropPrivileges(cfg, filepath.Dir(b.StorePath()), log); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		_ = b.Close()
		return 1
	}
	log.Info("broker running", "config", *confPath, "version", version.Version)
	defer startProfile(stderr)()
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if err := b.Reload(); err != nil {
				log.Error("reload refused, previous password and ACL files stay in force", "error", err)
			} else {
				log.Info("password and ACL files reloaded")
			}
			continue
		}
		log.Info("stopping", "signal", sig.String())
		if err := b.Close(); err != nil {
			log.Error("stop", "error", err)
			return 1
		}
		return 0
	}
	return 0
}

// envDuration reads a duration default from the environment; a bad value
// is reported and the built-in default kept.
func envDuration(stderr io.Writer, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		fmt.Fprintf(stderr, "warning: $%s=%q is not a duration above 0 (e.g. 10s); using %s\n", name, v, def)
		return def
	}
	return d
}

// envInt reads an integer default from the environment, as envDuration.
func envInt(stderr io.Writer, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		fmt.Fprintf(stderr, "warning: $%s=%q is not a whole number above 0; using %d\n", name, v, def)
		return def
	}
	return n
}
