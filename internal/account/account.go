// Package account finds the system accounts that apps run as (gateway.yaml's
// user: and group:, Mosquitto's `user`) and hands files to them: a broker
// that runs as `mosquitto` must own its persistence folder and be able to
// read the password and ACL files the console writes.
package account

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// Account is a user with the group it runs under.
type Account struct {
	Name   string // as asked (a name or a number)
	UID    int
	GID    int
	Groups []int // supplementary groups, the primary one left out
	Home   string
}

// Lookup finds user, and group when not empty (else the user's own). A
// number need not be listed in /etc/passwd, as chown and PM2 allow.
func Lookup(userName, group string) (Account, error) {
	a := Account{Name: userName}
	if n, err := strconv.ParseUint(userName, 10, 31); err == nil {
		a.UID, a.GID = int(n), int(n)
		if u, err := user.LookupId(userName); err == nil {
			a.fill(u)
		}
	} else {
		u, err := user.Lookup(userName)
		if err != nil {
			return Account{}, fmt.Errorf("no user %q on this system: add it (adduser --system %s) or change user: in gateway.yaml", userName, userName)
		}
		a.UID, _ = strconv.Atoi(u.Uid)
		a.GID, _ = strconv.Atoi(u.Gid)
		a.fill(u)
	}
	if group != "" {
		a.Name += ":" + group
		if n, err := strconv.ParseUint(group, 10, 31); err == nil {
			a.GID = int(n)
		} else {
			g, err := user.LookupGroup(group)
			if err != nil {
				return Account{}, fmt.Errorf("no group %q on this system: add it (addgroup --system %s) or change group: in gateway.yaml", group, group)
			}
			a.GID, _ = strconv.Atoi(g.Gid)
		}
	}
	return a, nil
}

func (a *Account) fill(u *user.User) {
	a.Home = u.HomeDir
	ids, err := u.GroupIds()
	if err != nil {
		return
	}
	primary, _ := strconv.Atoi(u.Gid)
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil && n != primary {
			a.Groups = append(a.Groups, n)
		}
	}
}

// LetRead lets the account read path, and only read it: the file stays
// root's, its group becomes the account's and its mode 0640 (a broker that
// is broken into cannot rewrite its own logins). A missing file is not an
// error: there is nothing to hand over yet. A symlink is refused: it could
// point anywhere.
func (a Account) LetRead(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: not handed over", path)
	}
	if err := os.Lchown(path, 0, a.GID); err != nil {
		return err
	}
	mode := os.FileMode(0o640)
	if st.IsDir() {
		mode = 0o750
	}
	return os.Chmod(path, mode)
}

// OwnTree makes dir and everything under it the account's, creating dir
// (mode 0750) when it is missing. Symlinks are changed, never followed.
func (a Account) OwnTree(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, a.UID, a.GID)
	})
}

// CanRead reports whether the account may read path, by its mode bits (as
// the kernel will judge once a process runs as the account).
func (a Account) CanRead(path string) bool { return a.may(path, 4) }

// CanWrite reports whether the account may create files in dir.
func (a Account) CanWrite(dir string) bool { return a.may(dir, 2|1) }

func (a Account) may(path string, want os.FileMode) bool {
	// Every folder on the way must let the account through.
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if !a.allows(d, 1) {
			return false
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return a.allows(path, want)
}

func (a Account) allows(path string, want os.FileMode) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := st.Mode().Perm()
	switch {
	case int(sys.Uid) == a.UID:
		return perm>>6&want == want
	case int(sys.Gid) == a.GID || slices.Contains(a.Groups, int(sys.Gid)):
		return perm>>3&want == want
	}
	return perm&want == want
}
