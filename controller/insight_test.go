package controller

import (
	"slices"
	"testing"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/limits"
)

// A slow service and a vantage verdict that puts the fault outside the
// instances are told when they start and when they end, not every cycle.
func TestReporterTellsInsightEpisodesOnce(t *testing.T) {
	svc := config.Service{Name: "web"}
	rec := &recorder{}
	r := newReporter(rec, nil, nil)
	slow := healer.LatencyReport{Finding: healer.FindingServiceSlow, Reason: "the median is 600ms"}
	fine := healer.LatencyReport{Finding: healer.FindingNone, Reason: "no outlier"}
	lb := healer.Vantage{Verdict: healer.VantageLBOrRouting, Evidence: "the endpoint fails while 6 instances pass"}
	ok := healer.Vantage{Verdict: healer.VantageOK, Evidence: "all pass"}
	for _, tc := range []struct {
		desc string
		lat  healer.LatencyReport
		v    healer.Vantage
		want []string
	}{
		{"all fine: nothing", fine, ok, nil},
		{"slow starts", slow, ok, []string{"service_slow"}},
		{"slow holds: nothing", slow, ok, nil},
		{"the load balancer fails too", slow, lb, []string{"vantage_problem"}},
		{"both hold: nothing", slow, lb, nil},
		{"both end", fine, ok, []string{"service_slow/resolved", "vantage_problem/resolved"}},
		{"an instances-only verdict is no vantage event", fine, healer.Vantage{Verdict: healer.VantageInstancesFailing}, nil},
	} {
		r.observeInsight(svc, healer.Report{Insight: healer.Insight{Latency: tc.lat, Vantage: tc.v}}, "state", t0)
		if got := eventKinds(rec.take()); !slices.Equal(got, tc.want) {
			t.Errorf("%s: events %v, want %v", tc.desc, got, tc.want)
		}
	}
}

// The limits snapshot's On-Demand vCPU quotas become pre-flight headroom,
// named as the refusal sentences name them; quotas with an unknown figure
// are not known.
func TestVCPUHeadroomFromTheLimitsSnapshot(t *testing.T) {
	got := vcpuHeadroom([]limits.QuotaStatus{
		{ServiceCode: "ec2", Code: "L-1216C47A", Limit: 64, LimitKnown: true, Usage: 62, UsageKnown: true},
		{ServiceCode: "ec2", Code: "L-DB2E81BA", Limit: 8, LimitKnown: true},
		{ServiceCode: "ec2", Code: "L-34B43A08", Limit: 32, LimitKnown: true, Usage: 1, UsageKnown: true}, // Spot: not pre-flight's
	})
	want := map[string]healer.VCPUHeadroom{
		"ec2/L-1216C47A": {Name: "On-Demand Standard", Left: 2, Known: true},
		"ec2/L-DB2E81BA": {Name: "On-Demand G and VT", Left: 8},
	}
	if len(got) != len(want) {
		t.Fatalf("headroom = %+v, want %+v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %+v, want %+v", k, got[k], w)
		}
	}
	if k := vcpuQuotaKey("m5.xlarge"); k != "ec2/L-1216C47A" {
		t.Errorf("quota of m5.xlarge = %q", k)
	}
}
