package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// NewLogger builds the broker's logger from log_dest and log_type:
// stdout, stderr and `file PATH` are written to (stderr when none is set,
// as Mosquitto in the foreground); `none` silences; log_type debug or all
// lowers the level to debug. The returned closer closes any log file.
func NewLogger(cfg *mosquittoconf.Config, stdout, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	var outs []io.Writer
	var files []*os.File
	for _, dest := range cfg.LogDest {
		kind, arg, _ := strings.Cut(strings.TrimSpace(dest), " ")
		switch kind {
		case "stdout":
			outs = append(outs, stdout)
		case "stderr":
			outs = append(outs, stderr)
		case "file":
			f, err := os.OpenFile(strings.TrimSpace(arg), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
			if err != nil {
				closeAll(files)
				return nil, nil, fmt.Errorf("log_dest file: %w", err)
			}
			files = append(files, f)
			outs = append(outs, f)
		case "none":
			outs = append(outs, io.Discard)
		}
	}
	if len(outs) == 0 {
		outs = append(outs, stderr)
	}
	level := slog.LevelInfo
	for _, t := range cfg.LogType {
		if t == "debug" || t == "all" {
			level = slog.LevelDebug
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogNoTimestamp || cfg.LogTimestampLayout != "" {
		// log_timestamp false drops the time; log_timestamp_format writes it
		// in the owner's format.
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 || a.Key != slog.TimeKey {
				return a
			}
			if cfg.LogNoTimestamp {
				return slog.Attr{}
			}
			return slog.String(slog.TimeKey, a.Value.Time().Format(cfg.LogTimestampLayout))
		}
	}
	h := slog.NewTextHandler(io.MultiWriter(outs...), opts)
	return slog.New(h), closerFunc(func() error { closeAll(files); return nil }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
