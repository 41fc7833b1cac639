package healer

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/discovery"
)

func TestScorer(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, err := NewScorer(reg, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	at := func(m int) time.Time { return latNow.Add(time.Duration(m) * time.Minute) }

	s.Marked("web", "i-1", DetectorConsecutiveFailures, at(-1), at(0))
	s.Marked("web", "i-1", DetectorConsecutiveFailures, at(-1), at(0)) // again: counted once
	s.Marked("web", "i-2", DetectorLatencyOutlier, at(-5), at(0))
	s.Marked("api", "i-9", DetectorConsecutiveFailures, at(0), at(0))

	steps := []struct {
		desc      string
		service   string
		recovered bool
		at        time.Time
		want      string // settled: id:outcome:repair
	}{
		{"not recovered, before the deadline: nothing settles", "web", false, at(10), ""},
		{"recovered: both web marks settle, repair from the first failure", "web", true, at(4), "i-1:recovered:5m0s,i-2:recovered:9m0s"},
		{"nothing pending any more", "web", true, at(5), ""},
		{"api one minute short of the deadline", "api", false, at(29), ""},
		{"api exactly at the deadline: not recovered", "api", false, at(30), "i-9:not_recovered:0s"},
	}
	for _, st := range steps {
		var got []string
		for _, x := range s.Settle(st.service, st.recovered, st.at) {
			got = append(got, x.InstanceID+":"+string(x.Outcome)+":"+x.Repair.String())
		}
		if g := strings.Join(got, ","); g != st.want {
			t.Errorf("%s: settled %q, want %q", st.desc, g, st.want)
		}
	}

	want := `
# HELP medic_detector_mark_outcomes_total Marks whose outcome is known: recovered (the service recovered within the deadline) or not_recovered.
# TYPE medic_detector_mark_outcomes_total counter
medic_detector_mark_outcomes_total{detector="consecutive_failures",outcome="not_recovered",service="api"} 1
medic_detector_mark_outcomes_total{detector="consecutive_failures",outcome="recovered",service="web"} 1
medic_detector_mark_outcomes_total{detector="latency_outlier",outcome="recovered",service="web"} 1
# HELP medic_detector_marks_total Instances marked Unhealthy, by the detector that judged them bad.
# TYPE medic_detector_marks_total counter
medic_detector_marks_total{detector="consecutive_failures",service="api"} 1
medic_detector_marks_total{detector="consecutive_failures",service="web"} 1
medic_detector_marks_total{detector="latency_outlier",service="web"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "medic_detector_marks_total", "medic_detector_mark_outcomes_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(s.repair, "medic_repair_duration_seconds"); n != 2 {
		t.Errorf("repair histogram series %d, want 2 (web × two detectors)", n)
	}
	wantHist := `
# HELP medic_repair_duration_seconds Time from an instance's first failed probe to the service recovered with a serving replacement.
# TYPE medic_repair_duration_seconds histogram
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="30"} 0
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="60"} 0
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="120"} 0
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="180"} 0
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="300"} 0
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="600"} 1
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="900"} 1
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="1800"} 1
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="3600"} 1
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="7200"} 1
medic_repair_duration_seconds_bucket{detector="latency_outlier",service="web",le="+Inf"} 1
medic_repair_duration_seconds_sum{detector="latency_outlier",service="web"} 540
medic_repair_duration_seconds_count{detector="latency_outlier",service="web"} 1
`
	if err := testutil.CollectAndCompare(onlyDetector{s.repair, "latency_outlier"}, strings.NewReader(wantHist)); err != nil {
		t.Error(err)
	}

	web := s.Scores("web")
	if len(web) != 2 || web[0] != (DetectorScore{Detector: DetectorConsecutiveFailures, Marks: 1, Recovered: 1}) ||
		web[1] != (DetectorScore{Detector: DetectorLatencyOutlier, Marks: 1, Recovered: 1}) {
		t.Errorf("web scores %+v", web)
	}

	s.Forget("api")
	if n := testutil.CollectAndCount(s.marks); n != 2 {
		t.Errorf("after Forget(api), %d marks series, want 2", n)
	}
	if len(s.Scores("api")) != 0 {
		t.Error("api scores survive Forget")
	}
}

// onlyDetector collects the series of c whose detector label is d.
type onlyDetector struct {
	c *prometheus.HistogramVec
	d string
}

func (o onlyDetector) Describe(ch chan<- *prometheus.Desc) { o.c.Describe(ch) }
func (o onlyDetector) Collect(ch chan<- prometheus.Metric) {
	h, err := o.c.GetMetricWith(prometheus.Labels{"service": "web", "detector": o.d})
	if err == nil {
		ch <- h.(prometheus.Metric)
	}
}

func TestScorerSummary(t *testing.T) {
	s, _ := NewScorer(nil, 0)
	s.Marked("web", "i-0abc", DetectorLatencyOutlier, latNow.Add(-4*time.Minute), latNow)
	s.Marked("web", "i-0def", DetectorLatencyOutlier, latNow, latNow.Add(time.Minute))
	s.Marked("web", "i-0old", DetectorConsecutiveFailures, latNow.Add(-time.Hour), latNow.Add(-time.Hour))
	settled := s.Settle("web", false, latNow.Add(10*time.Second))
	if len(settled) != 1 || settled[0].Outcome != NotRecovered {
		t.Fatalf("settled %+v", settled)
	}
	settled = s.Settle("web", true, latNow.Add(10*time.Second))
	tests := []struct {
		desc string
		got  string
		want string
	}{
		{"recovery notification", s.Summary("web", settled),
			"i-0abc (latency_outlier) replaced, serving 4m10s after its first failed probe; i-0def (latency_outlier) replaced, serving 10s after its first failed probe; " +
				"record: consecutive_failures 1 mark, 0 recovered, 1 not; latency_outlier 2 marks, 2 recovered, 0 not"},
		{"nothing settled, nothing recorded", s.Summary("other", nil), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.desc, tt.got, tt.want)
		}
	}
}

func TestScorerConcurrent(t *testing.T) {
	s, err := NewScorer(prometheus.NewRegistry(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			svc := []string{"a", "b"}[w%2]
			for i := range 100 {
				s.Marked(svc, string(rune('a'+i%26)), Detectors[i%len(Detectors)], latNow, latNow)
				s.Settle(svc, i%3 == 0, latNow.Add(time.Duration(i)*time.Second))
				_ = s.Scores(svc)
				_ = s.Summary(svc, nil)
			}
		})
	}
	wg.Wait()
	total := 0
	for _, svc := range []string{"a", "b"} {
		for _, sc := range s.Scores(svc) {
			if sc.Marks != sc.Recovered+sc.NotRecovered+sc.Pending {
				t.Errorf("%s %s: %d marks != %d recovered + %d not + %d pending", svc, sc.Detector, sc.Marks, sc.Recovered, sc.NotRecovered, sc.Pending)
			}
			total += sc.Marks
		}
	}
	if total == 0 {
		t.Error("no marks recorded")
	}
}

func TestServiceRecovered(t *testing.T) {
	groups := []discovery.Group{{Name: "web", Desired: 2}}
	ok := EndpointState{Configured: true, Healthy: true}
	v := func(state State, health string) Verdict {
		return Verdict{Instance: discovery.Instance{Group: "web", LifecycleState: discovery.LifecycleInService, HealthStatus: health}, State: state}
	}
	tests := []struct {
		desc     string
		verdicts []Verdict
		groups   []discovery.Group
		ep       EndpointState
		want     bool
	}{
		{"desired capacity healthy and serving", []Verdict{v(Healthy, "Healthy"), v(Healthy, "Healthy")}, groups, ok, true},
		{"replacement still in grace", []Verdict{v(Healthy, "Healthy"), v(Grace, "Healthy")}, groups, ok, false},
		{"a bad instance left", []Verdict{v(Healthy, "Healthy"), v(Healthy, "Healthy"), v(Bad, "Healthy")}, groups, ok, false},
		{"the marked one held Unhealthy does not count", []Verdict{v(Healthy, "Healthy"), v(Healthy, "Unhealthy")}, groups, ok, false},
		{"endpoint failing", []Verdict{v(Healthy, "Healthy"), v(Healthy, "Healthy")}, groups, EndpointState{Configured: true}, false},
		{"no endpoint configured", []Verdict{v(Healthy, "Healthy"), v(Healthy, "Healthy")}, groups, EndpointState{}, true},
		{"above desired", []Verdict{v(Healthy, "Healthy"), v(Healthy, "Healthy"), v(Healthy, "Healthy")}, groups, ok, true},
		{"group with nothing judged", nil, groups, ok, false},
	}
	for _, tt := range tests {
		if got := ServiceRecovered(tt.verdicts, tt.groups, tt.ep); got != tt.want {
			t.Errorf("%s: %t, want %t", tt.desc, got, tt.want)
		}
	}
}
