package main

import (
	"errors"
	"fmt"
	"io/fs"
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
// the broker app) what the broker uses after its start: its persistence
// folder to own, and the password and ACL files and the certificates to
// read (root's files, the account's group, mode 0640: a broker broken into
// cannot rewrite its own logins). gatewayd writes these as root (the
// console's saves, an older firmware's broker). It runs before the apps
// start and before every restart of the broker by a config change, and
// touches only files in the box's own folders: an owner's line naming a
// file elsewhere is left to them (logged). Nothing is done when gatewayd is
// not root or the broker runs as gatewayd does.
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
			return filepath.Clean(p)
		}
		return filepath.Join(cwd, p)
	}
	data, own := at.Join(paths.Data), at.Join(paths.GatewayData)
	boxFile := func(p string) bool {
		return (inside(data, p) || inside(at.Join(paths.MosquittoDir), p)) && p != own && !inside(own, p)
	}
	if conf.Persistence {
		// Only a folder of the broker's own is handed over, never one
		// that holds anything else of the box.
		dir := resolve(conf.PersistenceLocation)
		if conf.PersistenceLocation == "" || !inside(data, dir) || dir == own || inside(dir, own) || inside(own, dir) {
			b.log.Warn("the broker's store is not in a folder of its own, so it is not handed to its account: set persistence_location (the shipped conf says mosquitto/)",
				"folder", dir, "user", a.Name)
		} else if err := a.OwnTree(dir); err != nil {
			return fmt.Errorf("handing the persistence folder to %s: %w", a.Name, err)
		}
	}
	for _, f := range conf.SecurityFiles() {
		p := resolve(f)
		if !boxFile(p) {
			b.log.Warn("a file outside the box's folders is left as it is: the broker's account must be able to read it", "file", p, "user", a.Name)
			continue
		}
		if err := a.LetRead(p); err != nil {
			return fmt.Errorf("letting %s read %s: %w", a.Name, f, err)
		}
	}
	certs := at.Join(paths.Certs)
	err = filepath.WalkDir(certs, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return a.LetRead(p)
	})
	if err != nil {
		return fmt.Errorf("letting %s read the certificates: %w", a.Name, err)
	}
	return nil
}

// handOverWorkFolders gives each app that runs as another account its own
// working folder under the data partition (Home Assistant's
// /data/homeassistant): made when missing, handed over whole when it is
// not the account's yet (an older firmware ran the app as root). The data
// partition itself, which apps share, and gatewayd's own folder in it are
// never handed over.
func (b *box) handOverWorkFolders(cfg *config.Config) error {
	at := paths.Root(b.root)
	data, own := at.Join(paths.Data), at.Join(paths.GatewayData)
	for _, sp := range cfg.Specs(b.root, b.opts.Self) {
		if sp.User == "" || sp.Cwd == "" || !inside(data, sp.Cwd) || sp.Cwd == own || inside(own, sp.Cwd) || inside(sp.Cwd, own) {
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
