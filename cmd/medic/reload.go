package main

import (
	"context"
	"crypto/sha256"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/internal/logkeys"
	"github.com/medic-sre/medic/probes"
)

// reloader is the one owner of reloading. SIGHUP, POST /-/reload and (with
// --config.auto-reload) a change of the file's content all come here; a
// new config replaces the running one only when it is valid, and only
// what changed is updated: a file whose bytes are those of the running
// config, or that decodes to the same config, changes nothing and starts
// no AWS call.
type reloader struct {
	file     string
	interval time.Duration // file checks; 0: never
	ctrl     *controller.Controller
	notifier notificationsUpdater
	limits   limitsUpdater
	logger   log.Logger
	requests chan chan reloadResult
	success  prometheus.Gauge
	lastOK   prometheus.Gauge

	// Owned by the run goroutine once it starts.
	applied [32]byte // hash of the file the running config came from
	seen    [32]byte // hash of the file last read, valid or not
}

// reloadResult is what a reload did: changed says whether the running
// config was replaced; err holds the problems of a refused file.
type reloadResult struct {
	changed bool
	err     error
}

// The parts a reload updates besides the controller.
type (
	notificationsUpdater interface {
		Update(config.Notifications) error
	}
	limitsUpdater interface{ Update(config.Limits, []string) }
)

func newReloader(file string, interval time.Duration, ctrl *controller.Controller, n notificationsUpdater,
	lim limitsUpdater, logger log.Logger, reg prometheus.Registerer) *reloader {
	r := &reloader{
		file: file, interval: interval, ctrl: ctrl, notifier: n, limits: lim,
		logger:   log.With(logger, logkeys.Component, "reload"),
		requests: make(chan chan reloadResult),
		success: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medic_config_last_reload_successful",
			Help: "1 if the last configuration reload was valid and applied."}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medic_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully."}),
	}
	r.success.Set(1)
	r.lastOK.SetToCurrentTime()
	r.applied = fileSum(file)
	r.seen = r.applied
	reg.MustRegister(r.success, r.lastOK)
	return r
}

// reload asks the owner goroutine to reload and waits for the result:
// whether the running config changed, and the problems of a refused file.
func (r *reloader) reload(ctx context.Context) (changed bool, err error) {
	done := make(chan reloadResult, 1)
	select {
	case r.requests <- done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case res := <-done:
		return res.changed, res.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if r.interval > 0 {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.apply("SIGHUP")
		case done := <-r.requests:
			done <- r.apply("/-/reload")
		case <-tick:
			// A file that changed since it was last read, valid or not: a
			// refused file is not read again until it changes.
			if s := fileSum(r.file); s != r.seen {
				r.apply("file change")
			}
		}
	}
}

// apply reads the file and, when it differs from the running config and is
// valid, applies it.
func (r *reloader) apply(trigger string) reloadResult {
	data, err := config.ReadFile(r.file)
	sum := sha256.Sum256(data)
	r.seen = sum
	if err == nil && sum == r.applied {
		r.success.Set(1) // the file is the running config again
		level.Debug(r.logger).Log(logkeys.Msg, "config file unchanged; nothing to reload", "trigger", trigger)
		return reloadResult{}
	}
	var cfg *config.Config
	if err == nil {
		cfg, err = config.Parse(data, r.file, probes.Names())
	}
	if err != nil {
		r.success.Set(0)
		level.Error(r.logger).Log(logkeys.Msg, "config reload refused; the running config stays",
			"trigger", trigger, "problems", strings.Count(err.Error(), "\n")+1, logkeys.Err, err)
		return reloadResult{err: err}
	}
	old := r.ctrl.Config()
	if sameConfig(old, cfg) {
		r.applied = sum
		r.success.Set(1)
		r.lastOK.SetToCurrentTime()
		level.Info(r.logger).Log(logkeys.Msg, "config file changed but means the same; nothing to reload", "trigger", trigger)
		return reloadResult{}
	}
	if old.Global.Region != cfg.Global.Region {
		level.Warn(r.logger).Log(logkeys.Msg, "global.region changed; it takes effect only after a restart",
			"running", old.Global.Region, "new", cfg.Global.Region)
	}
	if !reflect.DeepEqual(old.Global.Lease, cfg.Global.Lease) {
		level.Warn(r.logger).Log(logkeys.Msg, "global.lease changed; it takes effect only after a restart")
	}
	if !reflect.DeepEqual(old.Notifications, cfg.Notifications) {
		if err := r.notifier.Update(cfg.Notifications); err != nil {
			r.success.Set(0)
			level.Error(r.logger).Log(logkeys.Msg, "config reload refused: notifications", "trigger", trigger, logkeys.Err, err)
			return reloadResult{err: err}
		}
	}
	logWarnings(r.logger, cfg)
	r.ctrl.Apply(cfg)
	if !reflect.DeepEqual(old.Limits, cfg.Limits) || !slices.Equal(old.Groups(), cfg.Groups()) {
		r.limits.Update(cfg.Limits, cfg.Groups())
	}
	r.applied = sum
	r.success.Set(1)
	r.lastOK.SetToCurrentTime()
	level.Info(r.logger).Log(logkeys.Msg, "config reloaded", "trigger", trigger, "services", len(cfg.Services))
	return reloadResult{changed: true}
}

// sameConfig reports whether two configs mean the same, whatever the file
// they came from looked like (comments, order of keys, anchors).
func sameConfig(a, b *config.Config) bool {
	x, y := *a, *b
	x.File, y.File, x.Warnings, y.Warnings = "", "", nil, nil
	return reflect.DeepEqual(x, y)
}

// fileSum is the hash of the file's content as the reloader reads it; a
// missing file sums as empty.
func fileSum(path string) [32]byte {
	data, _ := config.ReadFile(path)
	return sha256.Sum256(data)
}
