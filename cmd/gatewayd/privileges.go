package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/account"
)

// dropPrivileges is Mosquitto's `user` option: a broker started as root
// gives root up once its listeners are open (ports below 1024 and key
// files are read as root), running on as that account. It changes no
// file's owner: the account must already be able to write the persistence
// folder and read the password and ACL files, which a reload reads again;
// when it cannot, the broker stops with each file and what to do, rather
// than fail later as that account.
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
	var errs []error
	if cfg.Persistence && !a.CanWrite(storeDir) {
		errs = append(errs, fmt.Errorf("the persistence folder %s is not writable by %s", storeDir, cfg.User))
	}
	for _, f := range cfg.SecurityFiles() {
		if !a.CanRead(f) {
			errs = append(errs, fmt.Errorf("%s is not readable by %s", f, cfg.User))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("user %s: cannot drop privileges: %w (give them to the account, e.g. chown, or change `user`)", cfg.User, errors.Join(errs...))
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
