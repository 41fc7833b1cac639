package healer

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/probes"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// defaultPolicy is config's defaults: unhealthy_after 3, healthy_after 2,
// max_unhealthy 34%, grace from the asg, 10 actions an hour.
func defaultPolicy() config.Policy {
	return config.Policy{
		UnhealthyAfter:    3,
		HealthyAfter:      2,
		MaxUnhealthy:      config.IntOrPercent{Value: 34, IsPercent: true},
		GracePeriod:       config.GracePeriod{FromASG: true},
		MaxActionsPerHour: 10,
	}
}

// results turns a pattern like "FFP" into probe results one second apart,
// the first at start; F fails with status 500, T fails with a timeout.
func results(start time.Time, pattern string) []probes.Result {
	var out []probes.Result
	for i, c := range pattern {
		r := probes.Result{Start: start.Add(time.Duration(i) * time.Second), Duration: 10 * time.Millisecond}
		switch c {
		case 'P':
			r.Success, r.StatusCode = true, 200
		case 'F':
			r.Reason, r.StatusCode = "status 500", 500
		case 'T':
			r.Reason = "timeout"
		}
		out = append(out, r)
	}
	return out
}

func inService(id, group string, launched time.Time) discovery.Instance {
	return discovery.Instance{ID: id, Group: group, AZ: "us-east-1a", LaunchTime: launched,
		LifecycleState: "InService", HealthStatus: "Healthy"}
}

func withLB(in discovery.Instance, hs ...discovery.TargetHealth) discovery.Instance {
	in.LBHealth = hs
	return in
}

func lbSays(tg, state, reason string) discovery.TargetHealth {
	return discovery.TargetHealth{TargetGroup: tg, State: state, Reason: reason}
}

func TestJudge(t *testing.T) {
	old := t0.Add(-24 * time.Hour) // launched long ago: out of any grace
	groups := []discovery.Group{{Name: "web-asg", GracePeriod: 5 * time.Minute}}
	fixed := func(d time.Duration) config.Policy {
		p := defaultPolicy()
		p.GracePeriod = config.GracePeriod{Duration: d}
		return p
	}

	tests := []struct {
		desc       string
		inst       discovery.Instance
		history    string    // pattern for results()
		start      time.Time // of the history; zero: ends one second before now
		policy     config.Policy
		want       State
		wantReason string // substring
		wantSince  time.Time
	}{
		{desc: "pending is not in service",
			inst: func() discovery.Instance {
				i := inService("i-1", "web-asg", old)
				i.LifecycleState = "Pending"
				return i
			}(),
			want: NotInService, wantReason: "lifecycle state Pending, not InService"},
		{desc: "terminating is not in service even with failures",
			inst: func() discovery.Instance {
				i := inService("i-1", "web-asg", old)
				i.LifecycleState = "Terminating"
				return i
			}(),
			history: "FFFF", want: NotInService},
		{desc: "grace from asg: launched 1m ago with 5m asg grace",
			inst: inService("i-1", "web-asg", t0.Add(-time.Minute)), history: "FFFFF",
			want: Grace, wantReason: "in grace period until 12:04:00Z (launched 11:59:00Z, grace 5m0s from asg web-asg)",
			wantSince: t0.Add(-time.Minute)},
		{desc: "fixed grace overrides the asg's: 30s fixed, launched 1m ago, judged",
			inst: inService("i-1", "web-asg", t0.Add(-time.Minute)), history: "PP", policy: fixed(30 * time.Second),
			want: Healthy},
		{desc: "fixed grace: 2m fixed, launched 1m ago",
			inst: inService("i-1", "web-asg", t0.Add(-time.Minute)), history: "PP", policy: fixed(2 * time.Minute),
			want: Grace, wantReason: "grace 2m0s from policy"},
		{desc: "grace boundary: one nanosecond before its end is grace",
			inst: inService("i-1", "web-asg", t0.Add(-5*time.Minute+time.Nanosecond)), history: "PP",
			want: Grace},
		{desc: "grace boundary: exactly at its end is out of grace",
			inst: inService("i-1", "web-asg", t0.Add(-5*time.Minute)), history: "PP",
			want: Healthy},
		{desc: "asg grace from a group missing in the snapshot is zero",
			inst: inService("i-1", "other-asg", t0.Add(-time.Second)), history: "P",
			want: Healthy},
		{desc: "zero launch time means no grace",
			inst: inService("i-1", "web-asg", time.Time{}), history: "P",
			want: Healthy},
		{desc: "no results is unknown",
			inst: inService("i-1", "web-asg", old),
			want: Unknown, wantReason: "no probe results yet"},
		{desc: "all passing is healthy",
			inst: inService("i-1", "web-asg", old), history: "PPPPP", start: t0.Add(-5 * time.Second),
			want: Healthy, wantReason: "5 passing probes since 11:59:55Z", wantSince: t0.Add(-5 * time.Second)},
		{desc: "one failure is suspect",
			inst: inService("i-1", "web-asg", old), history: "PPF", start: t0.Add(-3 * time.Second),
			want: Suspect, wantReason: "1 failed probe (status 500) since 11:59:59Z, below unhealthy_after 3",
			wantSince: t0.Add(-time.Second)},
		{desc: "two failures (one below unhealthy_after) is suspect",
			inst: inService("i-1", "web-asg", old), history: "PFF",
			want: Suspect, wantReason: "2 consecutive failed probes"},
		{desc: "exactly unhealthy_after failures is bad, with evidence",
			inst: inService("i-1", "web-asg", old), history: "PFFF", start: t0,
			want: Bad, wantReason: "3 consecutive failed probes (status 500, status 500, status 500) since 12:00:01Z",
			wantSince: t0.Add(time.Second)},
		{desc: "a long run quotes only the last five reasons",
			inst: inService("i-1", "web-asg", old), history: "FFFFFFTT", start: t0,
			want: Bad, wantReason: "8 consecutive failed probes (last 5: status 500, status 500, status 500, timeout, timeout) since 12:00:00Z"},
		{desc: "unhealthy_after 1: one failure is bad",
			inst: inService("i-1", "web-asg", old), history: "PT",
			policy: func() config.Policy { p := defaultPolicy(); p.UnhealthyAfter = 1; return p }(),
			want:   Bad, wantReason: "1 failed probe (timeout)"},
		{desc: "fails twice then recovers (unhealthy_after 3): never bad, healthy at once",
			inst: inService("i-1", "web-asg", old), history: "PFFP",
			want: Healthy},
		{desc: "hysteresis: fail 3, pass 1 is suspect (recovering)",
			inst: inService("i-1", "web-asg", old), history: "FFFP", start: t0.Add(-4 * time.Second),
			want: Suspect, wantReason: "recovering: 1 of 2 passing probes needed since 11:59:59Z, after 3 consecutive failed probes (status 500, status 500, status 500) ending 11:59:58Z",
			wantSince: t0.Add(-time.Second)},
		{desc: "hysteresis: fail 3, pass 2 is healthy",
			inst: inService("i-1", "web-asg", old), history: "FFFPP",
			want: Healthy, wantReason: "2 passing probes"},
		{desc: "hysteresis: fail 3, pass 1, fail 1 stays suspect and says so",
			inst: inService("i-1", "web-asg", old), history: "FFFPF",
			want: Suspect, wantReason: "failing again since"},
		{desc: "hysteresis: fail 3, pass 1, fail 1, pass 1 is still recovering",
			inst: inService("i-1", "web-asg", old), history: "FFFPFP",
			want: Suspect, wantReason: "recovering: 1 of 2"},
		{desc: "hysteresis: healthy_after 1 recovers on the first pass",
			inst: inService("i-1", "web-asg", old), history: "FFFP",
			policy: func() config.Policy { p := defaultPolicy(); p.HealthyAfter = 1; return p }(),
			want:   Healthy},
		{desc: "fail 3, pass 1, fail 3 is bad again",
			inst: inService("i-1", "web-asg", old), history: "FFFPFFF",
			want: Bad},
		{desc: "failing through grace and still failing when it ends: bad at once",
			inst:    inService("i-1", "web-asg", t0.Add(-5*time.Minute)),
			history: "FFFF", start: t0.Add(-4 * time.Second),
			want: Bad, wantReason: "4 consecutive failed probes"},
		{desc: "slow boot: failures during grace that stopped before it ended start no hysteresis",
			inst:    inService("i-1", "web-asg", t0.Add(-5*time.Minute-time.Second)), // grace ended at -1s
			history: "FFFFP", start: t0.Add(-6 * time.Second),                        // the pass at -2s is still in grace
			want: Healthy, wantReason: "1 passing probe since"},
		{desc: "failures lasting past the end of grace then a pass: recovering",
			inst:    inService("i-1", "web-asg", t0.Add(-5*time.Minute-2*time.Second)),
			history: "FFFFFP", start: t0.Add(-6 * time.Second), // grace ended at -2s, the pass is at -1s
			want: Suspect, wantReason: "recovering"},

		// The load balancer's view is evidence in the reason of a Bad or
		// Suspect verdict; it never changes the state or since.
		{desc: "lb unhealthy: bad, the reason quotes the lb's reason",
			inst:    withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "unhealthy", "Target.ResponseCodeMismatch")),
			history: "PFFF", start: t0,
			want: Bad, wantReason: "3 consecutive failed probes (status 500, status 500, status 500) since 12:00:01Z; the load balancer sees it unhealthy (Target.ResponseCodeMismatch)",
			wantSince: t0.Add(time.Second)},
		{desc: "lb healthy: still bad on medic's probes, the reason says the lb disagrees",
			inst: withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "healthy", "")), history: "PFFF", start: t0,
			want: Bad, wantReason: "since 12:00:01Z; the load balancer still sees it healthy", wantSince: t0.Add(time.Second)},
		{desc: "lb healthy: failing suspect says still healthy",
			inst: withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "healthy", "")), history: "PPF", start: t0.Add(-3 * time.Second),
			want: Suspect, wantReason: "1 failed probe (status 500) since 11:59:59Z, below unhealthy_after 3; the load balancer still sees it healthy",
			wantSince: t0.Add(-time.Second)},
		{desc: "lb healthy: a recovering suspect says healthy, not still healthy",
			inst: withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "healthy", "")), history: "FFFP",
			want: Suspect, wantReason: "ending 11:59:58Z; the load balancer sees it healthy"},
		{desc: "lb unhealthy on a failing-again suspect",
			inst: withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "unhealthy", "Target.Timeout")), history: "FFFPF",
			want: Suspect, wantReason: "still recovering from 3 consecutive failed probes (status 500, status 500, status 500) ending 11:59:57Z; the load balancer sees it unhealthy (Target.Timeout)"},
		{desc: "lb draining with no reason code",
			inst: withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "draining", "")), history: "PFFF",
			want: Bad, wantReason: "; the load balancer sees it draining"},
		{desc: "two target groups that agree: one phrase",
			inst: withLB(inService("i-1", "web-asg", old),
				lbSays("web-tg", "unhealthy", "Target.Timeout"), lbSays("admin-tg", "unhealthy", "Target.Timeout")),
			history: "PFFF",
			want:    Bad, wantReason: "; the load balancer sees it unhealthy (Target.Timeout)"},
		{desc: "two target groups that disagree: one phrase each, in the group's order",
			inst: withLB(inService("i-1", "web-asg", old),
				lbSays("web-tg", "unhealthy", "Target.ResponseCodeMismatch"), lbSays("admin-tg", "healthy", "")),
			history: "PFFF",
			want:    Bad, wantReason: "; the load balancer sees it unhealthy in web-tg (Target.ResponseCodeMismatch), healthy in admin-tg"},
		{desc: "lb unhealthy does not make a passing instance anything but healthy",
			inst:    withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "unhealthy", "Target.ResponseCodeMismatch")),
			history: "PPPPP", start: t0.Add(-5 * time.Second),
			want: Healthy, wantReason: "5 passing probes since 11:59:55Z", wantSince: t0.Add(-5 * time.Second)},
		{desc: "lb unhealthy does not end grace",
			inst:    withLB(inService("i-1", "web-asg", t0.Add(-time.Minute)), lbSays("web-tg", "unhealthy", "Target.FailedHealthChecks")),
			history: "FFFFF",
			want:    Grace, wantSince: t0.Add(-time.Minute)},
		{desc: "lb unhealthy without probe results is unknown",
			inst: withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "unhealthy", "Target.Timeout")),
			want: Unknown, wantReason: "no probe results yet"},
		{desc: "lb unhealthy on an instance not in service",
			inst: func() discovery.Instance {
				i := withLB(inService("i-1", "web-asg", old), lbSays("web-tg", "draining", "Target.DeregistrationInProgress"))
				i.LifecycleState = "Terminating"
				return i
			}(),
			history: "FFFF", want: NotInService},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := tc.policy
			if p == (config.Policy{}) {
				p = defaultPolicy()
			}
			history := map[string][]probes.Result{}
			if tc.history != "" {
				start := tc.start
				if start.IsZero() {
					start = t0.Add(-time.Duration(len(tc.history)) * time.Second)
				}
				history[tc.inst.ID] = results(start, tc.history)
			}
			got := Judge(JudgeInput{
				Snapshot: discovery.Snapshot{Service: "web", Groups: groups, Instances: []discovery.Instance{tc.inst}, At: t0},
				History:  history,
				Policy:   p,
				Now:      t0,
			})
			if len(got) != 1 {
				t.Fatalf("Judge returned %d verdicts, want 1", len(got))
			}
			v := got[0]
			if v.State != tc.want {
				t.Errorf("state = %s, want %s (reason %q)", v.State, tc.want, v.Reason)
			}
			if !strings.Contains(v.Reason, tc.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", v.Reason, tc.wantReason)
			}
			if v.Reason == "" {
				t.Error("empty reason")
			}
			if mentions := strings.Contains(v.Reason, "load balancer"); mentions != (len(tc.inst.LBHealth) > 0 && (v.State == Bad || v.State == Suspect)) {
				t.Errorf("reason = %q: the load balancer's view belongs in Bad and Suspect reasons only, when known", v.Reason)
			}
			if !tc.wantSince.IsZero() && !v.Since.Equal(tc.wantSince) {
				t.Errorf("since = %s, want %s", v.Since, tc.wantSince)
			}
			if !reflect.DeepEqual(v.Instance, tc.inst) {
				t.Errorf("instance = %+v, want %+v", v.Instance, tc.inst)
			}
		})
	}
}

func TestJudgeFleet(t *testing.T) {
	old := t0.Add(-time.Hour)
	tests := []struct {
		desc      string
		instances []discovery.Instance
		wantIDs   []string
	}{
		{desc: "zero instances: no verdicts"},
		{desc: "sorted by instance id",
			instances: []discovery.Instance{inService("i-3", "a", old), inService("i-1", "a", old), inService("i-2", "b", old)},
			wantIDs:   []string{"i-1", "i-2", "i-3"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := Judge(JudgeInput{Snapshot: discovery.Snapshot{Instances: tc.instances}, Policy: defaultPolicy(), Now: t0})
			var ids []string
			for _, v := range got {
				ids = append(ids, v.Instance.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") {
				t.Errorf("ids = %v, want %v", ids, tc.wantIDs)
			}
		})
	}
}
