package statuspage

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/healer"
)

// The status page and the debug view show each instance's latency standing
// against its peers, and the service's latency, vantage and score findings.
func TestPageShowsLatencyStandingAndFindings(t *testing.T) {
	sts := demoStatuses()
	sts[1].Report.Insight = healer.Insight{ // web
		Latency: healer.LatencyReport{Finding: healer.FindingOutliers, Reason: "1 of 6 judged instances slower than their peers",
			Standings: []healer.LatencyStanding{
				{InstanceID: "i-0a11", Status: healer.LatencyOutlier, Typical: 612 * time.Millisecond, Ratio: 8.04, Reason: "median 612ms over 15 probes, 8.0× its peers' 76ms"},
				{InstanceID: "i-0a12", Status: healer.LatencyNormal, Typical: 75 * time.Millisecond, Ratio: 0.98},
				{InstanceID: "i-0b21", Status: healer.LatencyTooFewSamples},
			}},
		Outliers: []healer.OutlierState{{InstanceID: "i-0a11", Degraded: true, Since: testNow.Add(-time.Minute), Reason: "degraded since 11:59:30Z, bad after 3m0s"}},
		Vantage:  healer.Vantage{Verdict: healer.VantageLBOrRouting, Evidence: "the endpoint fails while all 6 instances pass"},
		Scores:   []healer.DetectorScore{{Detector: healer.DetectorLatencyOutlier, Marks: 2, Recovered: 1, Pending: 1}},
	}
	sts[1].Zonal = healer.ZonalDecision{Action: healer.ZonalNone, Reason: healer.ZoneImpairedReportOnly, AZ: "us-east-1a",
		Detail: "us-east-1a is impaired: 2 of 3 bad"}
	h := newTestPage(&fakeSource{sts: sts})
	_, body := get(t, h, http.MethodGet, "/")
	for _, want := range []string{
		`<th title="typical latency against the median of its peers">latency vs peers</th>`,
		`title="median 612ms over 15 probes, 8.0× its peers&#39; 76ms"><span class="tag suspect">612ms, 8.0× peers (outlier)</span>`,
		`<span class="tag healthy">75ms, 1.0× peers</span>`,
		`<span class="tag unknown">too few samples</span>`,
		`<td>latency</td><td><span class="tag suspect">outliers</span></td>`,
		`<td>vantage</td><td><span class="tag bad">lb_or_routing_problem</span></td><td>the endpoint fails while all 6 instances pass</td>`,
		`latency_outlier: 2 marks, 1 recovered, 0 not, 1 pending`,
		`<td>zone</td><td><span class="tag suspect">none: zone_impaired_report_only</span></td><td>us-east-1a is impaired: 2 of 3 bad</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_, dbg := get(t, h, http.MethodGet, "/debug/target?key=web/i-0a11")
	for _, want := range []string{
		"Latency:  outlier: median 612ms over 15 probes, 8.0× its peers' 76ms\n",
		"Outlier:  degraded since 11:59:30Z, bad after 3m0s\n",
	} {
		if !strings.Contains(dbg, want) {
			t.Errorf("debug view lacks %q:\n%s", want, dbg)
		}
	}
}
