package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"strings"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// NewLogger builds the broker's logger from log_dest and log_type:
// stdout, stderr and `file PATH` are written to (stderr when none is set,
// as Mosquitto in the foreground); `none` silences; log_type debug or all
// lowers the level to debug. The returned closer closes any log file.
func NewLogger(cfg *mosquittoconf.Config, stdout, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	var streams []io.Writer // stdout, stderr, none
	var files []*os.File
	var syslogs []io.Writer // one line a message, facility log_facility
	for _, dest := range cfg.LogDest {
		kind, arg, _ := strings.Cut(strings.TrimSpace(dest), " ")
		switch kind {
		case "stdout":
			streams = append(streams, stdout)
		case "stderr":
			streams = append(streams, stderr)
		case "file":
			f, err := os.OpenFile(strings.TrimSpace(arg), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
			if err != nil {
				closeAll(files)
				return nil, nil, fmt.Errorf("log_dest file: %w", err)
			}
			files = append(files, f)
		case "none":
			streams = append(streams, io.Discard)
		case "syslog":
			w, err := syslog.Dial(syslogNetwork, syslogAddr, syslog.Priority(cfg.LogFacility)|syslog.LOG_INFO, "mosquitto")
			if err != nil {
				// A box without a system logger: its lines go to stderr
				// rather than nowhere, and the first one says why.
				fmt.Fprintf(stderr, "log_dest syslog: no system logger (%v); logging to stderr\n", err)
				streams = append(streams, stderr)
				continue
			}
			syslogs = append(syslogs, w)
		}
	}
	if len(streams) == 0 && len(files) == 0 && len(syslogs) == 0 {
		streams = append(streams, stderr)
	}
	level := slog.LevelInfo
	for _, t := range cfg.LogType {
		if t == "debug" || t == "all" {
			level = slog.LevelDebug
		}
	}
	// Under the supervisor (its env says so) stdout and stderr lines are
	// stamped already: the broker leaves its own time out there, so a line
	// carries one timestamp. Files keep theirs.
	var handlers []slog.Handler
	if len(streams) > 0 {
		opts := &slog.HandlerOptions{Level: level, ReplaceAttr: ownTime(cfg)}
		if os.Getenv(TimestampedEnv) == "1" {
			opts.ReplaceAttr = dropTime
		}
		handlers = append(handlers, slog.NewTextHandler(io.MultiWriter(streams...), opts))
	}
	if len(files) > 0 {
		ws := make([]io.Writer, len(files))
		for i, f := range files {
			ws[i] = f
		}
		handlers = append(handlers, slog.NewTextHandler(io.MultiWriter(ws...), &slog.HandlerOptions{Level: level, ReplaceAttr: ownTime(cfg)}))
	}
	if len(syslogs) > 0 {
		// syslog stamps each message itself.
		handlers = append(handlers, slog.NewTextHandler(io.MultiWriter(syslogs...), &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}))
	}
	return slog.New(slog.NewMultiHandler(handlers...)), closerFunc(func() error { closeAll(files); return nil }), nil
}

// TimestampedEnv is the supervisor's mark that it stamps each line an app
// prints (supervisor.TimestampedEnv; the broker does not import the
// supervisor).
const TimestampedEnv = "GATEWAY_LOG_TIMESTAMPED"

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// ownTime applies log_timestamp false (no time) and log_timestamp_format
// (the owner's layout); nil leaves slog's own time.
func ownTime(cfg *mosquittoconf.Config) func([]string, slog.Attr) slog.Attr {
	if cfg.LogNoTimestamp {
		return dropTime
	}
	if cfg.LogTimestampLayout == "" {
		return nil
	}
	return func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.String(slog.TimeKey, a.Value.Time().Format(cfg.LogTimestampLayout))
		}
		return a
	}
}

// syslogNetwork and syslogAddr are where log_dest syslog writes: ""
// means the system's logger (/dev/log). Tests point them at a socket.
var syslogNetwork, syslogAddr = "", ""

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
