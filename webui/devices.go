package webui

import (
	"errors"
	"net/http"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/webui/api"
	"github.com/labstack/echo/v4"
)

// devices is GET /api/devices: the discovery registry, every device.
func (h *handlers) devices(c echo.Context) error {
	if h.d.Devices == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "discovery is not running")
	}
	return c.JSON(http.StatusOK, apiDevices(h.d.Devices.Devices()))
}

// device is GET /api/devices/:id: one device with its entities and topics.
func (h *handlers) device(c echo.Context) error {
	if h.d.Devices == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "discovery is not running")
	}
	d, ok := h.d.Devices.Device(c.Param("id"))
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no device "+c.Param("id"))
	}
	return c.JSON(http.StatusOK, apiDevice(d))
}

// forgetDevice is DELETE /api/devices/:id[?clear_retained=1]: discovery
// forgets the device; with clear_retained its retained announces are
// emptied too, so it does not come back at the next start.
func (h *handlers) forgetDevice(c echo.Context) error {
	if h.d.Devices == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "discovery is not running")
	}
	clear := c.QueryParam("clear_retained")
	f, err := h.d.Devices.Forget(c.Param("id"), clear == "1" || clear == "true")
	switch {
	case errors.Is(err, discovery.ErrUnknownDevice):
		return echo.NewHTTPError(http.StatusNotFound, "no device "+c.Param("id"))
	case err != nil:
		return newError(http.StatusBadGateway, err.Error())
	}
	return c.JSON(http.StatusOK, api.Forgotten(f))
}
