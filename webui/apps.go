package webui

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/homebox/gateway/webui/api"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/supervisor"
)

type handlers struct {
	d       Deps
	started time.Time
	confMu  sync.Mutex
	conf    confCache
}

func (h *handlers) health(c echo.Context) error {
	n := 0
	if h.d.Apps != nil {
		n = len(h.d.Apps.List())
	}
	return c.JSON(http.StatusOK, api.Health{
		OK: true, Version: h.d.Version, PID: os.Getpid(),
		UptimeS: time.Since(h.started).Seconds(), Apps: n, AppsOK: h.d.Apps != nil,
		ServerTS: time.Now().UTC().Format(time.RFC3339),
	})
}

func (h *handlers) apps() (Apps, error) {
	if h.d.Apps == nil {
		return nil, echo.NewHTTPError(http.StatusServiceUnavailable, "the supervisor is not available")
	}
	return h.d.Apps, nil
}

// appError maps the supervisor's errors to statuses.
func appError(name string, err error) error {
	if errors.Is(err, supervisor.ErrUnknownApp) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no app named %q", name))
	}
	return echo.NewHTTPError(http.StatusInternalServerError, err.Error())
}

func (h *handlers) list(c echo.Context) error {
	a, err := h.apps()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiApps(a.List()))
}

func (h *handlers) get(c echo.Context) error {
	a, err := h.apps()
	if err != nil {
		return err
	}
	name := c.Param("name")
	st, err := a.Get(name)
	if err != nil {
		return appError(name, err)
	}
	return c.JSON(http.StatusOK, apiApp(st))
}

// action runs start, stop or restart on one app or on "all", and answers
// with the states after it, so a client need not ask again.
func (h *handlers) action(verb string) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, err := h.apps()
		if err != nil {
			return err
		}
		name := c.Param("name")
		do := map[string]func(string) error{"start": a.StartApp, "stop": a.StopApp, "restart": a.RestartApp}[verb]
		if err := do(name); err != nil {
			return appError(name, err)
		}
		if name == "all" {
			return c.JSON(http.StatusOK, apiApps(a.List()))
		}
		st, err := a.Get(name)
		if err != nil {
			return appError(name, err)
		}
		return c.JSON(http.StatusOK, []api.App{apiApp(st)})
	}
}

const (
	defaultLogLines = 100
	maxLogLines     = 10000
)

func (h *handlers) logs(c echo.Context) error {
	a, err := h.apps()
	if err != nil {
		return err
	}
	name := c.Param("name")
	n := defaultLogLines
	if s := c.QueryParam("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > maxLogLines {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("n=%q: give a number of lines from 0 to %d", s, maxLogLines))
		}
		n = v
	}
	since := int64(-1)
	if s := c.QueryParam("since"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("since=%q: give a byte offset from an earlier answer", s))
		}
		since = v
	}
	file, err := a.LogFile(name)
	if err != nil {
		return appError(name, err)
	}
	out := api.Logs{Name: name, File: file, Lines: []string{}}
	if since >= 0 {
		out.Lines, out.Offset, out.Rotated, err = readSince(file, since, maxLogLines)
	} else {
		out.Lines, out.Offset, err = tail(file, n)
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, fmt.Sprintf("read log of %s: %v", name, err))
	}
	return c.JSON(http.StatusOK, out)
}
