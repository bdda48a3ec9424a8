package webui

import (
	"fmt"
	"net/http"
	"time"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/webui/api"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/supervisor"
)

func (h *handlers) statsView() (api.Stats, error) {
	con := h.console()
	if con == nil || con.Stats == nil {
		return api.Stats{}, newError(http.StatusServiceUnavailable, "broker statistics are not running")
	}
	snap := con.Stats.Snapshot()
	out := api.Stats{Broker: brokerStats(snap), History: make([]api.RatePoint, 0, len(snap.History))}
	for _, p := range snap.History {
		out.History = append(out.History, api.RatePoint(p))
	}
	if con.Flow != nil {
		for _, name := range h.confBridges(con.Flow) {
			out.Bridges.Total++
			switch l, ok := snap.Bridges[name]; {
			case !snap.Up && snap.Error != "":
				// The box's own client has no figures: a bridge's state
				// is not known, not down.
				out.Bridges.Unknown++
			case ok && l.State == "up" && snap.Up:
				out.Bridges.Up++
			default:
				out.Bridges.Down++
			}
		}
	}
	if h.d.Apps != nil {
		ac := &api.AppCount{}
		for _, a := range h.d.Apps.List() {
			ac.Total++
			switch a.Status {
			case supervisor.StatusOnline:
				ac.Online++
			case supervisor.StatusLaunching:
				ac.Launching++
			case supervisor.StatusWaiting:
				ac.Waiting++
			case supervisor.StatusStopping:
				ac.Stopping++
			case supervisor.StatusStopped:
				ac.Stopped++
			case supervisor.StatusErrored:
				ac.Errored++
			}
		}
		out.Apps = ac
	}
	if n, ok := h.deviceCount(); ok {
		out.Devices = &n
	}
	if d, ok := h.d.Devices.(dropCounter); ok {
		drops := api.DiscoveryDrops(d.Stats())
		out.DevicesDropped = &drops
	}
	return out, nil
}

// dropCounter is discovery's count of what its limits refused.
type dropCounter interface {
	Stats() discovery.DropStats
}

func (h *handlers) deviceCount() (int, bool) {
	if h.d.Devices == nil {
		return 0, false
	}
	return len(h.d.Devices.Devices()), true
}

func (h *handlers) stats(c echo.Context) error {
	v, err := h.statsView()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// appSubscriber is the supervisor's change feed, when the Apps have one.
type appSubscriber interface {
	Subscribe() (<-chan supervisor.AppState, func())
}

// Event stream timings.
var (
	sseKeepalive    = 15 * time.Second
	sseStatsEvery   = time.Second
	sseDevicesEvery = 2 * time.Second
)

// events is GET /api/events: Server-Sent Events for the pages' live parts.
func (h *handlers) events(c echo.Context) error {
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(name string, data any) error {
		var b []byte
		switch d := data.(type) {
		case []byte:
			b = d
		default:
			var err error
			if b, err = jsonBytes(d); err != nil {
				return nil
			}
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return err
		}
		w.Flush()
		return nil
	}
	ctx := c.Request().Context()
	con := h.console()
	var (
		appsC   <-chan supervisor.AppState
		statsC  <-chan struct{}
		flowC   <-chan Event
		done    <-chan struct{}
		pending bool
		lastSt  time.Time
	)
	if s, ok := h.d.Apps.(appSubscriber); ok && h.d.Apps != nil {
		ch, unsub := s.Subscribe()
		defer unsub()
		appsC = ch
	}
	if con != nil {
		done = con.Done
		if con.Stats != nil {
			ch, unsub := con.Stats.Changed()
			defer unsub()
			statsC = ch
		}
		if con.Events != nil {
			ch, unsub := con.Events.Subscribe()
			defer unsub()
			flowC = ch
		}
	}
	// The opening line goes out once every subscription above is in place,
	// so a change made as soon as the page sees the stream open is heard.
	if _, err := fmt.Fprint(w, ": gatewayd events\n\n"); err != nil {
		return nil
	}
	w.Flush()
	if v, err := h.statsView(); err == nil {
		if send("stats", v) != nil {
			return nil
		}
		lastSt = time.Now()
	}
	devs, devOK := h.deviceCount()
	if devOK {
		if send("devices", map[string]int{"count": devs}) != nil {
			return nil
		}
	}
	keep := time.NewTicker(sseKeepalive)
	defer keep.Stop()
	devT := time.NewTicker(sseDevicesEvery)
	defer devT.Stop()
	statT := time.NewTimer(time.Hour)
	statT.Stop()
	defer statT.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			return nil
		case st, ok := <-appsC:
			if !ok {
				appsC = nil
				continue
			}
			err = send("app", apiApp(st))
		case <-statsC:
			if wait := sseStatsEvery - time.Since(lastSt); wait > 0 {
				if !pending {
					pending = true
					statT.Reset(wait)
				}
				continue
			}
			if v, e := h.statsView(); e == nil {
				err = send("stats", v)
				lastSt = time.Now()
			}
		case <-statT.C:
			pending = false
			if v, e := h.statsView(); e == nil {
				err = send("stats", v)
				lastSt = time.Now()
			}
		case ev := <-flowC:
			err = send(ev.Name, ev.Data)
		case <-devT.C:
			if n, ok := h.deviceCount(); ok && (n != devs || !devOK) {
				devs, devOK = n, true
				err = send("devices", map[string]int{"count": n})
			}
		case <-keep.C:
			_, err = fmt.Fprint(w, ": keepalive\n\n")
			w.Flush()
		}
		if err != nil {
			return nil // the client went away
		}
	}
}

// brokerStats is the contract's view of the collector's snapshot.
func brokerStats(s sysstats.Snapshot) api.BrokerStats {
	return api.BrokerStats{
		Up: s.Up, Version: s.Version, UptimeS: s.UptimeS, ClientsConnected: s.ClientsConnected,
		Retained: s.Retained, Subscriptions: s.Subscriptions, InPerS: s.InPerS, OutPerS: s.OutPerS, Updated: s.Updated,
		Error: s.Error, Split: s.Split, OwnerClients: max(s.ClientsConnected-s.BoxClients, 0), BoxClients: s.BoxClients,
		OwnerInPerS: s.OwnerInPerS, OwnerOutPerS: s.OwnerOutPerS, BoxInPerS: s.BoxInPerS, BoxOutPerS: s.BoxOutPerS,
		SysInPerS: s.SysInPerS, SysOutPerS: s.SysOutPerS,
	}
}
