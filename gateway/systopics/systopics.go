// Package systopics publishes the $SYS/broker/... topics under the names
// Mosquitto uses, so dashboards and scripts written for Mosquitto read the
// gateway's broker unchanged. mochi publishes its own set every interval
// (some names differ, e.g. its uptime has no unit); this hook follows each of
// mochi's ticks with the Mosquitto names, so where the names are the same
// the Mosquitto form is the one left retained.
package systopics

import (
	"fmt"
	"log/slog"
	"strconv"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/system"
)

// Hook publishes Mosquitto's $SYS names on each system tick.
type Hook struct {
	mqtt.HookBase
	server  *mqtt.Server
	version string
	log     *slog.Logger

	// Extra, when set, adds topics of the gateway's own (e.g. bridges).
	Extra func() map[string]string
}

// New returns the hook. server must have the inline client enabled;
// version is what $SYS/broker/version says.
func New(server *mqtt.Server, version string, log *slog.Logger) *Hook {
	if log == nil {
		log = slog.Default()
	}
	return &Hook{server: server, version: version, log: log}
}

// ID names the hook.
func (h *Hook) ID() string { return "mosquitto-sys-topics" }

// Provides says which events the hook handles.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnSysInfoTick }

// OnSysInfoTick publishes the figures mochi has, under Mosquitto's names.
func (h *Hook) OnSysInfoTick(info *system.Info) {
	topics := Topics(info, h.version)
	if h.Extra != nil {
		for k, v := range h.Extra() {
			topics[k] = v
		}
	}
	for topic, payload := range topics {
		if err := h.server.Publish(topic, []byte(payload), true, 0); err != nil {
			h.log.Warn("publish $SYS", "topic", topic, "error", err)
			return
		}
	}
}

// Topics maps Mosquitto's $SYS topic names to their payloads for info.
func Topics(info *system.Info, version string) map[string]string {
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	return map[string]string{
		"$SYS/broker/version":                   version,
		"$SYS/broker/uptime":                    fmt.Sprintf("%d seconds", info.Uptime),
		"$SYS/broker/clients/connected":         n(info.ClientsConnected),
		"$SYS/broker/clients/active":            n(info.ClientsConnected),
		"$SYS/broker/clients/disconnected":      n(info.ClientsDisconnected),
		"$SYS/broker/clients/inactive":          n(info.ClientsDisconnected),
		"$SYS/broker/clients/total":             n(info.ClientsTotal),
		"$SYS/broker/clients/maximum":           n(info.ClientsMaximum),
		"$SYS/broker/messages/received":         n(info.PacketsReceived),
		"$SYS/broker/messages/sent":             n(info.PacketsSent),
		"$SYS/broker/messages/stored":           n(info.Inflight + info.Retained),
		"$SYS/broker/store/messages/count":      n(info.Inflight + info.Retained),
		"$SYS/broker/publish/messages/received": n(info.MessagesReceived),
		"$SYS/broker/publish/messages/sent":     n(info.MessagesSent),
		"$SYS/broker/publish/messages/dropped":  n(info.MessagesDropped),
		"$SYS/broker/bytes/received":            n(info.BytesReceived),
		"$SYS/broker/bytes/sent":                n(info.BytesSent),
		"$SYS/broker/retained messages/count":   n(info.Retained),
		"$SYS/broker/subscriptions/count":       n(info.Subscriptions),
		"$SYS/broker/heap/current":              n(info.MemoryAlloc),
	}
}
