package main

import (
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/account"
)

// dropPrivileges is Mosquitto's `user` option: a broker started as root
// gives root up once its listeners are open (ports below 1024 and key
// files read as root), running on as that account. Before it does, it
// hands the account what it writes or reads later: the persistence folder
// and the password and ACL files, which a reload reads again (Mosquitto 2
// expects those owned by its user too).
//
// Unlike Mosquitto, an unset `user` keeps the account the broker was
// started as: the box's supervisor already starts it as gateway.yaml's
// user (mosquitto on the image), and a broker a person starts as root in a
// folder of their own would otherwise lose access to it. A `user` that
// does not exist is an error, as in Mosquitto: the broker must not run on
// as root when the conf says otherwise.
func dropPrivileges(cfg *mosquittoconf.Config, storeDir string, log *slog.Logger) error {
	if cfg.User == "" || os.Geteuid() != 0 || cfg.User == "root" {
		return nil
	}
	a, err := account.Lookup(cfg.User, "")
	if err != nil {
		return fmt.Errorf("user %s: cannot drop privileges: %w", cfg.User, err)
	}
	if cfg.Persistence {
		if err := a.OwnTree(storeDir); err != nil {
			return fmt.Errorf("user %s: handing over the persistence folder: %w", cfg.User, err)
		}
	}
	for _, f := range cfg.SecurityFiles() {
		if err := a.Own(f); err != nil {
			return fmt.Errorf("user %s: handing over %s: %w", cfg.User, f, err)
		}
	}
	groups := append([]int{a.GID}, a.Groups...)
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("user %s: setgroups: %w", cfg.User, err)
	}
	if err := syscall.Setgid(a.GID); err != nil {
		return fmt.Errorf("user %s: setgid: %w", cfg.User, err)
	}
	if err := syscall.Setuid(a.UID); err != nil {
		return fmt.Errorf("user %s: setuid: %w", cfg.User, err)
	}
	log.Info("dropped privileges", "user", cfg.User, "uid", a.UID, "gid", a.GID)
	return nil
}
