// Package limits warns before AWS says no: it measures quota headroom and
// time to exhaustion, checks that watched Auto Scaling groups can grow to
// their MaxSize within quotas, optionally files quota-increase requests,
// and pre-warms load balancers with capacity reservations ahead of ramps
// and scheduled events. See docs/limits.md and docs/prewarm.md.
//
// A refresh gathers (I/O, in sources.go and prewarm.go), evaluates (pure,
// arith.go) and reports (Snapshot, metrics, notifications). Metrics are
// built at scrape time from the last Snapshot.
package limits

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// Options configures a Watcher.
type Options struct {
	Config config.Limits
	// AWS is the SDK configuration the clients are built from.
	AWS        aws.Config
	Logger     log.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Notifier   alerts.Notifier       // nil: alerts.Discard
	// DryRun: no quota-increase requests and no capacity reservations are
	// made; what would be done is reported the same way.
	DryRun bool
	Now    func() time.Time
	// Groups are the Auto Scaling groups checked for scale-out feasibility.
	Groups []string
	// retryBackoff shortens the SDK retryer's waits (tests); nil: default.
	retryBackoff retry.BackoffDelayer
}

// defaultRetryBackoff is the retry backoff when Options has none: nil,
// the SDK's own (tests shorten it in TestMain).
var defaultRetryBackoff retry.BackoffDelayer

// Watcher refreshes quotas and pre-warm state in the background and keeps
// the last Snapshot.
type Watcher struct {
	logger   log.Logger
	notifier alerts.Notifier
	dryRun   bool
	now      func() time.Time
	c        clients
	call     *caller

	mu     sync.Mutex // guards cfg, groups and snap
	cfg    config.Limits
	groups []string
	snap   Snapshot
	reload chan struct{}

	refreshMu sync.Mutex         // one refresh at a time; guards the state below
	cwHist    map[string][]Point // AWS/Usage history by quota key
	descHist  map[string][]Point // describe figures by quota key
	cwRead    map[string]time.Time
	notified  map[string]string // condition key → last notified state
	lbState   map[string]*lbMemory
	// learned is the AWS/Usage metric Service Quotas names per quota.
	learned map[string]*config.UsageMetric
	// srcFailing is each failing source's last failure signature: a
	// failure is logged when it starts or changes, then only at debug.
	srcFailing map[string]string

	vcpuMu    sync.Mutex
	vcpuCache map[string]int
}

// New builds a Watcher. It makes no AWS call until Run or RefreshOnce.
func New(o Options) *Watcher {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Notifier == nil {
		o.Notifier = alerts.Discard{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	logger := log.With(o.Logger, logkeys.Component, "limits")
	if o.retryBackoff == nil {
		o.retryBackoff = defaultRetryBackoff
	}
	w := &Watcher{
		logger: logger, notifier: o.Notifier, dryRun: o.DryRun, now: o.Now,
		c:   newClients(o.AWS, logger, o.retryBackoff),
		cfg: o.Config, groups: append([]string(nil), o.Groups...),
		reload: make(chan struct{}, 1),
		cwHist: map[string][]Point{}, descHist: map[string][]Point{}, cwRead: map[string]time.Time{}, notified: map[string]string{},
		lbState: map[string]*lbMemory{}, vcpuCache: map[string]int{}, learned: map[string]*config.UsageMetric{}, srcFailing: map[string]string{},
	}
	w.call = &caller{sqPace: newPacer(o.Config.ServiceQuotasRPS)}
	if o.DryRun {
		w.c.increase = dryRunIncrease{w.c.increase}
		w.c.reservation = dryRunReservation{w.c.reservation, &sync.Map{}}
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(collector{w})
	}
	return w
}

// Run refreshes at once and then every Config.Interval until ctx ends. A
// failing source shows in the snapshot and metrics; Run itself only
// returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		w.RefreshOnce(ctx)
		w.mu.Lock()
		every := w.cfg.Interval.D()
		w.mu.Unlock()
		if every <= 0 {
			every = 5 * time.Minute
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-w.reload:
			t.Stop()
		case <-t.C:
		}
	}
}

// Update swaps in a reloaded config and group list; the next refresh (run
// at once when Run is running) uses them.
func (w *Watcher) Update(cfg config.Limits, groups []string) {
	w.mu.Lock()
	w.cfg = cfg
	w.groups = append([]string(nil), groups...)
	w.mu.Unlock()
	if cfg.ServiceQuotasRPS > 0 {
		w.call.sqPace.SetLimit(rate.Limit(cfg.ServiceQuotasRPS))
	}
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

// Snapshot returns the last refresh's result (zero before the first).
func (w *Watcher) Snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// Snapshot is one refresh: every quota, every watched group, every
// pre-warmed load balancer and how each source fared.
type Snapshot struct {
	At       time.Time
	Duration time.Duration
	// Calls is the number of AWS API calls (attempts) the refresh made.
	Calls         int64
	DryRun        bool
	Quotas        []QuotaStatus
	Groups        []GroupStatus
	LoadBalancers []PrewarmStatus
	Sources       []SourceStatus
}

// QuotaStatus is one quota's figures. Unknown figures have Known false and
// are not exported: no data is not zero.
type QuotaStatus struct {
	ServiceCode, Code, Name string
	Limit                   float64
	LimitKnown              bool
	// LimitSource: service_api, service_quotas, service_quotas_default or config.
	LimitSource string
	Usage       float64
	UsageKnown  bool
	// UsageSource: describe or cloudwatch.
	UsageSource string
	UsageAt     time.Time
	// Headroom is (limit-usage)/limit, valid when both are known and limit > 0.
	Headroom      float64
	HeadroomKnown bool
	State         State
	Warning       float64
	Critical      float64
	Forecast      Forecast
	Muted         bool
	Adjustable    bool
	// Request is the quota-increase request medic filed or found open.
	Request *IncreaseRequest
}

// Key is service_code/code.
func (q QuotaStatus) Key() string { return q.ServiceCode + "/" + q.Code }

// GroupStatus is one group's scale-out feasibility.
type GroupStatus struct {
	Name         string
	Current, Max int
	Feasibility
}

// RefreshOnce runs one full refresh now, stores and returns its Snapshot.
func (w *Watcher) RefreshOnce(ctx context.Context) Snapshot {
	w.refreshMu.Lock()
	defer w.refreshMu.Unlock()
	w.mu.Lock()
	cfg, groups := w.cfg, append([]string(nil), w.groups...)
	w.mu.Unlock()

	start := time.Now()
	now := w.now()
	before := w.call.calls.Load()
	defs, over := watched(cfg)
	for i := range defs {
		if defs[i].Metric == nil {
			defs[i].Metric = w.learned[defs[i].Key()]
		}
	}
	g := newGathered()
	runSources(ctx, w.sources(cfg, defs, groups, now), g, 4)

	for k, m := range g.usageMetric {
		w.learned[k] = m
	}
	quotas := w.evaluateQuotas(cfg, defs, over, g, now)
	gs := evaluateGroups(groups, g, quotas, w.vcpuSnapshot())
	if cfg.IncreaseRequests.Enabled {
		w.requestIncreases(ctx, cfg, quotas, g, now)
	}
	lbs := w.prewarm(ctx, cfg, g, now)

	sort.Slice(g.sources, func(i, j int) bool { return g.sources[i].Name < g.sources[j].Name })
	snap := Snapshot{At: now, Duration: time.Since(start), Calls: w.call.calls.Load() - before, DryRun: w.dryRun,
		Quotas: quotas, Groups: gs, LoadBalancers: lbs, Sources: g.sources}
	w.logSources(g.sources)
	w.notifyQuotas(cfg, quotas, now)
	w.notifyGroups(gs, now)
	w.mu.Lock()
	w.snap = snap
	w.mu.Unlock()
	level.Debug(w.logger).Log(logkeys.Msg, "limits refreshed", logkeys.Duration, snap.Duration, logkeys.Count, len(quotas))
	return snap
}

// logSources logs a source's failure when it starts or changes (warn), the
// same failure again only at debug, and its recovery (info).
func (w *Watcher) logSources(srcs []SourceStatus) {
	seen := map[string]bool{}
	for _, s := range srcs {
		seen[s.Name] = true
		prev, was := w.srcFailing[s.Name]
		switch {
		case s.OK && was:
			delete(w.srcFailing, s.Name)
			level.Info(w.logger).Log(logkeys.Msg, "limit source recovered", "source", s.Name)
		case !s.OK && (!was || prev != s.Sig):
			w.srcFailing[s.Name] = s.Sig
			level.Warn(w.logger).Log(logkeys.Msg, "limit source failed; logged again only when the failure changes", "source", s.Name, logkeys.Err, s.Err)
		case !s.OK:
			level.Debug(w.logger).Log(logkeys.Msg, "limit source still failing", "source", s.Name, logkeys.Err, s.Err)
		}
	}
	for name := range w.srcFailing {
		if !seen[name] {
			delete(w.srcFailing, name) // no longer run
		}
	}
}

func (w *Watcher) vcpuSnapshot() map[string]int {
	w.vcpuMu.Lock()
	defer w.vcpuMu.Unlock()
	m := make(map[string]int, len(w.vcpuCache))
	for k, v := range w.vcpuCache {
		m[k] = v
	}
	return m
}

// sources lists the readers a refresh needs: only those some watched
// quota, group or load balancer draws on.
func (w *Watcher) sources(cfg config.Limits, defs []QuotaDef, groups []string, now time.Time) []source {
	need := map[string]bool{}
	svcs := map[string]bool{}
	metric := false
	for _, d := range defs {
		need[d.Describe] = true
		svcs[d.ServiceCode] = true
		if d.Metric != nil {
			metric = true
		}
		if len(d.APILimit) > 0 {
			for i := range d.APILimit {
				if d.APILimit[i] == ':' {
					need["api:"+d.APILimit[:i]] = true
					break
				}
			}
		}
	}
	watch := map[string]bool{}
	for _, g := range groups {
		watch[g] = true
	}
	var s []source
	add := func(name string, ok bool, f func(context.Context, *gathered) error) {
		if ok {
			s = append(s, source{name, f})
		}
	}
	add("autoscaling_account_limits", need["api:autoscaling"], w.srcASGLimits)
	add("elbv2_account_limits", need["api:elbv2"], w.srcELBv2Limits)
	add("elb_account_limits", need["api:elb"], w.srcELBLimits)
	add("ec2_account_attributes", need["api:ec2"], w.srcEC2Attributes)
	codes := make([]string, 0, len(svcs))
	for c := range svcs {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		add("service_quotas_applied:"+c, true, w.srcSQApplied(c))
		add("service_quotas_default:"+c, true, w.srcSQDefault(c))
	}
	vcpu := false
	for k := range need {
		vcpu = vcpu || strings.HasPrefix(k, "ec2_vcpus_") || strings.HasPrefix(k, "ec2_spot_vcpus_")
	}
	add("ec2_describe_instances", vcpu, w.srcInstances)
	add("ec2_describe_addresses", need["ec2_elastic_ips"], w.srcAddresses)
	add("ec2_describe_launch_templates", need["ec2_launch_templates"], w.srcLaunchTemplates)
	ebs := false
	for k := range need {
		ebs = ebs || strings.HasPrefix(k, "ebs_")
	}
	add("ec2_describe_volumes_snapshots", ebs, w.srcEBS)
	add("autoscaling_describe_groups", need["asg_groups"] || len(groups) > 0, w.srcGroups(watch))
	add("autoscaling_describe_launch_configurations", need["asg_launch_configurations"] || len(groups) > 0, w.srcLaunchConfigurations)
	elb2 := len(groups) > 0
	for k := range need {
		elb2 = elb2 || strings.HasPrefix(k, "elbv2_")
	}
	add("elbv2_describe", elb2, w.srcELBv2(need["elbv2_listeners_per_alb"] || need["elbv2_rules_per_alb"]))
	add("elb_describe", need["elb_classic"] || need["elb_instances_per_classic"], w.srcELB)
	kinds := make([]string, 0, len(vpcReaders))
	for k := range vpcReaders {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		add("ec2_describe_"+k[4:], need[k], w.srcVPC(k))
	}
	add("cloudwatch_usage", metric, w.srcUsageMetrics(defs, now))
	return s
}

// cwSince is where the next AWS/Usage read of a quota starts: History ago
// on the first read, else a little before the last read.
func (w *Watcher) cwSince(key string, now time.Time) time.Time {
	w.mu.Lock()
	hist := w.cfg.History.D()
	w.mu.Unlock()
	if t, ok := w.cwRead[key]; ok {
		return t.Add(-15 * time.Minute)
	}
	return now.Add(-hist)
}

// evaluateQuotas resolves each quota's limit and usage from what was
// gathered, keeps the usage history and forecasts exhaustion.
func (w *Watcher) evaluateQuotas(cfg config.Limits, defs []QuotaDef, over map[string]config.Quota, g *gathered, now time.Time) []QuotaStatus {
	ok := map[string]bool{}
	for _, s := range g.sources {
		ok[s.Name] = s.OK
	}
	out := make([]QuotaStatus, 0, len(defs))
	for _, d := range defs {
		k := d.Key()
		q := QuotaStatus{ServiceCode: d.ServiceCode, Code: d.Code, Name: d.Name, Warning: cfg.Warning, Critical: cfg.Critical,
			Adjustable: g.adjustable[k]}
		// Limit: the most specific source wins — AWS default, then the
		// service's own API, then Service Quotas' applied value, then config.
		if v, found := g.sqDefault[k]; found {
			q.Limit, q.LimitKnown, q.LimitSource = v, true, "service_quotas_default"
		}
		if v, found := g.apiLimits[d.APILimit]; found && d.APILimit != "" {
			q.Limit, q.LimitKnown, q.LimitSource = v, true, "service_api"
		}
		if v, found := g.sqApplied[k]; found {
			q.Limit, q.LimitKnown, q.LimitSource = v, true, "service_quotas"
		}
		if o, found := over[k]; found {
			if o.Limit != nil {
				q.Limit, q.LimitKnown, q.LimitSource = *o.Limit, true, "config"
			}
			if o.Warning > 0 {
				q.Warning = o.Warning
			}
			if o.Critical > 0 {
				q.Critical = o.Critical
			}
			q.Muted = o.Mute
		}
		// History: AWS/Usage points when the quota has a metric with data,
		// else the describe figures this watcher recorded; never mixed.
		if d.Metric != nil && ok["cloudwatch_usage"] {
			w.cwRead[k] = now
			w.cwHist[k] = mergePoints(w.cwHist[k], g.metrics[k])
		}
		if v, found := g.usage[d.Describe]; found && d.Describe != "" {
			q.Usage, q.UsageKnown, q.UsageSource, q.UsageAt = v, true, "describe", now
			w.descHist[k] = mergePoints(w.descHist[k], []Point{{T: now, V: v}})
		} else if h := w.cwHist[k]; len(h) > 0 {
			if last := h[len(h)-1]; now.Sub(last.T) <= cfg.UsageMaxAge.D() {
				q.Usage, q.UsageKnown, q.UsageSource, q.UsageAt = last.V, true, "cloudwatch", last.T
			}
		}
		w.cwHist[k] = trimPoints(w.cwHist[k], now.Add(-cfg.History.D()))
		w.descHist[k] = trimPoints(w.descHist[k], now.Add(-cfg.History.D()))
		hist := w.cwHist[k]
		if len(hist) == 0 {
			hist = w.descHist[k]
		}
		q.Headroom, q.HeadroomKnown = HeadroomRatio(q.Usage, q.Limit)
		q.HeadroomKnown = q.HeadroomKnown && q.UsageKnown && q.LimitKnown
		q.State = ThresholdState(q.Usage, q.Limit, q.UsageKnown && q.LimitKnown, q.Warning, q.Critical)
		q.Forecast = TimeToExhaustion(hist, q.Usage, q.UsageKnown, q.Limit, q.LimitKnown, now, gatesOf(cfg))
		out = append(out, q)
	}
	return out
}

// gatesOf reads the forecast gates from config.
func gatesOf(cfg config.Limits) ForecastGates {
	return ForecastGates{Window: cfg.PeakWindow.D(), Span: cfg.TrendWindow.D(), MinPeaks: cfg.MinPeaks, MinRSquared: cfg.MinRSquared}
}

func mergePoints(a, b []Point) []Point {
	if len(b) == 0 {
		return a
	}
	byT := make(map[int64]float64, len(a)+len(b))
	for _, p := range a {
		byT[p.T.UnixNano()] = p.V
	}
	for _, p := range b {
		byT[p.T.UnixNano()] = p.V
	}
	out := make([]Point, 0, len(byT))
	for t, v := range byT {
		out = append(out, Point{T: time.Unix(0, t).UTC(), V: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T.Before(out[j].T) })
	return out
}

func trimPoints(p []Point, from time.Time) []Point {
	i := sort.Search(len(p), func(i int) bool { return !p[i].T.Before(from) })
	return p[i:]
}

// evaluateGroups decides, for each watched group, whether growing to
// MaxSize fits the vCPU quotas of what it may launch (On-Demand and Spot
// by its distribution), the free addresses of its subnets and the targets
// quota of the load balancers it registers with.
func evaluateGroups(names []string, g *gathered, quotas []QuotaStatus, vcpus map[string]int) []GroupStatus {
	rem := map[string]Remaining{}
	byKey := map[string]QuotaStatus{}
	for _, q := range quotas {
		byKey[q.Key()] = q
		rem[q.Key()] = Remaining{Units: q.Limit - q.Usage, Known: q.LimitKnown && q.UsageKnown, Name: q.Name}
	}
	targetsQuota := map[string]string{"application": "elasticloadbalancing/L-7E6692B2", "network": "elasticloadbalancing/L-EEF1AD04"}
	out := make([]GroupStatus, 0, len(names))
	for _, name := range names {
		gi, found := g.groups[name]
		if !found {
			why := "unknown: no such Auto Scaling group"
			for _, s := range g.sources {
				if s.Name == "autoscaling_describe_groups" && !s.OK {
					why = "unknown: the groups could not be read: " + s.Err
				}
			}
			out = append(out, GroupStatus{Name: name, Feasibility: Feasibility{Why: why}})
			continue
		}
		spec := gi.spec
		if gi.lcName != "" {
			if t, ok := g.lcTypes[gi.lcName]; ok {
				spec.Types = append(spec.Types, TypeOption{Type: t, Weight: 1})
			} else if len(spec.Types) == 0 {
				spec.Unresolved = fmt.Sprintf("launch configuration %s not read", gi.lcName)
			}
		}
		need, instances, unknown := GrowthNeed(spec, vcpus)
		gn := GroupNeed{Group: name, Need: need, Unknown: unknown}
		if len(spec.Subnets) > 0 && instances > 0 {
			key := "subnets:" + name
			free, known := 0.0, true
			for _, s := range spec.Subnets {
				v, ok := g.subnetFree[s]
				known = known && ok
				free += v
			}
			rem[key] = Remaining{Units: free, Known: known, Name: "free addresses in the subnets of " + name}
			gn.Need[key] = instances
		}
		for _, tg := range gi.targetARNs {
			for _, lb := range g.tgLBs[tg] {
				qk, ok := targetsQuota[g.lbType[lb]]
				if !ok {
					continue
				}
				key := "targets:" + lb
				q := byKey[qk]
				rem[key] = Remaining{Units: q.Limit - g.perLB[lb], Known: q.LimitKnown, Name: q.Name + " (" + lb + ")"}
				gn.Need[key] += instances
			}
		}
		out = append(out, GroupStatus{Name: name, Current: gi.instances, Max: int(spec.Max), Feasibility: Feasible(gn, rem)})
	}
	return out
}

// secondsOrInf is a forecast in seconds: +Inf when usage is not growing.
func secondsOrInf(f Forecast) float64 {
	if !f.Growing {
		return math.Inf(1)
	}
	return f.In.Seconds()
}
