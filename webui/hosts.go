package webui

import (
	"net/http"
	"strings"

	"github.com/homebox/gateway/internal/ownhost"
	"github.com/labstack/echo/v4"
)

// OwnHosts decides which Host names the LAN side answers to: the box's own
// (its addresses, its hostname and <hostname>.local, localhost) and the
// names gateway.yaml lists. A page on another site that gets a browser to
// send requests here through DNS rebinding carries that site's name in
// Host, and is refused before any handler runs; so is the cross-site check
// that compares Origin with Host, which would otherwise compare two names
// the attacker chose. The broker's websocket Origin check asks the same
// question (internal/ownhost).
type OwnHosts = ownhost.Hosts

// misdirected answers 421 to a LAN request whose Host is not the box's own,
// before routing; the socket (gwctl, root) is not asked.
func misdirected(own *OwnHosts) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if OriginOf(r) == OriginLAN && !own.Allowed(r.Host) {
				return newError(http.StatusMisdirectedRequest, "this box does not answer to the name "+quoteHost(r.Host)+": open it by its address or by its own name")
			}
			return next(c)
		}
	}
}

// quoteHost shows a Host safely in an error text.
func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100] + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, h) + `"`
}
