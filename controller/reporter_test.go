package controller

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
)

type recorder struct {
	mu     sync.Mutex
	events []alerts.Event
}

func (r *recorder) Notify(e alerts.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

// eventKinds is each event's kind, "/resolved" added to a resolution.
func eventKinds(es []alerts.Event) []string {
	var out []string
	for _, e := range es {
		k := string(e.Kind)
		if e.Resolved {
			k += "/resolved"
		}
		out = append(out, k)
	}
	return out
}

func (r *recorder) take() []alerts.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// step is one heal cycle as the reporter sees it, and the events it must
// send for it (by kind, in order; "" Resolved suffix "/resolved").
type step struct {
	at        time.Duration // since t0
	instances []healer.Verdict
	outcomes  map[string]healer.Outcome
	refusals  []healer.Refusal
	endpoint  healer.EndpointState
	standby   bool // with a lease, this replica does not lead in this cycle
	want      []string
	// page is what the status page gets of the cycle (pageKinds), in
	// order; nil: the events sent, and nothing else.
	page []string
}

// pageKinds is eventKinds with a mark's result added: "instance_marked:gone".
func pageKinds(es []alerts.Event) []string {
	out := eventKinds(es)
	for i, e := range es {
		if e.Kind == alerts.InstanceMarked {
			out[i] += ":" + e.Labels["result"]
		}
	}
	return out
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func inst(id string, st healer.State) healer.Verdict {
	return healer.Verdict{Instance: discovery.Instance{ID: id, Group: "web-asg", AZ: "us-east-1a", LifecycleState: "InService"},
		State: st, Reason: "because " + string(st)}
}

func TestReporter(t *testing.T) {
	svc := config.Service{Name: "web", Endpoint: "http://127.0.0.1/health",
		InstanceProbe: config.Probe{Interval: config.Duration(time.Second)},
		Policy:        config.Policy{HealthyAfter: 2, GracePeriod: config.GracePeriod{Duration: 10 * time.Second}}}
	up := healer.EndpointState{Configured: true, Healthy: true}
	down := healer.EndpointState{Configured: true, Reason: "status 503"}
	marked := map[string]healer.Outcome{"i-1": {Result: healer.ResultMarked, Attempts: 1}}
	tests := []struct {
		desc         string
		steps        []step
		wantReplaced map[string]float64 // medic_replacements_total by outcome at the end
	}{
		{desc: "marked, replaced, newcomer healthy with the endpoint passing for healthy_after intervals: recovered once",
			steps: []step{
				{at: 0, instances: []healer.Verdict{inst("i-1", healer.Bad), inst("i-2", healer.Healthy)}, outcomes: marked, endpoint: up,
					want: []string{"instance_marked"}},
				{at: 5 * time.Second, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Grace)}, endpoint: up},
				{at: 15 * time.Second, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Healthy)}, endpoint: up},
				{at: 16 * time.Second, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Healthy)}, endpoint: up},
				{at: 17 * time.Second, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Healthy)}, endpoint: up,
					want: []string{"replacement_recovered"}},
				{at: 18 * time.Second, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Healthy)}, endpoint: up},
			},
			wantReplaced: map[string]float64{"recovered": 1, "not_recovered": 0}},
		{desc: "the endpoint failing restarts the settle time",
			steps: []step{
				{at: 0, instances: []healer.Verdict{inst("i-1", healer.Bad), inst("i-2", healer.Healthy)}, outcomes: marked, endpoint: up,
					want: []string{"instance_marked"}},
				{at: 15 * time.Second, instances: []healer.Verdict{inst("i-3", healer.Healthy)}, endpoint: up},
				{at: 16 * time.Second, instances: []healer.Verdict{inst("i-3", healer.Healthy)}, endpoint: down, want: []string{"endpoint_failing"}},
				{at: 17 * time.Second, instances: []healer.Verdict{inst("i-3", healer.Healthy)}, endpoint: up, want: []string{"endpoint_recovered/resolved"}},
				{at: 18 * time.Second, instances: []healer.Verdict{inst("i-3", healer.Healthy)}, endpoint: up},
				{at: 19 * time.Second, instances: []healer.Verdict{inst("i-3", healer.Healthy)}, endpoint: up, want: []string{"replacement_recovered"}},
			},
			wantReplaced: map[string]float64{"recovered": 1, "not_recovered": 0}},
		{desc: "no healthy newcomer by grace + recovery window: not recovered, asks for a person",
			steps: []step{
				{at: 0, instances: []healer.Verdict{inst("i-1", healer.Bad), inst("i-2", healer.Healthy)}, outcomes: marked, endpoint: up,
					want: []string{"instance_marked"}},
				{at: 10*time.Second + recoveryWindow, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Bad)}, endpoint: up},
				{at: 10*time.Second + recoveryWindow + time.Second, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Bad)}, endpoint: up,
					want: []string{"replacement_not_recovered"}},
			},
			wantReplaced: map[string]float64{"recovered": 0, "not_recovered": 1}},
		{desc: "a refusal is reported when it starts and when it clears, not every cycle",
			steps: []step{
				{at: 0, refusals: []healer.Refusal{{Reason: healer.MaxUnhealthy, Detail: "3 of 6 bad", Instances: []string{"i-1"}}},
					instances: []healer.Verdict{inst("i-1", healer.Bad)}, endpoint: up, want: []string{"mark_refused"}},
				{at: time.Second, refusals: []healer.Refusal{{Reason: healer.MaxUnhealthy, Detail: "3 of 6 bad", Instances: []string{"i-1"}}},
					instances: []healer.Verdict{inst("i-1", healer.Bad)}, endpoint: up},
				{at: 2 * time.Second, instances: []healer.Verdict{inst("i-1", healer.Healthy)}, endpoint: up, want: []string{"mark_refused/resolved"}},
			},
			wantReplaced: map[string]float64{"recovered": 0, "not_recovered": 0}},
		{desc: "dry run: reported as would-be, no replacement watched; gone and already-unhealthy are sent to no sink, the page gets them",
			steps: []step{
				{at: 0, instances: []healer.Verdict{inst("i-1", healer.Bad), inst("i-4", healer.Bad), inst("i-5", healer.Bad)}, endpoint: up,
					outcomes: map[string]healer.Outcome{"i-1": {Result: healer.ResultDryRun}, "i-4": {Result: healer.ResultGone}, "i-5": {Result: healer.ResultAlreadyUnhealthy}},
					want:     []string{"instance_marked"},
					page:     []string{"instance_marked:dry_run", "instance_marked:gone", "instance_marked:already_unhealthy"}},
				{at: 20*time.Second + recoveryWindow, instances: []healer.Verdict{inst("i-2", healer.Healthy)}, endpoint: up},
			},
			wantReplaced: map[string]float64{"recovered": 0, "not_recovered": 0}},
		{desc: "a failed mark is sent; a standby replica's would-be mark, a skipped and a not-applied one only reach the page; none is watched",
			steps: []step{
				{at: 0, instances: []healer.Verdict{inst("i-1", healer.Bad), inst("i-2", healer.Bad), inst("i-3", healer.Bad), inst("i-4", healer.Bad)}, endpoint: up,
					outcomes: map[string]healer.Outcome{"i-1": {Result: healer.ResultFailed, Attempts: 3}, "i-2": {Result: healer.ResultStandby},
						"i-3": {Result: healer.ResultSkipped, Reason: "Standby"}, "i-4": {Result: healer.ResultNotApplied, Attempts: 2}},
					want: []string{"instance_marked"},
					page: []string{"instance_marked:failed", "instance_marked:standby", "instance_marked:skipped", "instance_marked:not_applied"}},
				{at: 20*time.Second + recoveryWindow, instances: []healer.Verdict{inst("i-5", healer.Healthy)}, endpoint: up},
			},
			wantReplaced: map[string]float64{"recovered": 0, "not_recovered": 0}},
		{desc: "a standby tells no condition; on leading it tells what still holds, then its end",
			steps: []step{
				{at: 0, standby: true, endpoint: down, instances: []healer.Verdict{inst("i-1", healer.Bad)},
					refusals: []healer.Refusal{{Reason: healer.MaxUnhealthy, Detail: "3 of 6 bad", Instances: []string{"i-1"}}}},
				{at: time.Second, endpoint: down, instances: []healer.Verdict{inst("i-1", healer.Bad)},
					refusals: []healer.Refusal{{Reason: healer.MaxUnhealthy, Detail: "3 of 6 bad", Instances: []string{"i-1"}}},
					want:     []string{"endpoint_failing", "mark_refused"}},
				{at: 2 * time.Second, endpoint: up, instances: []healer.Verdict{inst("i-1", healer.Healthy)},
					want: []string{"endpoint_recovered/resolved", "mark_refused/resolved"}},
			},
			wantReplaced: map[string]float64{"recovered": 0, "not_recovered": 0}},
		{desc: "a condition that starts and ends while standing by is never told",
			steps: []step{
				{at: 0, standby: true, endpoint: down},
				{at: time.Second, standby: true, endpoint: up},
				{at: 2 * time.Second, endpoint: up},
			},
			wantReplaced: map[string]float64{"recovered": 0, "not_recovered": 0}},
		{desc: "a leader that lost the lease tells the end of what it told only when it leads again",
			steps: []step{
				{at: 0, endpoint: down, want: []string{"endpoint_failing"}},
				{at: time.Second, standby: true, endpoint: up},
				{at: 2 * time.Second, endpoint: up, want: []string{"endpoint_recovered/resolved"}},
			},
			wantReplaced: map[string]float64{"recovered": 0, "not_recovered": 0}},
		{desc: "its own mark's replacement is told after the lease is lost",
			steps: []step{
				{at: 0, instances: []healer.Verdict{inst("i-1", healer.Bad), inst("i-2", healer.Healthy)}, outcomes: marked, endpoint: up,
					want: []string{"instance_marked"}},
				{at: 15 * time.Second, standby: true, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Healthy)}, endpoint: up},
				{at: 17 * time.Second, standby: true, instances: []healer.Verdict{inst("i-2", healer.Healthy), inst("i-3", healer.Healthy)}, endpoint: up,
					want: []string{"replacement_recovered"}},
			},
			wantReplaced: map[string]float64{"recovered": 1, "not_recovered": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			rec := &recorder{}
			reg := prometheus.NewRegistry()
			standby := false
			r := newReporter(rec, func() bool { return !standby }, reg)
			for i, st := range tc.steps {
				standby = st.standby
				rep := healer.Report{Verdicts: st.instances, Outcomes: st.outcomes, RequestID: "req",
					Decision: healer.Decision{Refusals: st.refusals}}
				var snap discovery.Snapshot
				for _, v := range st.instances {
					snap.Instances = append(snap.Instances, v.Instance)
				}
				before := len(r.events("web"))
				r.observe(svc, snap, rep, st.endpoint, t0.Add(st.at))
				evs := rec.take()
				all := r.events("web") // newest first
				kept := make([]alerts.Event, 0, len(all)-before)
				for j := len(all) - before - 1; j >= 0; j-- {
					kept = append(kept, all[j])
				}
				wantPage := st.page
				if wantPage == nil {
					wantPage = pageKinds(evs)
				}
				if got := pageKinds(kept); strings.Join(got, ",") != strings.Join(wantPage, ",") {
					t.Errorf("step %d (t+%s): the page gets %v, want %v", i, st.at, got, wantPage)
				}
				for _, e := range kept {
					if e.Action == "" || e.Summary == "" {
						t.Errorf("step %d: %s for the page lacks action or summary: %+v", i, e.Kind, e)
					}
				}
				got := eventKinds(evs)
				for _, e := range evs {
					if e.Kind == alerts.InstanceMarked && (len(e.Evidence) == 0 || e.Action == "") {
						t.Errorf("step %d: marked event lacks evidence or action: %+v", i, e)
					}
					if e.NeedsAction != (e.Kind == alerts.ReplacementNotRecovered) {
						t.Errorf("step %d: %s has NeedsAction %v", i, e.Kind, e.NeedsAction)
					}
					if st.standby && e.Kind.ToldByLeader() {
						t.Errorf("step %d: a standby told %s, which alerts.Kind.ToldByLeader says only the leader tells", i, e.Kind)
					}
				}
				if strings.Join(got, ",") != strings.Join(st.want, ",") {
					t.Errorf("step %d (t+%s): events %v, want %v", i, st.at, got, st.want)
				}
			}
			for outcome, want := range tc.wantReplaced {
				if got := testutil.ToFloat64(r.replacements.WithLabelValues("web", outcome)); got != want {
					t.Errorf("medic_replacements_total{outcome=%q} = %v, want %v", outcome, got, want)
				}
			}
			r.forget("web")
			if n := testutil.CollectAndCount(r.replacements); n != 0 {
				t.Errorf("after forget, %d replacement series remain", n)
			}
			if n := len(r.events("web")); n != 0 {
				t.Errorf("after forget, %d events remain", n)
			}
		})
	}
}

// TestReporterRecentEvents: each service keeps its last maxEvents events,
// newest first, whichever way they came (a cycle or Notify, as the zonal
// shifts send theirs), and every one is sent on.
func TestReporterRecentEvents(t *testing.T) {
	rec := &recorder{}
	r := newReporter(rec, nil, nil)
	r.Notify(alerts.Event{Kind: alerts.ZonalShift, Service: "api", Subject: "us-east-1a"})
	for i := range maxEvents + 10 {
		r.Notify(alerts.Event{Kind: alerts.InstanceMarked, Service: "web", Time: t0.Add(time.Duration(i) * time.Second)})
	}
	r.Notify(alerts.Event{Kind: alerts.AWSAPITrouble}) // no service: sent, kept by none
	if n := len(rec.take()); n != maxEvents+12 {
		t.Errorf("%d events sent, want %d", n, maxEvents+12)
	}
	web := r.events("web")
	if len(web) != maxEvents || !web[0].Time.Equal(t0.Add((maxEvents+9)*time.Second)) || !web[maxEvents-1].Time.Equal(t0.Add(10*time.Second)) {
		t.Errorf("web keeps %d events, %s … %s; want the last %d, newest first", len(web), web[0].Time, web[len(web)-1].Time, maxEvents)
	}
	if api := r.events("api"); len(api) != 1 || api[0].Kind != alerts.ZonalShift {
		t.Errorf("api keeps %v", eventKinds(api))
	}
	if n := len(r.recent); n != 2 {
		t.Errorf("%d services keep events, want 2", n)
	}
}
