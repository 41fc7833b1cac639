package healer

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInsightMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewInsightMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.SetLatency("web", LatencyReport{Finding: FindingOutliers, Standings: []LatencyStanding{
		{InstanceID: "i-1", Typical: 600 * ms, Peers: ms, Ratio: 600},
		{InstanceID: "i-2", Typical: ms, Peers: ms, Ratio: 1},
		{InstanceID: "i-3", Status: LatencyTooFewSamples},
	}})
	// Next cycle i-1 is gone: its series goes with it.
	m.SetLatency("web", LatencyReport{Finding: FindingNone, Standings: []LatencyStanding{
		{InstanceID: "i-2", Typical: ms, Peers: ms, Ratio: 1},
	}})
	m.SetVantage("web", Vantage{Verdict: VantageLBOrRouting})
	m.SetZonal("web", ZonalDecision{Action: ZonalStart, Reason: ZoneImpaired})
	m.SetZonal("web", ZonalDecision{Action: ZonalKeep, Reason: ZoneStillImpaired})
	m.PreflightRefused("web", PreflightResult{Refusals: []PreflightRefusal{{Reason: PreflightVCPUQuota}}})
	m.PreflightRefused("web", PreflightResult{Refusals: []PreflightRefusal{{Reason: PreflightVCPUQuota}, {Reason: PreflightImage}}})

	want := `
# HELP medic_latency_peer_ratio Each judged instance's typical probe latency divided by its peers' median.
# TYPE medic_latency_peer_ratio gauge
medic_latency_peer_ratio{instance_id="i-2",service="web"} 1
# HELP medic_preflight_refusals_total Marks not made because a replacement could not launch, by reason.
# TYPE medic_preflight_refusals_total counter
medic_preflight_refusals_total{reason="image",service="web"} 1
medic_preflight_refusals_total{reason="vcpu_quota",service="web"} 2
# HELP medic_zonal_shift_decision 1 for the service's zonal shift decision this cycle, by action and reason.
# TYPE medic_zonal_shift_decision gauge
medic_zonal_shift_decision{action="keep",reason="zone_still_impaired",service="web"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"medic_latency_peer_ratio", "medic_preflight_refusals_total", "medic_zonal_shift_decision"); err != nil {
		t.Error(err)
	}
	tests := []struct {
		desc string
		c    prometheus.Collector
		n    int
	}{
		{"one finding series per finding", m.finding, len(latencyFindings)},
		{"one vantage series per verdict", m.vantage, len(VantageVerdicts)},
	}
	for _, tt := range tests {
		if n := testutil.CollectAndCount(tt.c); n != tt.n {
			t.Errorf("%s: %d series, want %d", tt.desc, n, tt.n)
		}
	}
	if v := testutil.ToFloat64(m.vantage.WithLabelValues("web", string(VantageLBOrRouting))); v != 1 {
		t.Errorf("vantage lb_or_routing_problem = %g", v)
	}
	if v := testutil.ToFloat64(m.finding.WithLabelValues("web", string(FindingNone))); v != 1 {
		t.Errorf("finding none = %g", v)
	}
	m.Forget("web")
	if n := testutil.CollectAndCount(m.vantage) + testutil.CollectAndCount(m.preflight); n != 0 {
		t.Errorf("%d series after Forget", n)
	}
}
