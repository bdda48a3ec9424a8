package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/homebox/gateway/internal/account"
	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/supervisor/config"
)

// handOverAppFiles gives each app's account its working folder (see
// handOverWorkFolders), and the broker's account (gateway.yaml's user: of
// the broker app) the files the broker writes or reads after its start:
// its persistence folder, the password and ACL files, the certificates
// folder. gatewayd writes them as root (the console's saves, an older
// firmware's broker), and a broker running as mosquitto could not read a
// new password file or write its store otherwise. It runs before the apps
// start and before every restart of the broker by a config change. Nothing
// is done when gatewayd is not root or the broker runs as gatewayd does.
func (b *box) handOverAppFiles(cfg *config.Config) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if err := b.handOverWorkFolders(cfg); err != nil {
		return err
	}
	app, ok := cfg.App(brokerApp)
	if !ok || app.User == "" {
		return nil
	}
	a, err := account.Lookup(app.User, app.Group)
	if err != nil {
		return err // the supervisor says the same when it starts the broker
	}
	at := paths.Root(b.root)
	cwd := b.brokerDir(cfg)
	conf := brokerConf(b.root, cwd)
	if conf == nil {
		return nil // the broker says what is wrong with it
	}
	resolve := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cwd, p)
	}
	if conf.Persistence {
		// A folder of its own is the broker's; a store kept in a shared
		// folder (no persistence_location) is handed over file by file.
		if conf.PersistenceLocation != "" {
			if err := a.OwnTree(resolve(conf.PersistenceLocation)); err != nil {
				return fmt.Errorf("handing the persistence folder to %s: %w", a.Name, err)
			}
		} else if err := a.Own(resolve(conf.StorePath())); err != nil {
			return fmt.Errorf("handing the store to %s: %w", a.Name, err)
		}
	}
	for _, f := range conf.SecurityFiles() {
		if err := a.Own(resolve(f)); err != nil {
			return fmt.Errorf("handing %s to %s: %w", f, a.Name, err)
		}
	}
	if err := a.OwnTree(at.Join(paths.Certs)); err != nil {
		return fmt.Errorf("handing the certificates to %s: %w", a.Name, err)
	}
	return nil
}

// handOverWorkFolders gives each app that runs as another account its own
// working folder under the data partition (Home Assistant's
// /data/homeassistant): made when missing, handed over whole when it is
// not the account's yet (an older firmware ran the app as root). A folder
// apps share, the data partition itself, is left as it is.
func (b *box) handOverWorkFolders(cfg *config.Config) error {
	data := paths.Root(b.root).Join("data")
	for _, sp := range cfg.Specs(b.root, b.opts.Self) {
		if sp.User == "" || sp.Cwd == "" || !inside(data, sp.Cwd) {
			continue
		}
		a, err := account.Lookup(sp.User, sp.Group)
		if err != nil {
			continue // the supervisor says so when it starts the app
		}
		if st, err := os.Stat(sp.Cwd); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == a.UID {
				continue
			}
		}
		if err := a.OwnTree(sp.Cwd); err != nil {
			return fmt.Errorf("handing %s to %s: %w", sp.Cwd, a.Name, err)
		}
	}
	return nil
}

// inside reports whether p is strictly below dir.
func inside(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

// brokerDir is the broker app's working folder, where the conf's relative
// paths start.
func (b *box) brokerDir(cfg *config.Config) string {
	for _, sp := range cfg.Specs(b.root, b.opts.Self) {
		if sp.Name == brokerApp && sp.Cwd != "" {
			return sp.Cwd
		}
	}
	return filepath.Dir(paths.Root(b.root).Join(paths.MosquittoConf))
}
