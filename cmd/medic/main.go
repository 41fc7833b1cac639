// Command medic is a service-level health monitor and self-healing
// controller for services on AWS. main wires the parts together; the
// decisions live in the healer, probes, limits and alerts packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/awsapi"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/internal/logkeys"
	"github.com/medic-sre/medic/lease"
	"github.com/medic-sre/medic/limits"
	"github.com/medic-sre/medic/probes"
	"github.com/medic-sre/medic/statuspage"
)

// version and revision are set at build time with -ldflags -X.
var (
	version  = "dev"
	revision = ""
)

// shutdownTimeout bounds a clean exit after SIGTERM/SIGINT.
const shutdownTimeout = 4 * time.Second

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type flags struct {
	configFile    string
	configCheck   bool
	dryRun        bool
	listenAddress string
	webConfigFile string
	logLevel      string
	logFormat     string
	version       bool
	debugPprof    bool
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("medic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configFile, "config.file", "medic.yml", "medic configuration file.")
	fs.BoolVar(&f.configCheck, "config.check", false, "Validate the configuration file, print every problem, and exit.")
	fs.BoolVar(&f.dryRun, "dry-run", false, "Decide and report, but never call a mutating AWS API.")
	fs.StringVar(&f.listenAddress, "web.listen-address", ":9717", "Address to serve metrics, health and the status page on.")
	fs.StringVar(&f.webConfigFile, "web.config.file", "", "Path to a web configuration file enabling TLS or basic authentication (exporter-toolkit format).")
	fs.StringVar(&f.logLevel, "log.level", "info", "Only log messages at or above this level: debug, info, warn, error.")
	fs.StringVar(&f.logFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	fs.BoolVar(&f.version, "version", false, "Print version information and exit.")
	fs.BoolVar(&f.debugPprof, "debug.pprof", false, "Serve Go's profiling endpoints at /debug/pprof/ (off by default; for diagnosing medic itself).")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if f.logFormat != "logfmt" && f.logFormat != "json" {
		return f, fmt.Errorf("--log.format: %q is not logfmt or json", f.logFormat)
	}
	if _, err := levelOption(f.logLevel); err != nil {
		return f, err
	}
	return f, nil
}

func levelOption(s string) (level.Option, error) {
	switch s {
	case "debug":
		return level.AllowDebug(), nil
	case "info":
		return level.AllowInfo(), nil
	case "warn":
		return level.AllowWarn(), nil
	case "error":
		return level.AllowError(), nil
	}
	return nil, fmt.Errorf("--log.level: %q is not debug, info, warn or error", s)
}

func versionString() string {
	rev := revision
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("medic version %s (revision %s, %s)", version, rev, runtime.Version())
}

func run(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "medic:", err)
		return 2
	}
	if f.version {
		fmt.Fprintln(stdout, versionString())
		return 0
	}

	cfg, err := config.Load(f.configFile, probes.Names())
	if f.configCheck {
		if err == nil && f.webConfigFile != "" {
			err = web.Validate(f.webConfigFile)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK (%d services)\n", f.configFile, len(cfg.Services))
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}

	lvl, _ := levelOption(f.logLevel)
	base := log.With(newLogger(stderr, f.logFormat, lvl), logkeys.Environment, cfg.Global.Environment)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(buildInfo())

	awsCfg, id, err := awsapi.LoadConfig(ctx, awsapi.Options{Region: cfg.Global.Region, Logger: base, Registerer: reg})
	if err != nil {
		level.Error(base).Log(logkeys.Msg, "cannot set up AWS access", logkeys.Err, err)
		return 1
	}
	logger := log.With(base, logkeys.Region, awsCfg.Region, logkeys.SelfAZ, id.AZ, logkeys.SelfInstanceID, id.InstanceID)
	level.Info(logger).Log(logkeys.Msg, "starting medic", "version", version, "config", f.configFile, logkeys.DryRun, f.dryRun)

	asg := autoscaling.NewFromConfig(awsCfg)
	act, lse := actuator(f.dryRun, cfg.Global.Lease, asg, awsCfg, id, logger, reg)
	notifier, err := alerts.NewDispatcher(alerts.Options{Config: cfg.Notifications, AWS: &awsCfg,
		Logger: logger, Registerer: reg})
	if err != nil {
		level.Error(logger).Log(logkeys.Msg, "cannot set up notifications", logkeys.Err, err)
		return 1
	}
	var page *statuspage.Page // fed every cycle's report, for its recent-events list
	ctrl := controller.New(controller.Options{
		Config: cfg,
		Discoverer: discovery.New(discovery.Options{ASG: asg, EC2: ec2.NewFromConfig(awsCfg),
			ELB: elasticloadbalancingv2.NewFromConfig(awsCfg), Logger: logger, Registerer: reg}),
		Actuator:   act,
		Notifier:   notifier,
		Logger:     logger,
		Registerer: reg,
		OnReport:   func(service string, rep healer.Report, at time.Time) { page.Observe(service, rep, at) },
	})

	watcher := limits.New(limits.Options{Config: cfg.Limits, AWS: awsCfg, Logger: logger, Registerer: reg,
		Notifier: notifier, DryRun: f.dryRun, Groups: cfg.Groups()})

	page = statuspage.New(ctrl, logger, statuspage.WithLimits(watcher))
	rl := newReloader(f.configFile, ctrl, notifier, watcher, logger, reg)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "medic_ready", Help: "1 when /-/ready answers 200: a config is loaded and the fleet was read recently."},
		func() float64 {
			if ok, _ := ctrl.Ready(); ok {
				return 1
			}
			return 0
		}))

	ln, err := net.Listen("tcp", f.listenAddress)
	if err != nil {
		level.Error(logger).Log(logkeys.Msg, "cannot listen", "address", f.listenAddress, logkeys.Err, err)
		return 1
	}
	srv := &http.Server{Handler: routes(ctrl, page, rl, reg, f.debugPprof), ReadHeaderTimeout: 10 * time.Second}
	level.Info(logger).Log(logkeys.Msg, "listening", "address", ln.Addr().String())

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Add(5)
	go func() {
		defer wg.Done()
		wf := f.webConfigFile
		err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &wf}, slogger(logger))
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	go func() { defer wg.Done(); _ = ctrl.Run(ctx) }()
	go func() { defer wg.Done(); _ = notifier.Run(ctx) }()
	go func() { defer wg.Done(); rl.run(ctx) }()
	go func() { defer wg.Done(); _ = watcher.Run(ctx) }()

	// The lease outlives the loops that act, so that no action starts after
	// it is released.
	leaseCtx, leaseCancel := context.WithCancel(context.Background())
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		if lse != nil {
			_ = lse.Run(leaseCtx)
		}
	}()

	code := 0
	select {
	case <-ctx.Done():
		level.Info(logger).Log(logkeys.Msg, "shutting down")
	case err := <-serveErr:
		level.Error(logger).Log(logkeys.Msg, "web server failed", logkeys.Err, err)
		code = 1
		stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx)
	done := make(chan struct{})
	go func() { wg.Wait(); leaseCancel(); <-leaseDone; close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		level.Warn(logger).Log(logkeys.Msg, "some loops did not stop in time; exiting anyway")
	}
	level.Info(logger).Log(logkeys.Msg, "stopped")
	return code
}

// actuator builds what marks instances: nothing at all under --dry-run;
// with a lease, the AWS actuator while this replica leads and the dry-run
// one while it stands by; else the AWS actuator. The lease is nil unless
// global.lease is set.
func actuator(dryRun bool, lc *config.Lease, asg *autoscaling.Client, awsCfg aws.Config, id awsapi.Identity,
	logger log.Logger, reg prometheus.Registerer) (healer.Actuator, *lease.Lease) {
	alog := log.With(logger, logkeys.Component, "actuator")
	if dryRun {
		return healer.DryRun(alog), nil
	}
	act := healer.NewAWSActuator(asg, alog, 30*time.Second)
	if lc == nil {
		return act, nil
	}
	host, _ := os.Hostname()
	l := lease.New(lease.Options{
		Client: dynamodb.NewFromConfig(awsCfg), Table: lc.Table, Name: lc.Name,
		Holder:   lease.HolderID(id.InstanceID, host, os.Getpid()),
		Duration: lc.Duration.D(), RenewEvery: lc.RenewEvery.D(),
		Logger: logger, Registerer: reg,
	})
	return lease.Guarded(l, act, healer.DryRun(alog), alog), l
}

func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "medic_build_info", Help: "Always 1; the labels say which medic is running."},
		[]string{"version", "revision", "goversion"})
	rev := revision
	if rev == "" {
		rev = "unknown"
	}
	g.WithLabelValues(version, rev, runtime.Version()).Set(1)
	return g
}
