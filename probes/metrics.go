package probes

import (
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
// scheduler's state (targetCollector), so a removed target's series are gone
// the moment Update returns and a probe finishing late cannot bring them
// back.
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
			Help: "Probe slots not run: overlap (the target's previous probe still running) or concurrency (no worker free within the interval).",
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

var (
	descSuccess = prometheus.NewDesc("medic_probe_success",
		"1 if the target's last probe passed.", []string{"service", "instance_id", "az"}, nil)
	descDuration = prometheus.NewDesc("medic_probe_duration_seconds",
		"Duration of the target's last probe.", []string{"service", "instance_id", "az"}, nil)
	descEndpointSuccess = prometheus.NewDesc("medic_service_endpoint_success",
		"1 if the last probe through the load balancer passed.", []string{"service"}, nil)
	descEndpointDuration = prometheus.NewDesc("medic_service_endpoint_duration_seconds",
		"Duration of the last probe through the load balancer.", []string{"service"}, nil)
	descTargets = prometheus.NewDesc("medic_probe_targets",
		"Targets scheduled.", []string{"service", "scope"}, nil)
)

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
var labelAZ, labelInstance, labelService = "az", "instance_id", "service"

// labels builds an entry's label pairs once, sorted by name as the
// registry wants them; every scrape reuses them. The service and az pairs
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
// written: the registry reads them.
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

// gauge is one per-target sample. Its labels are the entry's, shared and
// never written.
type gauge struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	v      float64
}

func (g *gauge) Desc() *prometheus.Desc { return g.desc }
func (g *gauge) Write(out *dto.Metric) error {
	v := g.v
	out.Label = g.labels
	out.Gauge = &dto.Gauge{Value: &v}
	return nil
}

// targetCollector reports the per-target gauges and the target counts
// from a copy of the scheduler's state taken under its lock. It walks the
// scheduler's order (kept sorted by Update), so the registry's sort of
// each family finds it sorted already, and two targets with the same
// labels (a static target listed twice, two endpoints of one service) are
// neighbours: the first is kept (duplicates would fail the scrape).
type targetCollector struct{ s *Scheduler }

func (c targetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSuccess
	ch <- descDuration
	ch <- descEndpointSuccess
	ch <- descEndpointDuration
	ch <- descTargets
}

func (c targetCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.mu.Lock()
	out := make([]gauge, 0, 2*len(s.order))
	counts := map[group]int{}
	var prev *entry
	for _, e := range s.order {
		counts[group{e.target.Service, e.scope}]++
		if e.n == 0 || (prev != nil && prev.scope == e.scope && prev.series() == e.series()) {
			continue
		}
		prev = e
		r := &e.hist[(e.n-1)%historySize]
		ok := 0.0
		if r.success {
			ok = 1
		}
		ds, dd := descSuccess, descDuration
		if e.scope == scopeEndpoint {
			ds, dd = descEndpointSuccess, descEndpointDuration
		}
		out = append(out, gauge{ds, e.labels, ok}, gauge{dd, e.labels, float64(r.duration) / 1e6})
	}
	s.mu.Unlock()

	for g, n := range counts {
		ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(n), g.service, g.scope)
	}
	for i := range out {
		ch <- &out[i]
	}
}
