package webui

import (
	"net/http"

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
