package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/internal/logkeys"
)

// loggers are the one base logger, built once: kit for medic's own lines
// (with the caller of each), bare for adapters that add the caller
// themselves (slogger).
type loggers struct {
	kit  log.Logger
	bare log.Logger
}

// newLoggers builds the base loggers: logfmt or JSON, filtered at lvl,
// with a UTC timestamp on every line.
func newLoggers(w io.Writer, format string, lvl level.Option) loggers {
	w = log.NewSyncWriter(w)
	var l log.Logger
	if format == "json" {
		l = log.NewJSONLogger(w)
	} else {
		l = log.NewLogfmtLogger(w)
	}
	// The filter goes under the context so that the caller is the line that logged.
	bare := log.With(level.NewFilter(l, lvl), logkeys.TS, log.DefaultTimestampUTC)
	return loggers{kit: log.With(bare, logkeys.Caller, log.DefaultCaller), bare: bare}
}

// slogger adapts a go-kit logger for libraries that take a *slog.Logger
// (the exporter-toolkit web server), so that their lines are ours: the
// same keys, level filter and format, the caller of the slog call, and
// values of their own types (numbers stay numbers in JSON). l must not
// have a caller valuer of its own: see loggers.bare.
func slogger(l log.Logger) *slog.Logger { return slog.New(kitHandler{l: l}) }

// kitHandler is a slog.Handler writing to a go-kit logger.
type kitHandler struct {
	l      log.Logger
	attrs  []any  // from WithAttrs, already flattened
	prefix string // from WithGroup: "group." for the keys that follow
}

// Enabled lets every record through: the go-kit level filter decides.
func (h kitHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h kitHandler) Handle(_ context.Context, r slog.Record) error {
	kv := make([]any, 0, 6+len(h.attrs)+2*r.NumAttrs())
	kv = append(kv, logkeys.Caller, caller(r.PC), logkeys.Msg, r.Message)
	kv = append(kv, h.attrs...)
	r.Attrs(func(a slog.Attr) bool { kv = appendAttr(kv, h.prefix, a); return true })
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
	n := h
	n.attrs = append([]any(nil), h.attrs...)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return n
}

func (h kitHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := h
	n.prefix = h.prefix + name + "."
	return n
}

// appendAttr appends a's key (under prefix) and value, typed: strings,
// numbers, booleans, durations, times and errors as themselves, groups
// flattened ("group.key").
func appendAttr(kv []any, prefix string, a slog.Attr) []any {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			kv = appendAttr(kv, p, g)
		}
		return kv
	}
	if a.Key == "" && v.Any() == nil {
		return kv // an empty Attr is ignored, as slog says
	}
	return append(kv, prefix+a.Key, v.Any())
}

// caller formats the source line of pc as go-kit's DefaultCaller does
// ("file.go:42"); "" when unknown.
func caller(pc uintptr) string {
	if pc == 0 {
		return ""
	}
	f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	if f.File == "" {
		return ""
	}
	return filepath.Base(f.File) + ":" + strconv.Itoa(f.Line)
}
