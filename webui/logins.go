package webui

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/gateway/auth"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/webui/api"
	"github.com/homebox/gateway/webui/confflow"
)

// The files the console makes when the conf names none, beside the conf.
const (
	defaultPasswordFile = "passwd"
	defaultACLFile      = "acl"
)

// loginFiles are the conf's password and ACL files as the broker finds
// them, or where the console will make them; the conf lines to add are
// returned too.
type loginFiles struct {
	confPath        string
	conf            []byte
	cfg             *mosquittoconf.Config
	pw, acl         string // resolved paths
	pwLine, aclLine bool   // the conf does not name them yet
}

func readLoginFiles(f *confflow.Flow) (*loginFiles, error) {
	data, cfg, err := currentConf(f)
	if err != nil {
		return nil, err
	}
	if cfg.PerListenerSettings {
		return nil, newError(http.StatusConflict, "per_listener_settings is on: logins are set per listener, in the config editor")
	}
	lf := &loginFiles{confPath: f.ConfPath(), conf: data, cfg: cfg}
	pw, acl := securityFiles(cfg)
	if err := confinedFile(f, "password_file", pw); err != nil {
		return nil, err
	}
	if err := confinedFile(f, "acl_file", acl); err != nil {
		return nil, err
	}
	dir := filepath.Dir(f.ConfPath())
	lf.pw, lf.pwLine = f.Resolve(pw), pw == ""
	if pw == "" {
		lf.pw = filepath.Join(dir, defaultPasswordFile)
	}
	lf.acl, lf.aclLine = f.Resolve(acl), acl == ""
	if acl == "" {
		lf.acl = filepath.Join(dir, defaultACLFile)
	}
	return lf, nil
}

// users are the owner's users of the password file (none when missing).
func (lf *loginFiles) users() (map[string]string, error) {
	p, err := auth.LoadPasswordFile(lf.pw)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return map[string]string{}, nil
	case err != nil:
		return nil, newError(http.StatusConflict, err.Error())
	}
	return p.Hashes(), nil
}

// files are the conf (with edit applied, and the password_file line when
// it was missing) and the password file for users.
func (lf *loginFiles) files(users map[string]string, edit func(d *mosquittoconf.Document)) ([]confflow.File, error) {
	text, err := auth.PasswordFileText(users)
	if err != nil {
		return nil, newError(http.StatusBadRequest, err.Error())
	}
	out := []confflow.File{{Path: lf.pw, Kind: confflow.KindPasswords, Data: text, Mode: 0o600}}
	doc := mosquittoconf.ParseDocument(filepath.Base(lf.pw), lf.conf)
	if lf.pwLine {
		doc.SetOption("password_file", lf.pw)
	}
	if edit != nil {
		edit(doc)
	}
	if conf := doc.Bytes(); string(conf) != string(lf.conf) {
		out = append(out, confflow.File{Path: lf.confPath, Kind: confflow.KindConf, Data: conf})
	}
	return out, nil
}

// loginFilesNow reads the login files for a GET route.
func (h *handlers) loginFilesNow() (*loginFiles, error) {
	f, err := h.flow()
	if err != nil {
		return nil, err
	}
	return readLoginFiles(f)
}

// changeLogins runs one change of the login files through the flow:
// change gets them as they are, with the owner's users, under the flow's
// lock, and returns what to write.
func (h *handlers) changeLogins(c echo.Context, kind string, change func(lf *loginFiles, users map[string]string) ([]confflow.File, error)) (confflow.Result, error) {
	f, err := h.flow()
	if err != nil {
		return confflow.Result{}, err
	}
	return f.Run(c.Request().Context(), kind, func() ([]confflow.File, error) {
		lf, err := readLoginFiles(f)
		if err != nil {
			return nil, err
		}
		users, err := lf.users()
		if err != nil {
			return nil, err
		}
		return change(lf, users)
	})
}

func (h *handlers) getLogins(c echo.Context) error {
	lf, err := h.loginFilesNow()
	if err != nil {
		return err
	}
	users, err := lf.users()
	if err != nil {
		return err
	}
	out := api.Logins{Required: !anonymousAllowed(lf.cfg), Users: len(users)}
	if !lf.pwLine {
		out.PasswordFile = lf.pw
	}
	return c.JSON(http.StatusOK, out)
}

// anonymousAllowed is allow_anonymous as the broker reads the conf.
func anonymousAllowed(cfg *mosquittoconf.Config) bool {
	a := cfg.Security.AllowAnonymous
	return a == nil && len(cfg.Listeners) == 0 || a != nil && *a
}

// putLogins turns "every client logs in" on or off in one checked save:
// the password file is made when missing, allow_anonymous and
// password_file are written, and the broker restarted on them (or the old
// files put back). On with no user yet is refused: the box's own clients
// would still get in, but no device of the owner's could.
func (h *handlers) putLogins(c echo.Context) error {
	var in api.LoginsInput
	if err := bind(c, &in); err != nil {
		return err
	}
	var first string
	if u := in.FirstUser; u != nil {
		if err := checkNewUser(u.Username, u.Password); err != nil {
			return err
		}
		first = u.Username
	}
	res, err := h.changeLogins(c, "logins", func(lf *loginFiles, users map[string]string) ([]confflow.File, error) {
		if first != "" {
			hash, err := auth.HashPBKDF2(in.FirstUser.Password)
			if err != nil {
				return nil, err
			}
			users[first] = hash
		}
		if in.Required && len(users) == 0 {
			return nil, &apiError{code: http.StatusConflict, body: map[string]any{
				"error":     "no user exists yet: with logins required nothing of yours could connect. Create a first user (give first_user), then turn logins on",
				"need_user": true}}
		}
		value := "true"
		if in.Required {
			value = "false"
		}
		return lf.files(users, func(d *mosquittoconf.Document) { d.SetOption("allow_anonymous", value) })
	})
	return flowAnswer(c, http.StatusOK, res, err)
}

// checkNewUser refuses a name or password the password file cannot hold,
// and the names of the box's own accounts.
func checkNewUser(name, password string) error {
	if err := checkUserName(name); err != nil {
		return newError(http.StatusBadRequest, "username: "+err.Error(), api.LineError{Field: "username", Message: err.Error()})
	}
	if auth.ReservedUser(name) {
		msg := fmt.Sprintf("%q is one of the box's own accounts (names starting with gateway- and %q are reserved): choose another name", name, auth.HomeAssistantUser)
		return newError(http.StatusBadRequest, "username: "+msg, api.LineError{Field: "username", Message: msg})
	}
	if password == "" || strings.ContainsAny(password, "\x00") || len(password) > 1024 {
		return newError(http.StatusBadRequest, "password: give a password (up to 1024 bytes)", api.LineError{Field: "password", Message: "required"})
	}
	return nil
}

// addDevice makes a login for one device: a user with a generated password
// and an ACL block that lets it use only its own topics and the discovery
// prefixes, and answers what to type into the device.
func (h *handlers) addDevice(c echo.Context) error {
	var in api.DeviceInput
	if err := bind(c, &in); err != nil {
		return err
	}
	password := randomPassword()
	if err := checkNewUser(in.Name, password); err != nil {
		return err
	}
	topics := in.Topics
	if len(topics) == 0 {
		topics = []string{in.Name + "/#", "+/" + in.Name + "/#"}
	}
	block := []string{"", "# device " + in.Name + ", added from the console", "user " + in.Name}
	for _, t := range topics {
		if strings.ContainsAny(t, "\r\n") || strings.TrimSpace(t) == "" {
			return newError(http.StatusBadRequest, "topics: one filter per entry", api.LineError{Field: "topics", Message: "one filter per entry"})
		}
		block = append(block, "topic readwrite "+strings.TrimSpace(t))
	}
	block = append(block, "topic readwrite homeassistant/#", "topic write tasmota/discovery/#")
	var port int
	res, err := h.changeLogins(c, "device login", func(lf *loginFiles, users map[string]string) ([]confflow.File, error) {
		if _, taken := users[in.Name]; taken {
			return nil, newError(http.StatusConflict, fmt.Sprintf("a user named %q exists already", in.Name))
		}
		hash, err := auth.HashPBKDF2(password)
		if err != nil {
			return nil, err
		}
		acl, err := os.ReadFile(lf.acl)
		if errors.Is(err, fs.ErrNotExist) {
			// A new acl_file would leave every other client with no
			// rights at all: it starts by granting them what they had.
			acl = []byte(grantAllText(slices.Sorted(maps.Keys(users))))
		} else if err != nil {
			return nil, err
		}
		users[in.Name] = hash
		acl = append(acl, []byte(strings.Join(block, "\n")+"\n")...)
		if _, err := auth.CheckACL(lf.acl, acl); err != nil {
			return nil, newError(http.StatusBadRequest, err.Error())
		}
		_, port = lf.cfg.ClientAddr()
		files, err := lf.files(users, func(d *mosquittoconf.Document) {
			if lf.aclLine {
				d.SetOption("acl_file", lf.acl)
			}
		})
		if err != nil {
			return nil, err
		}
		return append(files, confflow.File{Path: lf.acl, Kind: confflow.KindACL, Data: acl, Mode: 0o600}), nil
	})
	if err != nil {
		return flowAnswer(c, http.StatusOK, res, err)
	}
	host, _ := os.Hostname()
	return c.JSON(http.StatusCreated, api.DeviceLogin{Host: host + ".local", Port: port, Username: in.Name, Password: password,
		DiscoveryPrefix: "homeassistant", ACL: block[2:]})
}

// grantAllText is the start of a new acl_file that keeps what the broker
// allowed without one: everything, for anonymous clients and each user.
func grantAllText(users []string) string {
	var b strings.Builder
	b.WriteString("# acl_file made by the console. Without an acl_file every client could use\n# every topic; these lines keep that for the clients there were.\ntopic readwrite #\n")
	for _, u := range users {
		fmt.Fprintf(&b, "\nuser %s\ntopic readwrite #\n", u)
	}
	return b.String()
}

// randomPassword is 18 random bytes, URL-safe: typed into a device's form
// once, kept there.
func randomPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *handlers) getACL(c echo.Context) error {
	lf, err := h.loginFilesNow()
	if err != nil {
		return err
	}
	out := api.ACL{}
	if !lf.aclLine {
		out.File = lf.acl
	}
	b, err := os.ReadFile(lf.acl)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return newError(http.StatusConflict, fmt.Sprintf("acl_file: %v", err))
	default:
		out.Text = string(b)
	}
	return c.JSON(http.StatusOK, out)
}

// checkACL answers whether ACL text reads as the broker would read it.
func (h *handlers) checkACL(c echo.Context) error {
	var in api.ACL
	if err := bind(c, &in); err != nil {
		return err
	}
	if _, err := auth.CheckACL(aclName(h), []byte(in.Text)); err != nil {
		return c.JSON(http.StatusOK, api.CheckResult{OK: false, Errors: []api.LineError{aclLineError(err)}})
	}
	return c.JSON(http.StatusOK, api.CheckResult{OK: true, Errors: []api.LineError{}, Warnings: []api.LineError{}})
}

// putACL writes the acl_file through the flow (checked first: a bad line
// is FILE:LINE: reason and nothing is written), adding the conf's
// acl_file line when it has none.
func (h *handlers) putACL(c echo.Context) error {
	var in api.ACL
	if err := bind(c, &in); err != nil {
		return err
	}
	if len(in.Text) > maxACL {
		return newError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the ACL text is over %d KiB", maxACL>>10))
	}
	res, err := h.changeLogins(c, "acl", func(lf *loginFiles, _ map[string]string) ([]confflow.File, error) {
		if _, err := auth.CheckACL(lf.acl, []byte(in.Text)); err != nil {
			return nil, &apiError{code: http.StatusUnprocessableEntity, body: map[string]any{
				"error": err.Error() + "; nothing was written", "errors": []api.LineError{aclLineError(err)}}}
		}
		out := []confflow.File{{Path: lf.acl, Kind: confflow.KindACL, Data: []byte(in.Text), Mode: 0o600}}
		if lf.aclLine {
			doc := mosquittoconf.ParseDocument("mosquitto.conf", lf.conf)
			doc.SetOption("acl_file", lf.acl)
			out = append(out, confflow.File{Path: lf.confPath, Kind: confflow.KindConf, Data: doc.Bytes()})
		}
		return out, nil
	})
	return flowAnswer(c, http.StatusOK, res, err)
}

func aclName(h *handlers) string {
	if lf, err := h.loginFilesNow(); err == nil {
		return filepath.Base(lf.acl)
	}
	return defaultACLFile
}

// aclLineError places a CheckACL error ("FILE:LINE: reason") on its line.
func aclLineError(err error) api.LineError {
	le := api.LineError{Message: err.Error()}
	var ae *auth.ACLError
	if errors.As(err, &ae) {
		le.Line, le.Message, le.File = ae.Line, ae.Reason, filepath.Base(ae.File)
	}
	return le
}

// appMQTT answers the broker login the box made for an app it runs.
func (h *handlers) appMQTT(c echo.Context) error {
	if h.d.AppLogins == nil {
		return newError(http.StatusNotFound, "the box made no broker login for "+c.Param("name"))
	}
	l, ok := h.d.AppLogins(c.Param("name"))
	if !ok {
		return newError(http.StatusNotFound, "the box made no broker login for "+c.Param("name"))
	}
	return c.JSON(http.StatusOK, l)
}
