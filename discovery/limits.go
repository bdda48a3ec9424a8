package discovery

import (
	"log/slog"
	"sync"
	"time"

	"github.com/homebox/gateway/discovery/announce"
	"github.com/homebox/gateway/discovery/registry"
)

// Limits bound what discovery takes from the network: anyone on the LAN can
// publish an announce, and a retained one comes back after every restart.
// Zero fields take DefaultLimits' values. See docs/ANNOUNCE.md, "Limits".
type Limits struct {
	// MaxPayload caps one announce message (Home Assistant, Tasmota, the
	// gateway's own); MaxListPayload zigbee2mqtt's bridge/devices, the whole
	// network in one message. Larger ones are refused whole, before any
	// decoding, and counted in DropStats.Messages.
	MaxPayload     int `json:"max_payload_bytes"`
	MaxListPayload int `json:"max_list_payload_bytes"`
	// MaxAvailabilityPayload caps a birth/LWT payload ("online",
	// {"state":"online"}).
	MaxAvailabilityPayload int `json:"max_availability_payload_bytes"`
	// The registry's caps: devices, entities, field lengths.
	Registry registry.Limits `json:"registry"`
}

// DefaultLimits are the limits a Service runs with unless told otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload:             announce.DefaultMaxPayload,
		MaxListPayload:         announce.DefaultMaxListPayload,
		MaxAvailabilityPayload: 1024,
		Registry:               registry.DefaultLimits(),
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxPayload <= 0 {
		l.MaxPayload = d.MaxPayload
	}
	if l.MaxListPayload <= 0 {
		l.MaxListPayload = d.MaxListPayload
	}
	if l.MaxAvailabilityPayload <= 0 {
		l.MaxAvailabilityPayload = d.MaxAvailabilityPayload
	}
	return l
}

// DropStats counts what the limits dropped since the Service started (and,
// for the registry's counts, what was over them in devices.json at start).
type DropStats struct {
	// Messages refused whole for their size: announces over MaxPayload or
	// MaxListPayload, availability payloads over MaxAvailabilityPayload.
	Messages uint64 `json:"messages"`
	// Devices refused because the registry was at MaxDevices (new ones only:
	// known devices keep being updated), or because one message described
	// more devices than the registry can hold.
	Devices uint64 `json:"devices"`
	// Entities refused past a device's or the registry's entity cap (a
	// whole announce about a device that is full counts as one).
	Entities uint64 `json:"entities"`
	// Fields cut (free text) or refused (ids, topics, list entries) for
	// their length.
	Fields uint64 `json:"fields"`
}

// Stats counts what discovery's limits dropped since it started.
func (s *Service) Stats() DropStats {
	r := s.reg.Drops()
	return DropStats{Messages: s.droppedMessages.Load(), Devices: r.Devices, Entities: r.Entities, Fields: r.Fields}
}

// Limits are the limits in force.
func (s *Service) Limits() Limits { return s.opts.Limits }

// dropLog logs what the limits dropped without letting a flood of announces
// flood the log: per reason, a burst of lines, then one line per interval
// that says how many were not logged meanwhile.
type dropLog struct {
	log      *slog.Logger
	burst    int
	interval time.Duration

	mu      sync.Mutex
	reasons map[string]*dropReason
}

type dropReason struct {
	windowStart time.Time
	logged      int
	suppressed  int
}

func newDropLog(log *slog.Logger) *dropLog {
	return &dropLog{log: log, burst: 10, interval: time.Minute, reasons: map[string]*dropReason{}}
}

// warn logs msg under reason unless the reason's budget for this interval
// is spent; reasons are a fixed set of constants, so the map stays small.
func (d *dropLog) warn(reason, msg string, args ...any) {
	now := time.Now()
	d.mu.Lock()
	r := d.reasons[reason]
	if r == nil {
		r = &dropReason{windowStart: now}
		d.reasons[reason] = r
	}
	if now.Sub(r.windowStart) >= d.interval {
		if r.suppressed > 0 {
			args = append(args, "not_logged_in_last_interval", r.suppressed)
		}
		r.windowStart, r.logged, r.suppressed = now, 0, 0
	}
	if r.logged >= d.burst {
		r.suppressed++
		first := r.suppressed == 1
		d.mu.Unlock()
		if first {
			d.log.Warn("discovery: too many drops to log each; counting them (Stats) and logging the next one after the interval",
				"reason", reason, "logged", d.burst, "interval", d.interval)
		}
		return
	}
	r.logged++
	d.mu.Unlock()
	d.log.Warn(msg, append(args, "reason", reason)...)
}
