// Package webui is the box's one HTTP application: a JSON API under /api
// (and, later, the console's pages under /). The same echo app is served on
// the root-only control socket for gwctl and on the LAN for the console, so
// nothing here depends on the transport; where a listener matters (a login
// for LAN clients only), the server marks each connection with its Origin.
package webui

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

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
}

// Deps is what the app serves. A nil Apps makes the app routes answer 503,
// so a part that is not there yet shows as unavailable, not broken.
type Deps struct {
	Apps    Apps
	Devices Devices // nil: the device routes answer 503
	Version string
	Logger  *slog.Logger
	// Middleware wraps every route, outermost first: the LAN console adds
	// its guard and login here.
	Middleware []echo.MiddlewareFunc
}

// New builds the echo app.
func New(d Deps) *echo.Echo {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(d.Logger)
	e.Use(d.Middleware...)
	h := &handlers{d: d, started: time.Now()}

	api := e.Group("/api")
	api.GET("/health", h.health)
	api.GET("/apps", h.list)
	api.GET("/apps/:name", h.get)
	api.POST("/apps/:name/start", h.action("start"))
	api.POST("/apps/:name/stop", h.action("stop"))
	api.POST("/apps/:name/restart", h.action("restart"))
	api.GET("/apps/:name/logs", h.logs)
	api.GET("/devices", h.devices)
	api.GET("/devices/:id", h.device)
	return e
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// errorHandler answers every error, echo's own (unknown route, wrong
// method) included, as JSON {"error": "..."}.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code, msg := http.StatusInternalServerError, err.Error()
		var he *echo.HTTPError
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
			err = c.JSON(code, Error{Error: msg})
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

// Health is GET /api/health's answer.
type Health struct {
	OK       bool    `json:"ok"`
	Version  string  `json:"version"`
	PID      int     `json:"pid"`
	UptimeS  float64 `json:"uptime_s"`
	Apps     int     `json:"apps"`
	AppsOK   bool    `json:"apps_available"`
	ServerTS string  `json:"time"`
}
