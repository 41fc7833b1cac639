package healer

import (
	"fmt"
	"math"
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
// max_unhealthy 34%, grace from the asg, 10 actions an hour, failure_ratio
// 0.6 over 15, stop after 1 failed replacement; but az_correlation off.
func defaultPolicy() config.Policy {
	return config.Policy{
		UnhealthyAfter:              3,
		HealthyAfter:                2,
		MaxUnhealthy:                config.IntOrPercent{Value: 34, IsPercent: true},
		GracePeriod:                 config.GracePeriod{FromASG: true},
		MaxActionsPerHour:           10,
		FailureRatio:                0.6,
		FailureWindow:               15,
		StopAfterFailedReplacements: 1,
	}
}

// results turns a pattern like "FFP" into probe results one second apart,
// the first at start; F fails with status 500, T fails with a timeout, _ is
// a slot skipped (no result).
func results(start time.Time, pattern string) []probes.Result {
	var out []probes.Result
	for i, c := range pattern {
		r := probes.Result{Start: start.Add(time.Duration(i) * time.Second), Duration: 10 * time.Millisecond}
		switch c {
		case '_':
			continue
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

// since sets when the instance entered InService.
func since(in discovery.Instance, t time.Time) discovery.Instance {
	in.InServiceSince = t
	return in
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
	groups := []discovery.Group{{Name: "web-asg", GracePeriod: 5 * time.Minute}, {Name: "standby-asg", GracePeriod: 10 * time.Second}}
	probe1s := config.Probe{Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second)}
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
		probe      config.Probe // zero: no freshness check
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

		// Grace counts from the entry into InService.
		{desc: "back from Standby 10s ago (grace 10s), launched long ago: one instant before the end of grace is grace",
			inst: since(inService("i-1", "standby-asg", old), t0.Add(-10*time.Second+time.Nanosecond)), history: "FFF",
			want: Grace, wantReason: "(in service since 11:59:50Z, grace 10s from asg standby-asg)"},
		{desc: "back from Standby exactly the grace period ago: judged",
			inst: since(inService("i-1", "standby-asg", old), t0.Add(-10*time.Second)), history: "FFF",
			want: Bad},
		{desc: "no InServiceSince: grace from the launch time, and the reason says so",
			inst: inService("i-1", "standby-asg", t0.Add(-5*time.Second)), history: "FFF",
			want: Grace, wantReason: "(launched 11:59:55Z, grace 10s"},

		// Freshness (interval 1s, timeout 1s: stale after 3s, a gap over 1.5s).
		{desc: "fresh: the newest result exactly 3s old still counts",
			inst: inService("i-1", "web-asg", old), history: "PPP", start: t0.Add(-5 * time.Second), probe: probe1s,
			want: Healthy},
		{desc: "stale: the newest result 3s and an instant old is unknown, never healthy",
			inst: inService("i-1", "web-asg", old), history: "PPP", start: t0.Add(-5*time.Second - time.Nanosecond), probe: probe1s,
			want: Unknown, wantReason: "older than 3s"},
		{desc: "stale failures are unknown too, not bad",
			inst: inService("i-1", "web-asg", old), history: "FFFF", start: t0.Add(-time.Minute), probe: probe1s,
			want: Unknown},
		{desc: "missed slots, then one pass (healthy_after 2): unknown",
			inst: inService("i-1", "web-asg", old), history: "PPPP___P", probe: probe1s,
			want: Unknown, wantReason: "probe slots were missed before 11:59:59Z; 1 of 2 fresh results since"},
		{desc: "missed slots, then two passes: healthy",
			inst: inService("i-1", "web-asg", old), history: "PPPP___PP", probe: probe1s,
			want: Healthy},
		{desc: "one missed slot (2s between results, over 1.5 intervals) and one pass since: unknown",
			inst: inService("i-1", "web-asg", old), history: "PP_P", probe: probe1s,
			want: Unknown},
		{desc: "no missed slot: healthy",
			inst: inService("i-1", "web-asg", old), history: "PPPP", probe: probe1s,
			want: Healthy},
		{desc: "failures across missed slots are not consecutive",
			inst: inService("i-1", "web-asg", old), history: "PPFF___F", probe: probe1s,
			want: Suspect, wantReason: "1 failed probe"},

		// The ratio rule (failure_ratio 0.6 over 15: 9 failures).
		{desc: "fails 2 of every 3, never 3 in a row: bad on the ratio",
			inst: inService("i-1", "web-asg", old), history: "FFPFFPFFPFFPFFP",
			want: Bad, wantReason: "10 of the last 15 probes failed (failure_ratio 0.6; latest: status 500"},
		{desc: "ratio exactly at the threshold (9 of 15): bad",
			inst: inService("i-1", "web-asg", old), history: "PFPFFPFPFFPFPFF",
			want: Bad, wantReason: "9 of the last 15"},
		{desc: "ratio one below the threshold (8 of 15): suspect",
			inst: inService("i-1", "web-asg", old), history: "PFPFPPFPFFPFPFF",
			want: Suspect},
		{desc: "window not yet full (14 results, 10 failed): the ratio rule waits",
			inst: inService("i-1", "web-asg", old), history: "FFPFFPFFPFFPFP",
			want: Healthy},
		{desc: "a two-probe blip in a full window is not bad",
			inst: inService("i-1", "web-asg", old), history: "PPPPPPPPPPPPPFF",
			want: Suspect},
		{desc: "healthy_after passes end the ratio rule's hold",
			inst: inService("i-1", "web-asg", old), history: "FFPFFPFFPFFPFFPP",
			want: Healthy},

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
				Probe:    tc.probe,
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

// TestJudgePeers: the evidence an instance needs grows with its peers'
// background failures, and an instance is bad only when it stands out.
func TestJudgePeers(t *testing.T) {
	old := t0.Add(-24 * time.Hour)
	rep := func(unit string, n int) string { return strings.Repeat(unit, n/len(unit)+1)[:n] }
	tests := []struct {
		desc       string
		peers      []string // each peer's history (64 results)
		target     string   // i-0's history
		want       State
		wantReason string
	}{
		{desc: "peers never fail: plain unhealthy_after 3",
			peers:  []string{rep("P", 64), rep("P", 64), rep("P", 64), rep("P", 64), rep("P", 64)},
			target: rep("P", 61) + "FFF", want: Bad, wantReason: "3 consecutive failed probes"},
		{desc: "peers fail a third of their probes: 3 in a row is not enough",
			peers:  []string{rep("PPF", 64), rep("PFP", 64), rep("FPP", 64), rep("PPF", 64), rep("PFP", 64)},
			target: rep("PPF", 61) + "FFF", want: Suspect, wantReason: "in a row its peers' failures call for (unhealthy_after 3)"},
		{desc: "peers fail a third of their probes: a long run still stands out",
			peers:  []string{rep("PPF", 64), rep("PFP", 64), rep("FPP", 64), rep("PPF", 64), rep("PFP", 64)},
			target: rep("F", 64), want: Bad, wantReason: "so 2"},
		{desc: "one peer failing hard is a standout, not background",
			peers:  []string{rep("F", 64), rep("P", 64), rep("P", 64), rep("P", 64), rep("P", 64)},
			target: rep("P", 61) + "FFF", want: Bad, wantReason: "3 consecutive failed probes"},
		{desc: "peers fail 2 of 3 like the target: the ratio rule does not call it bad",
			peers:  []string{rep("FFP", 64), rep("FPF", 64), rep("PFF", 64), rep("FFP", 64), rep("FPF", 64)},
			target: rep("FFP", 64), want: Suspect},
		{desc: "peers pass, the target fails 2 of 3: bad on the ratio",
			peers:  []string{rep("P", 64), rep("P", 64), rep("P", 64), rep("P", 64), rep("P", 64)},
			target: rep("FFP", 64), want: Bad, wantReason: "of the last 15 probes failed"},
		{desc: "peers fail 10%: 3 in a row is not enough",
			peers:  []string{rep("PPPPPPPPPF", 64), rep("PPPPPFPPPP", 64), rep("PPPPPPPPPF", 64), rep("PFPPPPPPPP", 64)},
			target: rep("P", 61) + "FFF", want: Suspect},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			start := t0.Add(-64 * time.Second)
			snap := discovery.Snapshot{Groups: []discovery.Group{{Name: "web-asg"}}}
			hist := map[string][]probes.Result{}
			for i, h := range append([]string{tc.target}, tc.peers...) {
				id := fmt.Sprintf("i-%d", i)
				snap.Instances = append(snap.Instances, inService(id, "web-asg", old))
				hist[id] = results(start, h)
			}
			got := Judge(JudgeInput{Snapshot: snap, History: hist, Policy: defaultPolicy(), Now: t0})
			if v := got[0]; v.State != tc.want || !strings.Contains(v.Reason, tc.wantReason) {
				t.Errorf("i-0 = %s (%q), want %s containing %q", v.State, v.Reason, tc.want, tc.wantReason)
			}
		})
	}
}

func TestStreakNeeded(t *testing.T) {
	tests := []struct {
		desc string
		p    float64
		want int
	}{
		{"no background: unhealthy_after", 0, 3},
		{"1%: 5 in a row (0.01^5 = 1e-10)", 0.01, 5},
		{"just above 1%: 5", 0.0101, 5},
		{"10%: 9", 0.10, 9},
		{"30%: 18", 0.30, 18},
		{"certain failure: never", 1, math.MaxInt32},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := streakNeeded(tc.p, 3); got != tc.want {
				t.Errorf("streakNeeded(%g, 3) = %d, want %d", tc.p, got, tc.want)
			}
		})
	}
}

func TestBinomialTail(t *testing.T) {
	tests := []struct {
		desc string
		k, n int
		p    float64
		want float64
	}{
		{"k 0 is certain", 0, 15, 0.3, 1},
		{"k above n is impossible", 16, 15, 0.3, 0},
		{"p 0: impossible", 1, 15, 0, 0},
		{"all of 3 at 0.5", 3, 3, 0.5, 0.125},
		{"at least 2 of 3 at 0.5", 2, 3, 0.5, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := binomialTail(tc.k, tc.n, tc.p); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("binomialTail(%d, %d, %g) = %g, want %g", tc.k, tc.n, tc.p, got, tc.want)
			}
		})
	}
}
