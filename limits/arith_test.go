package limits

import (
	"math"
	"sort"
	"testing"
	"time"

	"github.com/medic-sre/medic/config"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func TestThresholdState(t *testing.T) {
	for _, tc := range []struct {
		desc         string
		usage, limit float64
		known        bool
		want         State
	}{
		{"unknown figures", 1, 10, false, StateUnknown},
		{"empty", 0, 10, true, StateOK},
		{"just below warning", 79, 100, true, StateOK},
		{"exactly at warning", 80, 100, true, StateWarning},
		{"just below critical", 94.9, 100, true, StateWarning},
		{"exactly at critical", 95, 100, true, StateCritical},
		{"at the limit", 100, 100, true, StateCritical},
		{"over the limit", 120, 100, true, StateCritical},
		{"limit zero, nothing used: not in use", 0, 0, true, StateNotInUse},
		{"limit zero, something used: over the limit", 1, 0, true, StateCritical},
		{"one of one", 1, 1, true, StateCritical},
		{"four of five is 80%", 4, 5, true, StateWarning},
		{"negative limit is nonsense", 1, -1, true, StateUnknown},
	} {
		if got := ThresholdState(tc.usage, tc.limit, tc.known, 0.8, 0.95); got != tc.want {
			t.Errorf("%s: ThresholdState(%g, %g) = %s, want %s", tc.desc, tc.usage, tc.limit, got, tc.want)
		}
	}
}

func TestHeadroomRatio(t *testing.T) {
	for _, tc := range []struct {
		desc         string
		usage, limit float64
		want         float64
		ok           bool
	}{
		{"4 of 5", 4, 5, 0.2, true},
		{"empty", 0, 5, 1, true},
		{"over", 6, 5, -0.2, true},
		{"zero limit", 0, 0, 0, false},
	} {
		got, ok := HeadroomRatio(tc.usage, tc.limit)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: HeadroomRatio = %v, %v; want %v, %v", tc.desc, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFeasible(t *testing.T) {
	rem := map[string]Remaining{
		"ec2/L-1216C47A": {Units: 64, Known: true, Name: "vCPUs"},
		"targets:lb":     {Units: 3, Known: true},
		"unknown":        {Known: false},
	}
	for _, tc := range []struct {
		desc        string
		need        map[string]float64
		known, feas bool
	}{
		{"fits", map[string]float64{"ec2/L-1216C47A": 32}, true, true},
		{"exactly the remaining units", map[string]float64{"ec2/L-1216C47A": 64}, true, true},
		{"one more than remains", map[string]float64{"ec2/L-1216C47A": 65}, true, false},
		{"targets short", map[string]float64{"ec2/L-1216C47A": 2, "targets:lb": 4}, true, false},
		{"nothing to grow", map[string]float64{"ec2/L-1216C47A": 0}, true, true},
		{"no quota drawn on", nil, true, true},
		{"unknown quota", map[string]float64{"unknown": 1}, false, false},
		{"unknown but another already short", map[string]float64{"unknown": 1, "ec2/L-1216C47A": 100}, true, false},
	} {
		f := Feasible(GroupNeed{Group: "g", Need: tc.need}, rem)
		if f.Known != tc.known || f.Feasible != tc.feas {
			t.Errorf("%s: got %+v", tc.desc, f)
		}
	}
}

func buckets(vs ...float64) []Bucket {
	b := make([]Bucket, len(vs))
	for i, v := range vs {
		b[i] = Bucket{T: t0.Add(time.Duration(i) * 5 * time.Minute), V: v}
	}
	return b
}

func TestDetectRamp(t *testing.T) {
	gap := buckets(2000, 2000, 6000)
	gap[2].T = gap[2].T.Add(5 * time.Minute)
	for _, tc := range []struct {
		desc string
		b    []Bucket
		want bool
	}{
		{"gradual: +10% per 5 minutes", buckets(2000, 2200, 2420, 2662, 2928, 3221), false},
		{"3x jump in 5 minutes", buckets(2000, 2000, 6000), true},
		{"exactly x1.5 is tolerated", buckets(2000, 3000), false},
		{"just over x1.5", buckets(2000, 3001), true},
		{"3x at low traffic is noise", buckets(10, 30), false},
		{"from zero is not a ratio", buckets(0, 5000), false},
		{"a missing bucket breaks the chain", gap, false},
		{"one bucket", buckets(5000), false},
		{"none", nil, false},
	} {
		if got := DetectRamp(tc.b, 1.5, 1000); got.Detected != tc.want {
			t.Errorf("%s: %+v", tc.desc, got)
		}
	}
}

func TestSizeLCU(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		typ      string
		d        LCUDims
		headroom float64
		ceiling  int
		lcu      float64
		units    int
		capped   bool
	}{
		{"ALB without PeakLCUs: new connections dominate: 800/s = 32 LCU, x1.2 = 38.4 -> 39", "application",
			LCUDims{NewConnPerSec: 800, ActiveConn: 24000, BytesPerHour: 4.8e9}, 1.2, 0, 32, 39, false},
		{"ALB PeakLCUs decides over the dimensions", "application", LCUDims{NewConnPerSec: 800, PeakLCU: 20}, 1.2, 0, 20, 24, false},
		{"ALB exact integer stays", "application", LCUDims{NewConnPerSec: 250}, 1, 0, 10, 10, false},
		{"ALB billed rule evaluations dominate", "application", LCUDims{RuleEvalsPerSec: 5000}, 1, 0, 5, 5, false},
		{"ALB bytes dominate", "application", LCUDims{BytesPerHour: 7e9}, 1, 0, 7, 7, false},
		{"capped at the ceiling", "application", LCUDims{NewConnPerSec: 800}, 1.2, 30, 32, 30, true},
		{"ceiling exactly met is not capped", "application", LCUDims{NewConnPerSec: 750}, 1, 30, 30, 30, false},
		{"NLB: throughput only, 22 Mbps = 10 LCU; flows ignored", "network", LCUDims{NewConnPerSec: 8000, ActiveConn: 50000, Mbps: 22}, 1, 0, 10, 10, false},
		{"NLB: 100 Mbps × 1.2 = 54.5 LCU → 55", "network", LCUDims{Mbps: 100}, 1.2, 0, 100 / 2.2, 55, false},
		{"nothing", "application", LCUDims{}, 1.2, 0, 0, 0, false},
	} {
		s := SizeLCU(tc.typ, tc.d, tc.headroom, tc.ceiling)
		if math.Abs(s.LCU-tc.lcu) > 1e-9 || s.Units != tc.units || s.Capped != tc.capped {
			t.Errorf("%s: got LCU %v units %d capped %v; steps %q", tc.desc, s.LCU, s.Units, s.Capped, s.Steps)
		}
	}
}

func TestBilledRuleEvals(t *testing.T) {
	b := func(vs ...float64) []Bucket {
		var out []Bucket
		for i, v := range vs {
			out = append(out, Bucket{T: t0.Add(time.Duration(i) * 5 * time.Minute), V: v})
		}
		return out
	}
	// 12 rules per request on 1000 requests: 2 billed each → 2000; the
	// second bucket evaluates only the free 10.
	if got := billedRuleEvals(b(12000, 10000), b(1000, 1000)); got != 2000 {
		t.Errorf("billed = %v, want 2000", got)
	}
	if got := billedRuleEvals(b(5000), nil); got != 5000 {
		t.Errorf("no request count: billed = %v, want 5000", got)
	}
}

func TestPhaseOf(t *testing.T) {
	start, dur, lead := t0, time.Hour, 30*time.Minute
	for _, tc := range []struct {
		desc string
		now  time.Time
		want EventPhase
	}{
		{"a second before the lead time", start.Add(-lead - time.Second), PhaseBefore},
		{"exactly at the lead time", start.Add(-lead), PhaseLead},
		{"exactly at start", start, PhaseDuring},
		{"a second before the end", start.Add(dur - time.Second), PhaseDuring},
		{"exactly at the end", start.Add(dur), PhaseAfter},
	} {
		if got := PhaseOf(start, dur, lead, tc.now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.desc, got, tc.want)
		}
	}
}

func TestPlanReservation(t *testing.T) {
	rules := ReservationRules{DecreasesLeft: 2, MaxRetries: 3, ProvisionTimeout: 4 * time.Hour}
	none := func(left int) ReservationRules { r := rules; r.DecreasesLeft = left; return r }
	quota := func(n int) ReservationRules {
		r := rules
		r.RegionQuota, r.RegionQuotaKnown, r.RegionQuotaName = n, true, "Reserved Application Load Balancer Capacity Units (LCU) per Region"
		return r
	}
	for _, tc := range []struct {
		desc      string
		want      int
		r         ReservationNow
		rules     ReservationRules
		wantOp    string
		wantUnits int
		person    bool
	}{
		{"increase before the event", 30, ReservationNow{State: "none"}, rules, "increase", 30, false},
		{"already there", 30, ReservationNow{Units: 30, State: "provisioned", MedicSet: true}, rules, "none", 30, false},
		{"reset after the event", 0, ReservationNow{Units: 30, State: "provisioned", MedicSet: true}, rules, "reset", 0, false},
		{"no decrease left: reset postponed", 0, ReservationNow{Units: 30, State: "provisioned", MedicSet: true}, none(0), "none", 30, false},
		{"not medic's: left alone", 0, ReservationNow{Units: 30, State: "provisioned"}, rules, "none", 30, false},
		{"lower", 20, ReservationNow{Units: 30, State: "provisioned", MedicSet: true}, none(1), "decrease", 20, false},
		{"lower, no decrease left", 20, ReservationNow{Units: 30, State: "provisioned", MedicSet: true}, none(0), "none", 30, false},
		{"nothing wanted, nothing there", 0, ReservationNow{State: "none"}, rules, "none", 0, false},
		{"pending: wait, even for more", 40, ReservationNow{Units: 30, State: "pending", PendingFor: time.Hour, MedicSet: true}, rules, "none", 30, false},
		{"pending exactly at the timeout: still waiting", 30, ReservationNow{Units: 30, State: "pending", PendingFor: 4 * time.Hour}, rules, "none", 30, false},
		{"pending past the timeout: a person", 30, ReservationNow{Units: 30, State: "pending", PendingFor: 4*time.Hour + time.Minute}, rules, "none", 30, true},
		{"rebalancing: wait", 30, ReservationNow{Units: 30, State: "rebalancing"}, rules, "none", 30, false},
		{"failed once: request again", 30, ReservationNow{Units: 30, State: "failed", Reason: "insufficient capacity", Failures: 1}, rules, "increase", 30, false},
		{"failed twice: the last retry", 30, ReservationNow{Units: 30, State: "failed", Failures: 2}, rules, "increase", 30, false},
		{"failed three times: a person", 30, ReservationNow{Units: 30, State: "failed", Failures: 3}, rules, "none", 30, true},
		{"failed, none wanted: left", 0, ReservationNow{Units: 30, State: "failed", Failures: 1}, rules, "none", 30, false},
		{"Region quota unknown: increase", 30, ReservationNow{State: "none"}, rules, "increase", 30, false},
		{"Region quota 0 (AWS's default): a person, no request", 30, ReservationNow{State: "none"}, quota(0), "none", 0, true},
		{"exactly the Region quota: increase", 30, ReservationNow{State: "none"}, quota(30), "increase", 30, false},
		{"one over the Region quota: a person", 31, ReservationNow{Units: 10, State: "provisioned", MedicSet: true}, quota(30), "none", 10, true},
		{"over the Region quota, lowering: allowed", 20, ReservationNow{Units: 40, State: "provisioned", MedicSet: true}, quota(10), "decrease", 20, false},
		{"failed and over the Region quota: a person, no retry", 30, ReservationNow{Units: 30, State: "failed", Failures: 1}, quota(0), "none", 30, true},
	} {
		got := PlanReservation(tc.want, tc.r, tc.rules)
		if got.Op != tc.wantOp || got.Units != tc.wantUnits || got.NeedsPerson != tc.person {
			t.Errorf("%s: got %+v", tc.desc, got)
		}
	}
}

func TestWeekBack(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, tc := range []struct {
		desc  string
		a     time.Time
		wantA time.Time
	}{
		{"the coming hour: a week ago", t0, t0.Add(-week)},
		{"in two hours: a week ago", t0.Add(2 * time.Hour), t0.Add(2*time.Hour - week)},
		{"in ten days: two weeks back", t0.Add(10 * 24 * time.Hour), t0.Add(10*24*time.Hour - 2*week)},
	} {
		a, b := weekBack(tc.a, tc.a.Add(time.Hour), t0)
		if !a.Equal(tc.wantA) || b.After(t0) {
			t.Errorf("%s: got %s..%s", tc.desc, a, b)
		}
	}
}

// The describe sources config validates against are exactly those this
// package implements.
func TestDescribeSourcesMatchConfig(t *testing.T) {
	impl := map[string]bool{}
	for _, d := range Catalogue {
		impl[d.Describe] = true
	}
	impl["ec2_launch_templates"] = true // implemented, not in the catalogue (no quota code medic vouches for)
	var got []string
	for k := range impl {
		got = append(got, k)
	}
	want := append([]string(nil), config.LimitsDescribeSources...)
	sort.Strings(got)
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("implemented %v\nconfig      %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("implemented %v\nconfig      %v", got, want)
		}
	}
	if len(Catalogue) < 15 {
		t.Errorf("catalogue has %d quotas, want at least 15", len(Catalogue))
	}
}
