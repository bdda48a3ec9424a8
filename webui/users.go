package webui

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/homebox/gateway/webui/api"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/webui/confflow"
)

const maxACL = 256 << 10

// securityFiles are the password_file and acl_file the broker uses: the
// broker-wide ones, or under per_listener_settings the first listener's
// that has one.
func securityFiles(cfg *mosquittoconf.Config) (pw, acl string) {
	pw, acl = cfg.Security.PasswordFile, cfg.Security.ACLFile
	if cfg.PerListenerSettings {
		for _, l := range cfg.Listeners {
			if pw == "" {
				pw = l.Security.PasswordFile
			}
			if acl == "" {
				acl = l.Security.ACLFile
			}
		}
	}
	return pw, acl
}

func (h *handlers) users(c echo.Context) error {
	f, cfg, err := h.flowAndConf()
	if err != nil {
		return err
	}
	pw, acl := securityFiles(cfg)
	out := api.Users{PasswordFile: f.Resolve(pw), Users: []string{}, ACLFile: f.Resolve(acl)}
	// The conf on the box may name files anywhere (its owner's lines); the
	// console reads only those in the box's folders.
	if err := confinedFile(f, "password_file", pw); err != nil {
		return err
	}
	if err := confinedFile(f, "acl_file", acl); err != nil {
		return err
	}
	p, err := auth.LoadPasswordFile(out.PasswordFile)
	switch {
	case pw == "" || errors.Is(err, fs.ErrNotExist): // the first user makes it
	case err != nil:
		return newError(http.StatusConflict, err.Error())
	default:
		out.Users = p.Users()
	}
	if out.ACLFile != "" {
		fh, err := os.Open(out.ACLFile)
		if err != nil {
			return newError(http.StatusConflict, fmt.Sprintf("acl_file: %v", err))
		}
		defer fh.Close()
		b, err := io.ReadAll(io.LimitReader(fh, maxACL))
		if err != nil {
			return err
		}
		out.ACLText = string(b)
	}
	return c.JSON(http.StatusOK, out)
}

// confinedFile refuses, with a 409, a file of the conf that the console
// may not read or write because it is outside the box's folders.
func confinedFile(f *confflow.Flow, option, p string) error {
	if p == "" {
		return nil
	}
	if err := f.Confined(p); err != nil {
		return newError(http.StatusConflict, fmt.Sprintf("%s: %v (it can be changed over SSH)", option, err))
	}
	return nil
}

// checkUserName refuses names a Mosquitto password file cannot hold.
func checkUserName(u string) error {
	switch {
	case u == "":
		return errors.New("required")
	case strings.TrimSpace(u) != u:
		return errors.New("no blanks at either end")
	case strings.ContainsAny(u, ":\r\n\x00"):
		return errors.New("no ':' and no line breaks")
	case strings.HasPrefix(u, "#"):
		return errors.New("cannot start with '#'")
	case len(u) > 256:
		return errors.New("at most 256 bytes")
	}
	return nil
}

func (h *handlers) putUser(c echo.Context) error {
	var in api.UserInput
	if err := bind(c, &in); err != nil {
		return err
	}
	if err := checkNewUser(in.Username, in.Password); err != nil {
		return err
	}
	hash, err := auth.HashPBKDF2(in.Password)
	if err != nil {
		return err
	}
	return h.changeUsers(c, func(users map[string]string) error {
		users[in.Username] = hash
		return nil
	})
}

func (h *handlers) deleteUser(c echo.Context) error {
	name := c.Param("name")
	return h.changeUsers(c, func(users map[string]string) error {
		if _, ok := users[name]; !ok {
			return newError(http.StatusNotFound, fmt.Sprintf("no user named %q", name))
		}
		delete(users, name)
		return nil
	})
}

// changeUsers edits the password file through the flow. With no
// password_file yet, the file is made beside the conf and the conf names it
// in the same save: the first user needs no SSH.
func (h *handlers) changeUsers(c echo.Context, edit func(map[string]string) error) error {
	res, err := h.changeLogins(c, "users", func(lf *loginFiles, users map[string]string) ([]confflow.File, error) {
		if err := edit(users); err != nil {
			return nil, err
		}
		return lf.files(users, nil)
	})
	return flowAnswer(c, http.StatusOK, res, err)
}
