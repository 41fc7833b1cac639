package probes

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
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
}

func newMetrics() *metrics {
	return &metrics{
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

// handles are an entry's own children of the vectors, looked up once per
// (service, scope) rather than hashed on every probe.
type handles struct {
	ok, fail             prometheus.Counter
	latency              prometheus.Observer
	overlap, concurrency prometheus.Counter
}

func (m *metrics) handlesFor(service, scope string) handles {
	return handles{
		ok:          m.probes.WithLabelValues(service, scope, "success"),
		fail:        m.probes.WithLabelValues(service, scope, "failure"),
		latency:     m.latency.WithLabelValues(service, scope),
		overlap:     m.skipped.WithLabelValues(service, "overlap"),
		concurrency: m.skipped.WithLabelValues(service, "concurrency"),
	}
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

// targetCollector reports the per-target gauges and the target counts
// from a copy of the scheduler's state taken under its lock.
type targetCollector struct{ s *Scheduler }

func (c targetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSuccess
	ch <- descDuration
	ch <- descEndpointSuccess
	ch <- descEndpointDuration
	ch <- descTargets
}

func (c targetCollector) Collect(ch chan<- prometheus.Metric) {
	type last struct {
		service, instance, az string
		endpoint              bool
		success               bool
		seconds               float64
	}

	s := c.s
	s.mu.Lock()
	rows := make([]last, 0, len(s.entries))
	counts := map[group]int{}
	for _, e := range s.entries {
		counts[group{e.target.Service, e.scope}]++
		if e.n == 0 {
			continue
		}
		r := &e.hist[(e.n-1)%historySize]
		rows = append(rows, last{
			service:  e.target.Service,
			instance: e.target.InstanceID,
			az:       e.target.AZ,
			endpoint: e.scope == scopeEndpoint,
			success:  r.Success,
			seconds:  r.Duration.Seconds(),
		})
		if rows[len(rows)-1].instance == "" {
			rows[len(rows)-1].instance = e.target.Address
			rows[len(rows)-1].az = ""
		}
	}
	s.mu.Unlock()

	for g, n := range counts {
		ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(n), g.service, g.scope)
	}
	// Two targets with the same labels (a static target listed twice, two
	// endpoints of one service) would make the scrape fail: the first wins.
	type series struct {
		service, instance, az string
		endpoint              bool
	}
	seen := make(map[series]struct{}, len(rows))
	for _, r := range rows {
		k := series{r.service, r.instance, r.az, false}
		if r.endpoint {
			k = series{service: r.service, endpoint: true}
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		ok := 0.0
		if r.success {
			ok = 1
		}
		if r.endpoint {
			ch <- prometheus.MustNewConstMetric(descEndpointSuccess, prometheus.GaugeValue, ok, r.service)
			ch <- prometheus.MustNewConstMetric(descEndpointDuration, prometheus.GaugeValue, r.seconds, r.service)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.GaugeValue, ok, r.service, r.instance, r.az)
		ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, r.seconds, r.service, r.instance, r.az)
	}
}
