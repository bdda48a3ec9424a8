// Package webui is the box's one HTTP application: a JSON API under /api
// and the console's pages under /. The same echo app is served on the
// root-only control socket for gwctl and on the LAN for the console, so
// nothing here depends on the transport; where a listener matters (a login
// for LAN clients only), the server marks each connection with its Origin.
//
// The app is built once, with every part it serves passed in (Deps); a
// part left out answers 503, so a missing part shows as unavailable, not
// broken.
package webui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/homebox/gateway/webui/api"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/supervisor"
)

// Apps is what the API needs of the process manager; *supervisor.Supervisor
// satisfies it.
type Apps interface {
	List() []supervisor.AppState
	Get(name string) (supervisor.AppState, error)
	StartApp(name string) error
	StopApp(name string) error
	RestartApp(name string) error
	LogFile(name string) (string, error)
}

// Devices is what the API needs of discovery's device registry.
type Devices interface {
	Devices() []discovery.Device
	Device(id string) (discovery.Device, bool)
	Forget(id string, clearRetained bool) (discovery.Forgotten, error)
}

// Deps is what the app serves. A nil Apps makes the app routes answer 503,
// so a part that is not there yet shows as unavailable, not broken.
type Deps struct {
	Apps    Apps
	Devices Devices // nil: the device routes answer 503
	Version string
	Logger  *slog.Logger
	// Middleware wraps every route, outermost first.
	Middleware []echo.MiddlewareFunc
	// Console, when set, serves the console's routes (else they answer
	// 503: gwctl's tests build the app without it).
	Console *Console
	// Pages, when set, serves every non-/api GET path (the browser pages).
	Pages http.Handler
	// System, when set, serves /api/system (updates, rollback, factory
	// reset).
	System System
	// Hosts are the names the LAN side answers to; nil means the box's
	// own (addresses, hostname, localhost) and no more.
	Hosts *OwnHosts
	// AppLogins, when set, gives the broker login the box made for an app
	// it runs (Home Assistant), for its page.
	AppLogins func(app string) (api.MQTTLogin, bool)
	// Topics, when set, is the topic explorer.
	Topics Topics
}

// New builds the echo app.
func New(d Deps) *echo.Echo {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(d.Logger)
	if d.Hosts == nil {
		d.Hosts = &OwnHosts{}
	}
	e.Pre(misdirected(d.Hosts))
	e.Use(d.Middleware...)
	h := &handlers{d: d, started: time.Now()}
	e.Use(h.guard)

	api := e.Group("/api")
	api.GET("/health", h.health)
	api.GET("/session", h.session)
	api.POST("/setup", h.setup)
	api.POST("/login", h.login)
	api.POST("/logout", h.logout)
	api.POST("/console/password", h.password)
	api.GET("/apps", h.list)
	api.GET("/apps/:name", h.get)
	api.POST("/apps/:name/start", h.action("start"))
	api.POST("/apps/:name/stop", h.action("stop"))
	api.POST("/apps/:name/restart", h.action("restart"))
	api.GET("/apps/:name/logs", h.logs)
	api.GET("/devices", h.devices)
	api.GET("/topics", h.topicList)
	api.GET("/topics/history", h.topicHistory)
	api.POST("/topics/publish", h.topicPublish)
	api.DELETE("/topics/retained", h.topicClearRetained)
	api.GET("/devices/:id", h.device)
	api.DELETE("/devices/:id", h.forgetDevice)
	api.GET("/broker/config", h.getConfig)
	api.POST("/broker/config/check", h.checkConfig)
	api.PUT("/broker/config", h.putConfig)
	api.GET("/broker/config/history", h.history)
	api.GET("/broker/config/history/:id", h.historyOne)
	api.POST("/broker/config/history/:id/restore", h.restore)
	api.GET("/broker/certs", h.certs)
	api.POST("/broker/certs", h.uploadCert)
	api.GET("/bridges", h.bridges)
	api.POST("/bridges", h.addBridge)
	api.PUT("/bridges/:name", h.putBridge)
	api.DELETE("/bridges/:name", h.deleteBridge)
	api.GET("/broker/users", h.users)
	api.POST("/broker/users", h.putUser)
	api.DELETE("/broker/users/:name", h.deleteUser)
	api.GET("/broker/logins", h.getLogins)
	api.PUT("/broker/logins", h.putLogins)
	api.POST("/broker/devices", h.addDevice)
	api.GET("/broker/acl", h.getACL)
	api.POST("/broker/acl/check", h.checkACL)
	api.PUT("/broker/acl", h.putACL)
	api.GET("/apps/:name/mqtt", h.appMQTT)
	api.GET("/broker/stats", h.stats)
	api.GET("/events", h.events)
	api.GET("/system", h.getSystem)
	api.POST("/system/update", h.update)
	api.POST("/system/rollback", h.rollback)
	api.POST("/system/factory-reset", h.factoryReset)
	e.GET("/*", h.pages)
	e.HEAD("/*", h.pages)
	return e
}

// apiError is an error answer with its own body (a 409 that says what was
// rolled back, a 422 with line numbers).
type apiError struct {
	code int
	body any
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %v", e.code, e.body) }

func newError(code int, msg string, errs ...api.LineError) *apiError {
	return &apiError{code: code, body: api.Error{Error: msg, Errors: errs}}
}

// errorHandler answers every error, echo's own (unknown route, wrong
// method) included, as JSON {"error": "..."}.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code, msg := http.StatusInternalServerError, err.Error()
		var ae *apiError
		var he *echo.HTTPError
		if errors.As(err, &ae) {
			if c.Request().Method == http.MethodHead {
				err = c.NoContent(ae.code)
			} else {
				err = c.JSON(ae.code, ae.body)
			}
			if err != nil {
				log.Debug("api: write error answer", "error", err)
			}
			return
		}
		if errors.As(err, &he) {
			code = he.Code
			if m, ok := he.Message.(string); ok {
				msg = m
			} else {
				msg = http.StatusText(code)
			}
		}
		if code >= 500 {
			log.Error("api", "method", c.Request().Method, "path", c.Request().URL.Path, "error", err)
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(code)
		} else {
			err = c.JSON(code, api.Error{Error: msg})
		}
		if err != nil {
			log.Debug("api: write error answer", "error", err)
		}
	}
}

// Origin says which listener a request came in on.
type Origin int

const (
	// OriginLAN is the default: a request not marked otherwise is treated
	// as coming from the network, the less trusted side.
	OriginLAN Origin = iota
	// OriginSocket is the root-only control socket.
	OriginSocket
)

type originKey struct{}

// ConnContext marks every connection of an http.Server with origin; set it
// as the server's ConnContext.
func ConnContext(origin Origin) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, originKey{}, origin)
	}
}

// OriginOf tells which listener r came in on.
func OriginOf(r *http.Request) Origin {
	if o, ok := r.Context().Value(originKey{}).(Origin); ok {
		return o
	}
	return OriginLAN
}
