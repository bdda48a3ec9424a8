package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/homebox/gateway/webui/api"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/webui/auth"
	"github.com/homebox/gateway/webui/confflow"
)

// Stats is what the API needs of the broker's statistics;
// *sysstats.Collector has it.
type Stats interface {
	Snapshot() sysstats.Snapshot
	Changed() (<-chan struct{}, func())
}

// Console is the console's parts. A nil part makes its routes answer 503.
type Console struct {
	Auth     *auth.Auth
	Flow     *confflow.Flow
	Stats    Stats
	CertsDir string  // <root>/etc/mosquitto/certs
	Events   *Events // the config flow's steps, for /api/events
	// Done, when closed, ends the event streams (the console stops).
	Done <-chan struct{}
}

// Events fans named JSON events out to the open event streams. A slow
// stream loses events rather than slowing the publisher.
type Events struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// Event is one Server-Sent Event.
type Event struct {
	Name string
	Data []byte
}

// NewEvents returns an empty hub.
func NewEvents() *Events { return &Events{subs: map[chan Event]struct{}{}} }

// Publish sends data, as JSON, to every subscriber.
func (ev *Events) Publish(name string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		return
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for ch := range ev.subs {
		select {
		case ch <- Event{Name: name, Data: b}:
		default:
		}
	}
}

// Subscribe returns a channel of events and a function to stop them.
func (ev *Events) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 64)
	ev.mu.Lock()
	ev.subs[ch] = struct{}{}
	ev.mu.Unlock()
	return ch, func() {
		ev.mu.Lock()
		delete(ev.subs, ch)
		ev.mu.Unlock()
	}
}

func (h *handlers) console() *Console { return h.d.Console }

// Session cookie and CSRF names.
const (
	SessionCookie = "gw_session"
	CSRFHeader    = "X-CSRF-Token"
	CSRFField     = "csrf_token"
)

// maxBody bounds a request body on every route.
const maxBody = 2 << 20

// publicRoutes need no session on the LAN.
var publicRoutes = map[string]bool{
	"GET /api/health": true, "HEAD /api/health": true,
	"GET /api/session": true, "POST /api/setup": true, "POST /api/login": true, "POST /api/logout": true,
	"GET /*": true, "HEAD /*": true,
}

// guard is the LAN's door: on the socket everything passes; on the LAN a
// write from another site's page is refused, and every route but the
// public ones needs a session and, to change anything, its CSRF token.
func (h *handlers) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		limit := int64(maxBody)
		if r.Method == http.MethodPost && c.Path() == "/api/system/update" {
			limit = maxBundle + 1 // the bundle's own bound answers first, with its words
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		if OriginOf(r) == OriginSocket {
			return next(c)
		}
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		if !safe && crossSite(r) {
			return newError(http.StatusForbidden, "refused: this request comes from another site's page")
		}
		if publicRoutes[r.Method+" "+c.Path()] {
			return next(c)
		}
		con := h.console()
		if con == nil || con.Auth == nil {
			return newError(http.StatusServiceUnavailable, "the console's login is not running, so the LAN side of the API is closed")
		}
		s := h.sessionOf(c)
		if s == nil {
			return &apiError{code: http.StatusUnauthorized, body: map[string]any{"error": "log in first", "login": true}}
		}
		if !safe {
			tok := r.Header.Get(CSRFHeader)
			if tok == "" && isForm(r) {
				tok = c.FormValue(CSRFField)
			}
			if !s.CheckCSRF(tok) {
				return newError(http.StatusForbidden, "missing or wrong CSRF token: reload the page")
			}
		}
		c.Set("session", s)
		return next(c)
	}
}

func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

// crossSite reports whether the browser says the request comes from a page
// of another host.
func crossSite(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	return err != nil || o == "null" || !strings.EqualFold(u.Host, r.Host)
}

func (h *handlers) sessionOf(c echo.Context) *auth.Session {
	con := h.console()
	if con == nil || con.Auth == nil {
		return nil
	}
	ck, err := c.Cookie(SessionCookie)
	if err != nil {
		return nil
	}
	s, ok := con.Auth.Session(ck.Value)
	if !ok {
		return nil
	}
	return s
}

// setSessionCookie gives the browser the session for as long as the
// session lasts unused (12 hours; a week when kept logged in), so closing
// the browser does not end it sooner than the docs say.
func setSessionCookie(c echo.Context, a *auth.Auth, s *auth.Session) {
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: s.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(a.Lifetime(s.Keep) / time.Second)})
}

func clearSessionCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// bind reads a JSON or form body into v.
func bind(c echo.Context, v any) error {
	if err := (&echo.DefaultBinder{}).BindBody(c, v); err != nil {
		var he *echo.HTTPError
		msg := err.Error()
		if errors.As(err, &he) {
			if he.Code == http.StatusRequestEntityTooLarge {
				return newError(http.StatusRequestEntityTooLarge, "the body is too large")
			}
			msg = fmt.Sprint(he.Message)
			if he.Internal != nil {
				msg += ": " + he.Internal.Error()
			}
		}
		return newError(http.StatusBadRequest, "body: "+msg)
	}
	return nil
}

func (h *handlers) session(c echo.Context) error {
	con := h.console()
	out := api.SessionInfo{Origin: "lan"}
	if con != nil && con.Auth != nil {
		out.SetupNeeded = con.Auth.SetupNeeded()
	}
	if OriginOf(c.Request()) == OriginSocket {
		out.Origin, out.LoggedIn = "socket", true
		return c.JSON(http.StatusOK, out)
	}
	if s := h.sessionOf(c); s != nil {
		out.LoggedIn, out.CSRFToken = true, s.CSRF
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handlers) auth() (*auth.Auth, error) {
	con := h.console()
	if con == nil || con.Auth == nil {
		return nil, newError(http.StatusServiceUnavailable, "the console's login is not running")
	}
	return con.Auth, nil
}

func (h *handlers) setup(c echo.Context) error {
	a, err := h.auth()
	if err != nil {
		return err
	}
	var b api.Password
	if err := bind(c, &b); err != nil {
		return err
	}
	if !a.SetupNeeded() {
		return newError(http.StatusConflict, auth.ErrAlreadySet.Error())
	}
	s, err := a.Setup(b.Password)
	switch {
	case errors.Is(err, auth.ErrAlreadySet):
		return newError(http.StatusConflict, err.Error())
	case err != nil && auth.CheckPassword(b.Password) != nil:
		return newError(http.StatusBadRequest, err.Error(), api.LineError{Field: "password", Message: err.Error()})
	case err != nil:
		return err
	}
	h.d.Logger.Info("console: admin password set", "from", peerIP(c.Request()))
	setSessionCookie(c, a, s)
	return c.JSON(http.StatusOK, api.LoggedIn{OK: true, CSRFToken: s.CSRF})
}

func (h *handlers) login(c echo.Context) error {
	a, err := h.auth()
	if err != nil {
		return err
	}
	var b api.Password
	if err := bind(c, &b); err != nil {
		return err
	}
	ip := peerIP(c.Request())
	s, err := a.Login(ip, b.Password, b.Keep)
	var slowed *auth.SlowedError
	switch {
	case errors.As(err, &slowed):
		secs := int((slowed.RetryAfter + time.Second - 1) / time.Second)
		c.Response().Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
		return newError(http.StatusTooManyRequests, err.Error())
	case errors.Is(err, auth.ErrNotSet):
		return &apiError{code: http.StatusConflict, body: map[string]any{"error": err.Error(), "setup_needed": true}}
	case errors.Is(err, auth.ErrWrongPassword):
		h.d.Logger.Warn("console: failed login", "from", ip)
		return newError(http.StatusUnauthorized, err.Error())
	case err != nil:
		return err
	}
	setSessionCookie(c, a, s)
	return c.JSON(http.StatusOK, api.LoggedIn{OK: true, CSRFToken: s.CSRF})
}

func (h *handlers) logout(c echo.Context) error {
	if ck, err := c.Cookie(SessionCookie); err == nil {
		if con := h.console(); con != nil && con.Auth != nil {
			con.Auth.Logout(ck.Value)
		}
	}
	clearSessionCookie(c)
	return c.JSON(http.StatusOK, api.LoggedIn{OK: true})
}

// password changes the admin password: on the LAN only with the current
// one, on the socket (root) without.
func (h *handlers) password(c echo.Context) error {
	a, err := h.auth()
	if err != nil {
		return err
	}
	var b api.Password
	if err := bind(c, &b); err != nil {
		return err
	}
	lan := OriginOf(c.Request()) != OriginSocket
	if lan && !a.Verify(b.Current) {
		return newError(http.StatusForbidden, "the current password is wrong", api.LineError{Field: "current", Message: "wrong password"})
	}
	if err := auth.CheckPassword(b.Password); err != nil {
		return newError(http.StatusBadRequest, err.Error(), api.LineError{Field: "password", Message: err.Error()})
	}
	if err := a.SetPassword(b.Password); err != nil {
		return err
	}
	h.d.Logger.Info("console: admin password changed", "from", peerIP(c.Request()), "socket", !lan)
	out := api.LoggedIn{OK: true}
	if lan {
		s, err := a.NewSession()
		if err != nil {
			return err
		}
		setSessionCookie(c, a, s)
		out.CSRFToken = s.CSRF
	}
	return c.JSON(http.StatusOK, out)
}

// peerIP is the TCP peer's address: never a header a client can write.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// pages serves the browser pages for every GET outside /api.
func (h *handlers) pages(c echo.Context) error {
	p := path.Clean("/" + c.Request().URL.Path)
	if p == "/api" || strings.HasPrefix(p, "/api/") {
		return echo.NewHTTPError(http.StatusNotFound, "no such route: "+c.Request().URL.Path)
	}
	if h.d.Pages == nil {
		return echo.NewHTTPError(http.StatusNotFound, "no pages are served here; the API is under /api")
	}
	h.d.Pages.ServeHTTP(c.Response(), c.Request())
	return nil
}

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }
