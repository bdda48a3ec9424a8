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

var errNoPasswordFile = newError(http.StatusConflict, "mosquitto.conf sets no password_file: add a password_file line to mosquitto.conf first")

func (h *handlers) users(c echo.Context) error {
	f, cfg, err := h.flowAndConf()
	if err != nil {
		return err
	}
	pw, acl := securityFiles(cfg)
	if pw == "" {
		return errNoPasswordFile
	}
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
	case errors.Is(err, fs.ErrNotExist):
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
	if err := checkUserName(in.Username); err != nil {
		return newError(http.StatusBadRequest, "username: "+err.Error(), api.LineError{Field: "username", Message: err.Error()})
	}
	if in.Password == "" || strings.ContainsAny(in.Password, "\x00") || len(in.Password) > 1024 {
		return newError(http.StatusBadRequest, "password: give a password (up to 1024 bytes)", api.LineError{Field: "password", Message: "required"})
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

// changeUsers edits the password file through the flow.
func (h *handlers) changeUsers(c echo.Context, edit func(map[string]string) error) error {
	f, err := h.flow()
	if err != nil {
		return err
	}
	res, err := f.Run(c.Request().Context(), "users", func() ([]confflow.File, error) {
		_, cfg, err := currentConf(f)
		if err != nil {
			return nil, err
		}
		pw, _ := securityFiles(cfg)
		if pw == "" {
			return nil, errNoPasswordFile
		}
		if err := confinedFile(f, "password_file", pw); err != nil {
			return nil, err
		}
		path := f.Resolve(pw)
		users := map[string]string{}
		p, err := auth.LoadPasswordFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, newError(http.StatusConflict, err.Error())
		default:
			users = p.Hashes()
		}
		if err := edit(users); err != nil {
			return nil, err
		}
		text, err := auth.PasswordFileText(users)
		if err != nil {
			return nil, newError(http.StatusBadRequest, err.Error())
		}
		return []confflow.File{{Path: path, Kind: confflow.KindPasswords, Data: text, Mode: 0o600}}, nil
	})
	return flowAnswer(c, http.StatusOK, res, err)
}
