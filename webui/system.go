package webui

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/webui/api"
)

// System is what the API needs of the box's A/B root slots (updates,
// rollback, factory reset); cmd/gatewayd adapts rootfs/slots to it. An
// error the owner caused (a bad bundle, a box not started from the disk
// image) is a *SystemError, whose status and words go to the client.
type System interface {
	Info() api.System
	// Install checks a bundle and writes it into the other slot; it does
	// not reboot.
	Install(ctx context.Context, r io.Reader, maxSize int64) (api.Updated, error)
	// InstallFile does the same from a file on the box (gwctl over the
	// root-only socket).
	InstallFile(ctx context.Context, path string) (api.Updated, error)
	// Rollback makes the other slot the one to boot next.
	Rollback() error
	// FactoryReset asks for the data partition to be wiped at the next
	// boot.
	FactoryReset() error
	// Reboot restarts the box through its init.
	Reboot() error
}

// SystemError is a refusal with its HTTP status.
type SystemError struct {
	Status int
	Msg    string
}

func (e *SystemError) Error() string { return e.Msg }

// maxBundle bounds an uploaded update bundle: a root slot and its kernel.
const maxBundle = 512 << 20

func (h *handlers) system() (System, error) {
	if h.d.System == nil {
		return nil, newError(http.StatusServiceUnavailable, "updates are not running here")
	}
	return h.d.System, nil
}

func systemError(err error) error {
	var se *SystemError
	if errors.As(err, &se) {
		return newError(se.Status, se.Msg)
	}
	return err
}

// getSystem is GET /api/system: version, slots, the last update.
func (h *handlers) getSystem(c echo.Context) error {
	s, err := h.system()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.Info())
}

// update is POST /api/system/update: the bundle is the body (or, on the
// socket only, ?path= names a file on the box). Once it is in the other
// slot the box reboots into it, after this answer is sent.
func (h *handlers) update(c echo.Context) error {
	s, err := h.system()
	if err != nil {
		return err
	}
	var out api.Updated
	ctx := c.Request().Context()
	if p := c.QueryParam("path"); p != "" {
		if OriginOf(c.Request()) != OriginSocket {
			return newError(http.StatusForbidden, "path= is for gwctl on the box; upload the bundle as the body instead")
		}
		out, err = s.InstallFile(ctx, p)
	} else {
		out, err = s.Install(ctx, c.Request().Body, maxBundle)
	}
	if err != nil {
		return systemError(err)
	}
	h.d.Logger.Warn("update installed: rebooting into it", "version", out.Version, "slot", out.Slot)
	out.OK, out.Rebooting = true, true
	h.rebootAfter(c, s)
	return c.JSON(http.StatusOK, out)
}

// rollback is POST /api/system/rollback: boot the other slot again.
func (h *handlers) rollback(c echo.Context) error {
	s, err := h.system()
	if err != nil {
		return err
	}
	if err := s.Rollback(); err != nil {
		return systemError(err)
	}
	h.d.Logger.Warn("rollback: rebooting into the other slot")
	h.rebootAfter(c, s)
	return c.JSON(http.StatusOK, map[string]bool{"ok": true, "rebooting": true})
}

// factoryReset is POST /api/system/factory-reset: everything the owner
// changed goes at the next boot, which follows at once.
func (h *handlers) factoryReset(c echo.Context) error {
	s, err := h.system()
	if err != nil {
		return err
	}
	if err := s.FactoryReset(); err != nil {
		return systemError(err)
	}
	h.d.Logger.Warn("factory reset asked for: rebooting to wipe the data partition")
	h.rebootAfter(c, s)
	return c.JSON(http.StatusOK, map[string]bool{"ok": true, "rebooting": true})
}

// rebootAfter reboots once the answer has been written, so the client
// learns what happened before the box goes away.
func (h *handlers) rebootAfter(c echo.Context, s System) {
	c.Response().After(func() {
		go func() {
			if err := s.Reboot(); err != nil {
				h.d.Logger.Error("reboot failed: reboot the box by hand to finish", "error", err)
			}
		}()
	})
}
