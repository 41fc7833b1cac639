package probes

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Scopes of a target (label scope).
const (
	scopeInstance = "instance"
	scopeEndpoint = "endpoint"
)

// scopeOf is endpoint for a URL with no instance (a probe through the load
// balancer), instance for everything else (instances and static targets).
func scopeOf(t Target) string {
	if t.InstanceID == "" && strings.Contains(t.Address, "://") {
		return scopeEndpoint
	}
	return scopeInstance
}

// metrics are the scheduler's counters and histogram, labelled by service
// and scope only. The per-target gauges are built at scrape time from the
// scheduler's state (Scheduler.Gather), so a removed target's series are
// gone the moment Update returns and a probe finishing late cannot bring
// them back.
type metrics struct {
	probes   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	skipped  *prometheus.CounterVec
	lateness prometheus.Histogram
	limit    prometheus.Gauge
	handles  map[group]*handles // guarded by the Scheduler's mu
}

func newMetrics() *metrics {
	return &metrics{
		handles: map[group]*handles{},
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_probes_total",
			Help: "Probes run, by result (success or failure).",
		}, []string{"service", "scope", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "medic_probe_latency_seconds",
			Help:    "Probe durations.",
			Buckets: prometheus.DefBuckets,
		}, []string{"service", "scope"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_probe_skipped_total",
			Help: "Probe slots not run: overlap (the target's previous probe still running) or concurrency (no room under the probe limit within the interval).",
		}, []string{"service", "reason"}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "medic_probe_concurrency_limit",
			Help: "How many probes medic lets run at once now: it adapts between min(64, max_concurrent_probes) and max_concurrent_probes, shrinking while its goroutines wait for a CPU.",
		}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "medic_probe_lateness_seconds",
			Help:    "How long after its scheduled slot each probe started: medic's own timeliness, all targets together.",
			Buckets: latenessBuckets,
		}),
	}
}

// latenessBuckets are latenessBounds in seconds, so that the metric and
// the self-health window agree on what "late" is.
var latenessBuckets = func() []float64 {
	b := make([]float64, len(latenessBounds))
	for i, d := range latenessBounds {
		b[i] = d.Seconds()
	}
	return b
}()

// handles are the children of the vectors for one (service, scope),
// looked up once and shared by its entries rather than hashed on every
// probe.
type handles struct {
	ok, fail             prometheus.Counter
	latency              prometheus.Observer
	overlap, concurrency prometheus.Counter
}

// handlesFor returns the handles of (service, scope), made on first use
// and kept until dropHandles.
func (m *metrics) handlesFor(service, scope string) *handles {
	g := group{service, scope}
	if h := m.handles[g]; h != nil {
		return h
	}
	h := &handles{
		ok:          m.probes.WithLabelValues(service, scope, "success"),
		fail:        m.probes.WithLabelValues(service, scope, "failure"),
		latency:     m.latency.WithLabelValues(service, scope),
		overlap:     m.skipped.WithLabelValues(service, "overlap"),
		concurrency: m.skipped.WithLabelValues(service, "concurrency"),
	}
	m.handles[g] = h
	return h
}

// The per-target families, built at scrape time by Scheduler.Gather.
var (
	famSuccess          = family{"medic_probe_success", "1 if the target's last probe passed."}
	famDuration         = family{"medic_probe_duration_seconds", "Duration of the target's last probe."}
	famEndpointSuccess  = family{"medic_service_endpoint_success", "1 if the last probe through the load balancer passed."}
	famEndpointDuration = family{"medic_service_endpoint_duration_seconds", "Duration of the last probe through the load balancer."}
	famTargets          = family{"medic_probe_targets", "Targets scheduled."}
)

type family struct{ name, help string }

// appendTo appends the gauge family of ms to mfs, or nothing when ms is
// empty (the registry leaves empty families out too).
func (f family) appendTo(mfs []*dto.MetricFamily, ms []*dto.Metric) []*dto.MetricFamily {
	if len(ms) == 0 {
		return mfs
	}
	name, help := f.name, f.help
	return append(mfs, &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(), Metric: ms})
}

// seriesKey is what a target's per-target series are labelled with; the
// order of its fields is the order client_golang sorts series in (label
// values in label-name order: az, instance_id, service).
type seriesKey struct{ az, instance, service string }

func seriesKeyOf(t *Target, scope string) seriesKey {
	if scope == scopeEndpoint {
		return seriesKey{service: t.Service}
	}
	if t.InstanceID == "" {
		return seriesKey{instance: t.Address, service: t.Service} // static: its address, no AZ
	}
	return seriesKey{az: t.AZ, instance: t.InstanceID, service: t.Service}
}

func (k seriesKey) compare(o seriesKey) int {
	if c := strings.Compare(k.az, o.az); c != 0 {
		return c
	}
	if c := strings.Compare(k.instance, o.instance); c != 0 {
		return c
	}
	return strings.Compare(k.service, o.service)
}

// Label names, shared by every entry's label pairs (never written).
var labelAZ, labelInstance, labelScope, labelService = "az", "instance_id", "scope", "service"

// labels builds an entry's label pairs once, sorted by name as an
// exposition wants them; every scrape reuses them. The service and az pairs
// are shared by the entries of one Update (a few thousand targets share a
// handful of values); only the instance pair is the entry's own.
func (pp preparer) labels(k seriesKey, scope string) []*dto.LabelPair {
	if scope == scopeEndpoint {
		return []*dto.LabelPair{pp.pair(&labelService, k.service)}
	}
	return []*dto.LabelPair{pp.pair(&labelAZ, k.az), newPair(&labelInstance, k.instance), pp.pair(&labelService, k.service)}
}

func newPair(name *string, v string) *dto.LabelPair { return &dto.LabelPair{Name: name, Value: &v} }

// pair returns the shared pair of (name, v). Shared pairs are never
// written: scrapes read them.
func (pp preparer) pair(name *string, v string) *dto.LabelPair {
	k := pairKey{*name, v}
	p := pp.pairs[k]
	if p == nil {
		p = newPair(name, v)
		pp.pairs[k] = p
	}
	return p
}

type pairKey struct{ name, value string }

// groupCount is one series of medic_probe_targets.
type groupCount struct {
	labels []*dto.LabelPair // scope, service
	n      int
}

// countGroups returns the targets of each (service, scope) as the series of
// medic_probe_targets, sorted by label values as the registry sorts them.
func countGroups(counts map[group]int) []groupCount {
	gs := make([]group, 0, len(counts))
	for g := range counts {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b group) int {
		if c := strings.Compare(a.scope, b.scope); c != 0 {
			return c
		}
		return strings.Compare(a.service, b.service)
	})
	out := make([]groupCount, len(gs))
	for i, g := range gs {
		out[i] = groupCount{[]*dto.LabelPair{newPair(&labelScope, g.scope), newPair(&labelService, g.service)}, counts[g]}
	}
	return out
}

// gauges hands out the gauges of one scrape from chunks of gaugeChunk (the
// metrics, their gauges, their values: three allocations per chunk rather
// than three per sample). Chunks stay small objects: a scrape's garbage is
// reused by the next allocations rather than held as large spans until
// the scavenger returns them, which raised resident memory by the size of
// a scrape (17 MB at 50,000 targets).
type gauges struct {
	ms []dto.Metric
	gs []dto.Gauge
	vs []float64
}

const gaugeChunk = 128

// next returns the next gauge, labelled with labels (shared, not copied).
func (g *gauges) next(labels []*dto.LabelPair, v float64) *dto.Metric {
	if len(g.ms) == 0 {
		g.ms, g.gs, g.vs = make([]dto.Metric, gaugeChunk), make([]dto.Gauge, gaugeChunk), make([]float64, gaugeChunk)
	}
	m, ga, vp := &g.ms[0], &g.gs[0], &g.vs[0]
	g.ms, g.gs, g.vs = g.ms[1:], g.gs[1:], g.vs[1:]
	*vp = v
	ga.Value = vp
	m.Label = labels
	m.Gauge = ga
	return m
}

// Gather returns the per-target gauges and the target counts
// (docs/metrics.md, Probes) as a Registry would gather them: families
// sorted by name, empty ones left out, series sorted by label values. They
// are built from the scheduler's state under its lock, so a removed
// target's series are gone the moment Update returns and a probe finishing
// late cannot bring them back. No name is also the Registerer's: /metrics
// serves the two merged.
//
// It walks the scheduler's order (kept sorted by Update, each scope's
// entries together), so the series come sorted, and two targets with the
// same labels (a static target listed twice, two endpoints of one service)
// are neighbours: the first is kept (duplicates would fail the scrape).
// Targets not probed yet have no series. The label pairs are the entries'
// own, shared by every scrape: callers must not modify what Gather
// returns. The error is always nil.
func (s *Scheduler) Gather() ([]*dto.MetricFamily, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.order)
	var g gauges
	ok, dur := make([]*dto.Metric, 0, n), make([]*dto.Metric, 0, n)
	var mfs []*dto.MetricFamily
	var prev *entry
	from := 0 // the first series of e's scope in ok and dur
	for i, e := range s.order {
		if e.n > 0 && (prev == nil || prev.scope != e.scope || prev.series() != e.series()) {
			prev = e
			r := &e.hist[(e.n-1)%historySize]
			v := 0.0
			if r.success {
				v = 1
			}
			ok = append(ok, g.next(e.labels, v))
			dur = append(dur, g.next(e.labels, float64(r.duration)/1e6))
		}
		if i+1 < n && s.order[i+1].scope == e.scope {
			continue
		}
		fs, fd := famSuccess, famDuration
		if e.scope == scopeEndpoint {
			fs, fd = famEndpointSuccess, famEndpointDuration
		}
		to := len(ok)
		mfs = fs.appendTo(mfs, ok[from:to:to])
		mfs = fd.appendTo(mfs, dur[from:to:to])
		from = to
	}
	targets := make([]*dto.Metric, len(s.counts))
	for i, c := range s.counts {
		targets[i] = g.next(c.labels, float64(c.n))
	}
	mfs = famTargets.appendTo(mfs, targets)
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, nil
}
