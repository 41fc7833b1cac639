// Command medic is a service-level health monitor and self-healing
// controller for services on AWS. main wires the parts together; the
// decisions live in the healer, probes, limits and alerts packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/arczonalshift"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

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

// shutdownTimeout bounds a clean exit after SIGTERM/SIGINT.
const shutdownTimeout = 4 * time.Second

// defaultListenAddress is medic's port in Prometheus's default port
// allocation list.
const defaultListenAddress = ":9717"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// init names the version of a build without -ldflags (make build sets
// github.com/prometheus/common/version's variables): the module version Go
// recorded, else "dev". The revision of such a build comes from Go's VCS
// stamp, read by the version package itself.
func init() {
	if version.Version != "" {
		return
	}
	version.Version = "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version.Version = bi.Main.Version
	}
}

// flags is medic's command line, Prometheus style (see parseFlags).
type flags struct {
	configFile         string
	configCheck        bool
	autoReload         bool
	autoReloadInterval time.Duration
	dryRun             bool
	web                *web.FlagConfig
	externalURL        *url.URL
	routePrefix        string // "" or "/path", never a trailing slash
	logLevel           string
	logFormat          string
	debugPprof         bool
}

// parseFlags reads the command line with kingpin, the way Prometheus and
// its exporters do: the web flags are exporter-toolkit's (repeatable
// --web.listen-address, --web.systemd-socket, --web.config.file). exit is
// -1 to go on, else the code to exit with (after --help or --version, or
// 2 after a usage error, which is printed).
func parseFlags(args []string, stdout, stderr io.Writer) (f flags, exit int) {
	app := kingpin.New("medic", "Service-level health monitor and self-healing controller for services on AWS.")
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	exit = -1
	app.Terminate(func(code int) { exit = code })
	app.Version(version.Print("medic"))
	app.HelpFlag.Short('h')

	app.Flag("config.file", "medic configuration file.").Default("medic.yml").StringVar(&f.configFile)
	app.Flag("config.check", "Validate the configuration file (and --web.config.file), print every problem, and exit.").BoolVar(&f.configCheck)
	app.Flag("config.auto-reload", "Reload the configuration file when its content changes (checked every --config.auto-reload-interval). SIGHUP and POST /-/reload always work.").BoolVar(&f.autoReload)
	app.Flag("config.auto-reload-interval", "How often --config.auto-reload checks the file.").Default("5s").DurationVar(&f.autoReloadInterval)
	app.Flag("dry-run", "Decide and report, but never call a mutating AWS API.").BoolVar(&f.dryRun)
	f.web = kingpinflag.AddFlags(app, defaultListenAddress)
	externalURL := app.Flag("web.external-url", "The URL under which medic is reachable from outside (behind a reverse proxy, say), used for links. Default: http://<hostname>:<port of the first listen address>/. Its path is the default of --web.route-prefix.").PlaceHolder("<url>").String()
	routePrefix := app.Flag("web.route-prefix", "Prefix of every endpoint (/metrics, /-/reload, the status page). Default: the path of --web.external-url.").PlaceHolder("<path>").String()
	app.Flag("log.level", "Only log messages at or above this level: debug, info, warn or error.").Default("info").EnumVar(&f.logLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").EnumVar(&f.logFormat, "logfmt", "json")
	app.Flag("debug.pprof", "Serve Go's profiling endpoints at /debug/pprof/ (off by default; for diagnosing medic itself).").BoolVar(&f.debugPprof)

	_, err := app.Parse(args)
	if exit >= 0 {
		return f, exit
	}
	if err == nil && f.autoReload && f.autoReloadInterval <= 0 {
		err = fmt.Errorf("--config.auto-reload-interval must be positive, got %s", f.autoReloadInterval)
	}
	if err == nil {
		f.externalURL, f.routePrefix, err = webURLs(*externalURL, *routePrefix, (*f.web.WebListenAddresses)[0])
	}
	if err != nil {
		fmt.Fprintln(stderr, "medic:", err)
		return f, 2
	}
	return f, -1
}

// webURLs computes the external URL (default http://HOSTNAME:PORT/, the
// port of the first listen address) and the route prefix (default the
// external URL's path), as Prometheus does. The prefix comes back as ""
// for the root, else "/path" without a trailing slash.
func webURLs(external, prefix, firstListen string) (*url.URL, string, error) {
	if external == "" {
		host, _ := os.Hostname()
		_, port, err := net.SplitHostPort(firstListen)
		if err != nil || host == "" {
			host = "localhost"
		}
		if port == "" || port == "0" {
			port = strings.TrimPrefix(defaultListenAddress, ":")
		}
		external = "http://" + net.JoinHostPort(host, port) + "/"
	}
	u, err := url.Parse(external)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("--web.external-url: %q is not an absolute http or https URL", external)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, "", fmt.Errorf("--web.external-url: %q must not hold credentials, a query or a fragment", u.Redacted())
	}
	if prefix == "" {
		prefix = u.Path
	}
	prefix = "/" + strings.Trim(prefix, "/")
	if prefix == "/" {
		prefix = ""
	}
	return u, prefix, nil
}

func levelOption(s string) level.Option {
	switch s {
	case "debug":
		return level.AllowDebug()
	case "warn":
		return level.AllowWarn()
	case "error":
		return level.AllowError()
	}
	return level.AllowInfo()
}

func run(args []string, stdout, stderr io.Writer) int {
	f, exit := parseFlags(args, stdout, stderr)
	if exit >= 0 {
		return exit
	}

	cfg, err := config.Load(f.configFile, probes.Names())
	if f.configCheck {
		if err == nil && *f.web.WebConfigFile != "" {
			err = web.Validate(*f.web.WebConfigFile)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		fmt.Fprintf(stdout, "%s: OK (%d services)\n", f.configFile, len(cfg.Services))
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}

	logs := newLoggers(stderr, f.logFormat, levelOption(f.logLevel))
	base := log.With(logs.kit, logkeys.Environment, cfg.Global.Environment)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(versioncollector.NewCollector("medic"))

	awsCfg, id, err := awsapi.LoadConfig(ctx, awsapi.Options{Region: cfg.Global.Region, Logger: base, Registerer: reg})
	if err != nil {
		level.Error(base).Log(logkeys.Msg, "cannot set up AWS access", logkeys.Err, err)
		return 1
	}
	scope := []any{logkeys.Environment, cfg.Global.Environment, logkeys.Region, awsCfg.Region, logkeys.SelfAZ, id.AZ, logkeys.SelfInstanceID, id.InstanceID}
	logger := log.With(logs.kit, scope...)
	level.Info(logger).Log(logkeys.Msg, "starting medic", "version", version.Version, "revision", version.GetRevision(),
		"branch", version.Branch, "config", f.configFile, logkeys.DryRun, f.dryRun)
	logWarnings(logger, cfg)

	asg := autoscaling.NewFromConfig(awsCfg)
	act, lse := actuator(f.dryRun, cfg.Global.Lease, asg, awsCfg, id, logger, reg)
	notifier, err := alerts.NewDispatcher(alerts.Options{Config: cfg.Notifications, AWS: &awsCfg,
		Logger: logger, Registerer: reg, ExternalURL: f.externalURL.String(), Leads: leads(lse)})
	if err != nil {
		level.Error(logger).Log(logkeys.Msg, "cannot set up notifications", logkeys.Err, err)
		return 1
	}
	var watcher *limits.Watcher // set below, before anything runs
	ec2c := ec2.NewFromConfig(awsCfg)
	ctrl := controller.New(controller.Options{
		Config: cfg,
		Discoverer: discovery.New(discovery.Options{ASG: asg, EC2: ec2c,
			ELB: elasticloadbalancingv2.NewFromConfig(awsCfg), Logger: logger, Registerer: reg}),
		Actuator:     act,
		Notifier:     notifier,
		Logger:       logger,
		Registerer:   reg,
		Preflight:    controller.NewPreflightFacts(ec2c, asg, func() limits.Snapshot { return watcher.Snapshot() }),
		ZonalShifter: zonalShifter(arczonalshift.NewFromConfig(awsCfg), f.dryRun, lse, logger),
		Zones:        ec2c,
		Leads:        leads(lse),
	})

	watcher = limits.New(limits.Options{Config: cfg.Limits, AWS: awsCfg, Logger: logger, Registerer: reg,
		Notifier: notifier, DryRun: f.dryRun, Groups: cfg.Groups()})

	page := statuspage.New(ctrl, logger, statuspage.WithLimits(watcher))
	interval := time.Duration(0)
	if f.autoReload {
		interval = f.autoReloadInterval
	}
	rl := newReloader(f.configFile, interval, ctrl, notifier, watcher, logger, reg)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "medic_ready", Help: "1 when /-/ready answers 200: a config is loaded and the fleet was read recently."},
		func() float64 {
			if ok, _ := ctrl.Ready(); ok {
				return 1
			}
			return 0
		}))

	listeners, err := listen(f.web)
	if err != nil {
		level.Error(logger).Log(logkeys.Msg, "cannot listen", logkeys.Err, err)
		return 1
	}
	// Probes never reach medic's own endpoints (/-/reload among them).
	own := make([]net.Addr, 0, len(listeners))
	for _, ln := range listeners {
		own = append(own, ln.Addr())
	}
	if err := probes.SetOwnAddresses(own...); err != nil {
		level.Warn(logger).Log(logkeys.Msg, "cannot add the listen addresses to the probes' deny list", logkeys.Err, err)
	}
	srv := newServer(routes(f.routePrefix, ctrl, page, newReloadHandler(rl.reload, f.externalURL), reg, f.debugPprof))
	for _, ln := range listeners {
		level.Info(logger).Log(logkeys.Msg, "listening", "address", ln.Addr().String(),
			"external_url", f.externalURL.String(), "route_prefix", f.routePrefix)
	}

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Add(5)
	go func() {
		defer wg.Done()
		err := web.ServeMultiple(listeners, srv, f.web, slogger(log.With(logs.bare, append(scope, logkeys.Component, "web")...)))
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

// logWarnings logs what the config loader found risky but allowed.
func logWarnings(logger log.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		level.Warn(logger).Log(logkeys.Msg, "config warning", "warning", w)
	}
}

// actuator builds what marks instances: nothing at all under --dry-run;
// with a lease, the AWS actuator while this replica leads (fenced by the
// lease generation) and a standby report otherwise; else the AWS actuator. The lease is nil unless
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
	return healer.LeaderOnly(act, l, alog), l
}

// leads reports whether this replica leads: with a lease, while it holds
// it; without one (or in a dry run), always. Only the leader notifies
// conditions (controller.Options.Leads) and keeps their Alertmanager
// alerts alive (alerts.Options.Leads).
func leads(l *lease.Lease) func() bool {
	if l == nil {
		return nil
	}
	return l.IsLeader
}

// zonalShifter is the ARC client: behind the dry-run wrapper with
// --dry-run; with a lease, starting and cancelling only while this replica
// leads.
func zonalShifter(c *arczonalshift.Client, dryRun bool, l *lease.Lease, logger log.Logger) healer.ZonalShifter {
	switch {
	case dryRun:
		return healer.DryRunZonalShifter(c, logger)
	case l != nil:
		return healer.LeaderOnlyZonal(c, l)
	}
	return c
}
