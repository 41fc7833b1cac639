package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/internal/logkeys"
)

// newLogger builds the one base logger: logfmt or JSON, filtered at lvl,
// with a UTC timestamp and the caller on every line.
func newLogger(w io.Writer, format string, lvl level.Option) log.Logger {
	w = log.NewSyncWriter(w)
	var l log.Logger
	if format == "json" {
		l = log.NewJSONLogger(w)
	} else {
		l = log.NewLogfmtLogger(w)
	}
	// The filter goes under the context so that the caller is the line that logged.
	return log.With(level.NewFilter(l, lvl), logkeys.TS, log.DefaultTimestampUTC, logkeys.Caller, log.DefaultCaller)
}

// slogger adapts the go-kit logger for libraries that take a *slog.Logger
// (the exporter-toolkit web server), so their lines look like ours.
func slogger(l log.Logger) *slog.Logger { return slog.New(kitHandler{l: l}) }

type kitHandler struct {
	l     log.Logger
	attrs []any
}

func (h kitHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h kitHandler) Handle(_ context.Context, r slog.Record) error {
	kv := append([]any{logkeys.Msg, r.Message}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool { kv = append(kv, a.Key, a.Value.String()); return true })
	l := h.l
	switch {
	case r.Level >= slog.LevelError:
		l = level.Error(l)
	case r.Level >= slog.LevelWarn:
		l = level.Warn(l)
	case r.Level >= slog.LevelInfo:
		l = level.Info(l)
	default:
		l = level.Debug(l)
	}
	return l.Log(kv...)
}

func (h kitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := kitHandler{l: h.l, attrs: append([]any(nil), h.attrs...)}
	for _, a := range as {
		n.attrs = append(n.attrs, a.Key, a.Value.String())
	}
	return n
}

func (h kitHandler) WithGroup(string) slog.Handler { return h }
