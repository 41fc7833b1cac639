package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// TestSlogger: lines a library logs through slog come out as medic's own:
// same format and level filter, the caller of the slog call, typed values,
// groups flattened.
func TestSlogger(t *testing.T) {
	var buf strings.Builder
	logs := newLoggers(&buf, "json", level.AllowInfo())
	l := slogger(log.With(logs.bare, "component", "web")).With("server", "main").WithGroup("tls")

	_, _, line, _ := runtime.Caller(0)
	l.Info("Listening on", "address", "127.0.0.1:9717", "port", 9717, "ok", true, "took", 1500*time.Millisecond,
		slog.Group("cert", "days_left", 30), "err", errors.New("boom"))
	l.Debug("filtered out")
	l.Warn("warned")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (debug filtered):\n%s", len(lines), buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"msg": "Listening on", "level": "info", "component": "web", "server": "main",
		"caller":      "log_test.go:" + strconv.Itoa(line+1),
		"tls.address": "127.0.0.1:9717", "tls.port": float64(9717), "tls.ok": true, "tls.took": "1.5s",
		"tls.cert.days_left": float64(30), "tls.err": "boom",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if _, ok := got["ts"]; !ok {
		t.Error("no ts")
	}
	if !strings.Contains(lines[1], `"level":"warn"`) {
		t.Errorf("warn line = %s", lines[1])
	}
}

// TestLoggerCaller: medic's own lines name the line that logged.
func TestLoggerCaller(t *testing.T) {
	var buf strings.Builder
	l := log.With(newLoggers(&buf, "logfmt", level.AllowInfo()).kit, "environment", "test")
	_, _, line, _ := runtime.Caller(0)
	level.Info(l).Log("msg", "hello")
	if want := "caller=log_test.go:" + strconv.Itoa(line+1); !strings.Contains(buf.String(), want) {
		t.Errorf("line %q does not hold %q", buf.String(), want)
	}
}
