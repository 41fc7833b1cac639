package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/signal"
	"reflect"
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

// fileCheckInterval is how often the config file is checked for changes.
const fileCheckInterval = 5 * time.Second

// reloader is the one owner of reloading. SIGHUP, POST /-/reload and a
// change of the file's content all come here; a new config replaces the
// running one only when it is valid.
type reloader struct {
	file     string
	ctrl     *controller.Controller
	notifier notificationsUpdater
	limits   limitsUpdater
	logger   log.Logger
	requests chan chan error
	success  prometheus.Gauge
	lastOK   prometheus.Gauge
	sum      [32]byte
}

// The parts a reload updates besides the controller.
type (
	notificationsUpdater interface {
		Update(config.Notifications) error
	}
	limitsUpdater interface{ Update(config.Limits, []string) }
)

func newReloader(file string, ctrl *controller.Controller, n notificationsUpdater, lim limitsUpdater,
	logger log.Logger, reg prometheus.Registerer) *reloader {
	r := &reloader{
		file: file, ctrl: ctrl, notifier: n, limits: lim,
		logger:   log.With(logger, logkeys.Component, "reload"),
		requests: make(chan chan error),
		success: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medic_config_last_reload_successful",
			Help: "1 if the last configuration reload was valid and applied."}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medic_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully."}),
	}
	r.success.Set(1)
	r.lastOK.SetToCurrentTime()
	r.sum = fileSum(file)
	reg.MustRegister(r.success, r.lastOK)
	return r
}

// reload asks the owner goroutine to reload and waits for the result.
func (r *reloader) reload(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case r.requests <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(fileCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = r.apply("SIGHUP")
		case done := <-r.requests:
			done <- r.apply("/-/reload")
		case <-tick.C:
			if s := fileSum(r.file); !bytes.Equal(s[:], r.sum[:]) {
				_ = r.apply("file change")
			}
		}
	}
}

func (r *reloader) apply(trigger string) error {
	r.sum = fileSum(r.file)
	cfg, err := config.Load(r.file, probes.Names())
	if err != nil {
		r.success.Set(0)
		level.Error(r.logger).Log(logkeys.Msg, "config reload refused; the running config stays",
			"trigger", trigger, "problems", strings.Count(err.Error(), "\n")+1, logkeys.Err, err)
		return err
	}
	if old := r.ctrl.Config(); old.Global.Region != cfg.Global.Region {
		level.Warn(r.logger).Log(logkeys.Msg, "global.region changed; it takes effect only after a restart",
			"running", old.Global.Region, "new", cfg.Global.Region)
	}
	if old := r.ctrl.Config(); !reflect.DeepEqual(old.Global.Lease, cfg.Global.Lease) {
		level.Warn(r.logger).Log(logkeys.Msg, "global.lease changed; it takes effect only after a restart")
	}
	if err := r.notifier.Update(cfg.Notifications); err != nil {
		r.success.Set(0)
		level.Error(r.logger).Log(logkeys.Msg, "config reload refused: notifications", "trigger", trigger, logkeys.Err, err)
		return err
	}
	r.ctrl.Apply(cfg)
	r.limits.Update(cfg.Limits, cfg.Groups())
	r.success.Set(1)
	r.lastOK.SetToCurrentTime()
	level.Info(r.logger).Log(logkeys.Msg, "config reloaded", "trigger", trigger, "services", len(cfg.Services))
	return nil
}

// fileSum is the file's content hash; a missing file sums to zeros.
func fileSum(path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(b)
}
