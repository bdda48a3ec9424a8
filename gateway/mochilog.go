package gateway

import (
	"context"
	"log/slog"
)

// mochiChatter are mochi's own start and stop lines. They repeat what the
// broker says itself ("listener open" names the protocol and TLS that
// "attached listener" leaves out) or say nothing an owner acts on, so they
// are shown at debug level only.
var mochiChatter = map[string]bool{
	"added hook":                 true,
	"stopping hook":              true,
	"attached listener":          true,
	"mochi mqtt starting":        true,
	"mochi mqtt server started":  true,
	"gracefully stopping server": true,
	"mochi mqtt server stopped":  true,
}

// quietMochi is the handler mochi logs through: its chatter is demoted to
// debug, everything else passes unchanged.
type quietMochi struct{ slog.Handler }

func (h quietMochi) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo && mochiChatter[r.Message] {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietMochi) WithAttrs(as []slog.Attr) slog.Handler {
	return quietMochi{h.Handler.WithAttrs(as)}
}

func (h quietMochi) WithGroup(name string) slog.Handler { return quietMochi{h.Handler.WithGroup(name)} }
