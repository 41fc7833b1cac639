package healer

import "github.com/prometheus/client_golang/prometheus"

// InsightMetrics exports what the latency, vantage, zonal and pre-flight
// decisions found, one Set call per service per cycle. Safe for concurrent
// use (the vectors are).
//
//	medic_latency_finding{service,finding}            1 for the cycle's LatencyFinding, 0 for the others
//	medic_latency_peer_ratio{service,instance_id}     each judged instance's typical latency ÷ its peers'
//	medic_vantage{service,verdict}                    1 for the cycle's VantageVerdict, 0 for the others
//	medic_zonal_shift_decision{service,action,reason} 1 for the cycle's ZonalDecision
//	medic_preflight_refusals_total{service,reason}    replacements refused by Preflight
type InsightMetrics struct {
	finding   *prometheus.GaugeVec
	ratio     *prometheus.GaugeVec
	vantage   *prometheus.GaugeVec
	zonal     *prometheus.GaugeVec
	preflight *prometheus.CounterVec
}

// NewInsightMetrics returns the metrics registered on r (nil registers
// nothing).
func NewInsightMetrics(r prometheus.Registerer) (*InsightMetrics, error) {
	m := &InsightMetrics{
		finding: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_latency_finding",
			Help: "1 for the service's latency finding this cycle (none, outliers, service_slow, widespread, insufficient_data, disabled).",
		}, []string{"service", "finding"}),
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_latency_peer_ratio",
			Help: "Each judged instance's typical probe latency divided by its peers' median.",
		}, []string{"service", "instance_id"}),
		vantage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_vantage",
			Help: "1 for the service's verdict comparing the endpoint, the instances and the load balancer's view.",
		}, []string{"service", "verdict"}),
		zonal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_zonal_shift_decision",
			Help: "1 for the service's zonal shift decision this cycle, by action and reason.",
		}, []string{"service", "action", "reason"}),
		preflight: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_preflight_refusals_total",
			Help: "Marks not made because a replacement could not launch, by reason.",
		}, []string{"service", "reason"}),
	}
	if err := registerAll(r, "insight", m.finding, m.ratio, m.vantage, m.zonal, m.preflight); err != nil {
		return nil, err
	}
	return m, nil
}

var latencyFindings = []LatencyFinding{FindingDisabled, FindingInsufficient, FindingNone, FindingOutliers, FindingServiceSlow, FindingWidespread}

// SetLatency exports rep; instances no longer judged lose their ratio series.
func (m *InsightMetrics) SetLatency(service string, rep LatencyReport) {
	for _, f := range latencyFindings {
		m.finding.WithLabelValues(service, string(f)).Set(boolGauge(f == rep.Finding))
	}
	m.ratio.DeletePartialMatch(prometheus.Labels{"service": service})
	for _, s := range rep.Standings {
		if s.Peers > 0 && s.Typical > 0 {
			m.ratio.WithLabelValues(service, s.InstanceID).Set(s.Ratio)
		}
	}
}

// SetVantage exports v.
func (m *InsightMetrics) SetVantage(service string, v Vantage) {
	for _, x := range VantageVerdicts {
		m.vantage.WithLabelValues(service, string(x)).Set(boolGauge(x == v.Verdict))
	}
}

// SetZonal exports d, replacing the service's previous decision.
func (m *InsightMetrics) SetZonal(service string, d ZonalDecision) {
	m.zonal.DeletePartialMatch(prometheus.Labels{"service": service})
	m.zonal.WithLabelValues(service, string(d.Action), string(d.Reason)).Set(1)
}

// PreflightRefused counts r's refusals.
func (m *InsightMetrics) PreflightRefused(service string, r PreflightResult) {
	for _, f := range r.Refusals {
		m.preflight.WithLabelValues(service, string(f.Reason)).Inc()
	}
}

// Forget drops every series of service.
func (m *InsightMetrics) Forget(service string) {
	l := prometheus.Labels{"service": service}
	m.finding.DeletePartialMatch(l)
	m.ratio.DeletePartialMatch(l)
	m.vantage.DeletePartialMatch(l)
	m.zonal.DeletePartialMatch(l)
	m.preflight.DeletePartialMatch(l)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
