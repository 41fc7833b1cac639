package healer

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
)

// fleet builds verdicts for one group from a pattern: H healthy, S suspect,
// B bad, G grace, U unknown, N not in service, X bad but already Unhealthy
// to the group, h healthy but already Unhealthy to the group. Instance ids
// are <group>-<index>; bad ones failed since t0 minus (10 - index) minutes,
// so lower indexes failed first.
func fleet(group, pattern string) []Verdict {
	var out []Verdict
	for i, c := range pattern {
		inst := discovery.Instance{ID: fmt.Sprintf("%s-%d", group, i), Group: group, AZ: "us-east-1a",
			LaunchTime: t0.Add(-time.Hour), LifecycleState: "InService", HealthStatus: "Healthy"}
		v := Verdict{Instance: inst, Reason: "test"}
		switch c {
		case 'H':
			v.State = Healthy
		case 'S':
			v.State = Suspect
		case 'B':
			v.State = Bad
			v.Since = t0.Add(-time.Duration(10-i) * time.Minute)
		case 'G':
			v.State = Grace
		case 'U':
			v.State = Unknown
		case 'N':
			v.State = NotInService
			v.Instance.LifecycleState = "Pending"
		case 'X':
			v.State = Bad
			v.Instance.HealthStatus = "Unhealthy"
		case 'h':
			v.State = Healthy
			v.Instance.HealthStatus = "Unhealthy"
		}
		out = append(out, v)
	}
	return out
}

// inAZ moves verdicts to zone az.
func inAZ(az string, vs []Verdict) []Verdict {
	for i := range vs {
		vs[i].Instance.AZ = az
	}
	return vs
}

// zones builds one group spread over zones a and b from two patterns, with
// ids <group>-a<i> and <group>-b<i>.
func zones(group, a, b string) []Verdict {
	va, vb := inAZ("us-east-1a", fleet(group, a)), inAZ("us-east-1b", fleet(group, b))
	for i := range va {
		va[i].Instance.ID = fmt.Sprintf("%s-a%d", group, i)
	}
	for i := range vb {
		vb[i].Instance.ID = fmt.Sprintf("%s-b%d", group, i)
	}
	return append(va, vb...)
}

// desired is one group with that desired capacity.
func desired(name string, n int) []discovery.Group {
	return []discovery.Group{{Name: name, Desired: n}}
}

// suspended is one group with processes suspended.
func suspended(name string, n int, processes ...string) []discovery.Group {
	return []discovery.Group{{Name: name, Desired: n, SuspendedProcesses: processes}}
}

// thin sets each verdict's latest outcomes: probes held, and failures in order.
func thin(vs []Verdict, probes int, failures ...int) []Verdict {
	for i := range vs {
		vs[i].Probes, vs[i].Failures = probes, failures[i]
	}
	return vs
}

func azOn(p *config.Policy) { p.AZCorrelation = true; p.MaxUnhealthy = pct(100) }

func pct(n int) config.IntOrPercent   { return config.IntOrPercent{Value: n, IsPercent: true} }
func count(n int) config.IntOrPercent { return config.IntOrPercent{Value: n} }

// ago returns n times, each d before now.
func ago(ds ...time.Duration) []time.Time {
	var out []time.Time
	for _, d := range ds {
		out = append(out, t0.Add(-d))
	}
	return out
}

func TestGuard(t *testing.T) {
	failing := EndpointState{Configured: true, Healthy: false, Reason: "status 503"}
	passing := EndpointState{Configured: true, Healthy: true}

	type refusal struct {
		reason    RefusalReason
		detail    string // substring
		instances string // comma-separated
	}
	tests := []struct {
		desc     string
		verdicts []Verdict
		endpoint EndpointState // zero: not configured
		recent   []time.Time
		policy   func(*config.Policy)
		groups   []discovery.Group
		self     SelfHealth
		marked   string // comma-separated ids medic marked, not yet held Unhealthy
		stopped  map[string]Stop
		mark     string // comma-separated ids, in marking order
		refused  []refusal
	}{
		{desc: "zero instances: nothing to do"},
		{desc: "az correlation: 2 bad of 3 in one zone, the other zone fine: refused",
			verdicts: zones("web", "BBH", "HHH"), endpoint: passing, policy: azOn,
			refused: []refusal{{AZCorrelated, "all 2 bad instances are in us-east-1a, 2 of its 3 probed instances", "web-a0,web-a1"}}},
		{desc: "az correlation: exactly half of the zone (2 of 4) is refused",
			verdicts: zones("web", "BBHH", "HHHH"), endpoint: passing, policy: azOn,
			refused: []refusal{{AZCorrelated, "2 of its 4 probed", "web-a0,web-a1"}}},
		{desc: "az correlation: under half of the zone (2 of 5) is marked",
			verdicts: zones("web", "BBHHH", "HHHHH"), endpoint: passing, policy: azOn, mark: "web-a0,web-a1"},
		{desc: "az correlation: one bad instance is never a zone fault",
			verdicts: zones("web", "BH", "HH"), endpoint: passing, policy: azOn, mark: "web-a0"},
		{desc: "az correlation: bad in two zones is not one zone's fault",
			verdicts: zones("web", "BBH", "BHH"), endpoint: passing, policy: azOn, mark: "web-a0,web-b0,web-a1"}, // oldest failure first
		{desc: "az correlation: a single-zone service cannot tell, so marks",
			verdicts: inAZ("us-east-1a", fleet("web", "BBHH")), endpoint: passing, policy: azOn, mark: "web-0,web-1"},
		{desc: "az correlation off: 2 bad of 3 in one zone are marked",
			verdicts: zones("web", "BBH", "HHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = pct(100) },
			mark: "web-a0,web-a1"},
		{desc: "all healthy: nothing to do", verdicts: fleet("web", "HHH"), endpoint: passing},
		{desc: "suspect is not marked", verdicts: fleet("web", "HHS"), endpoint: passing},
		{desc: "one bad of six at 34% is marked", verdicts: fleet("web", "BHHHHH"), endpoint: passing,
			mark: "web-0"},
		{desc: "exactly at max_unhealthy: 2 bad of 6 at 34% (2.04 → 2) are marked, oldest failure first",
			verdicts: fleet("web", "HBHHBH"), endpoint: passing,
			mark: "web-1,web-4"},
		{desc: "one over max_unhealthy: 3 bad of 6 at 34% (2) are refused",
			verdicts: fleet("web", "BBBHHH"), endpoint: passing,
			refused: []refusal{{MaxUnhealthy, "3 of 6 desired in web are unavailable (3 bad; 3 available), above max_unhealthy 34% (2)", "web-0,web-1,web-2"}}},
		{desc: "34% of 3 is 1.02 → 1: one bad is marked",
			verdicts: fleet("web", "HBH"), endpoint: passing, mark: "web-1"},
		{desc: "34% of 3 is 1.02 → 1: two bad are refused",
			verdicts: fleet("web", "BBH"), endpoint: passing,
			refused: []refusal{{MaxUnhealthy, "2 of 3 desired in web are unavailable (2 bad; 1 available), above max_unhealthy 34% (1)", "web-0,web-1"}}},
		{desc: "50% of 5 is 2.5 → 2: two bad are marked",
			verdicts: fleet("web", "BBHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = pct(50) },
			mark: "web-0,web-1"},
		{desc: "50% of 5 is 2.5 → 2: three bad are refused",
			verdicts: fleet("web", "BBBHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = pct(50) },
			refused: []refusal{{MaxUnhealthy, "above max_unhealthy 50% (2)", "web-0,web-1,web-2"}}},
		{desc: "0% allows none",
			verdicts: fleet("web", "BHHHHHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = pct(0) },
			refused: []refusal{{MaxUnhealthy, "1 of 10 desired in web are unavailable (1 bad; 9 available), above max_unhealthy 0% (0)", "web-0"}}},
		{desc: "100% allows every bad instance while one healthy remains",
			verdicts: fleet("web", "BBBH"), endpoint: failing, policy: func(p *config.Policy) { p.MaxUnhealthy = pct(100) },
			mark: "web-0,web-1,web-2"},
		{desc: "count form 2: exactly 2 bad are marked",
			verdicts: fleet("web", "BBH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = count(2) },
			mark: "web-0,web-1"},
		{desc: "count form 2: 3 bad are refused",
			verdicts: fleet("web", "BBBHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = count(2) },
			refused: []refusal{{MaxUnhealthy, "3 of 8 desired in web are unavailable (3 bad; 5 available), above max_unhealthy 2", "web-0,web-1,web-2"}}},
		{desc: "already Unhealthy bad instances need nothing but count against max_unhealthy",
			verdicts: fleet("web", "XXBHHH"), endpoint: passing,
			refused: []refusal{{MaxUnhealthy, "3 of 6", "web-2"}}},
		{desc: "only already Unhealthy bad instances: nothing to do, no refusal",
			verdicts: fleet("web", "XHHHHH"), endpoint: passing},
		{desc: "not-in-service instances do not count as InService",
			verdicts: fleet("web", "BHHNNN"), endpoint: passing,
			mark: "web-0"},
		{desc: "one instance, bad, endpoint passing: service-wide (medic's probes at fault)",
			verdicts: fleet("web", "B"), endpoint: passing,
			refused: []refusal{{ServiceWideFailure, "the only probed instance is bad while the service endpoint passes", "web-0"}}},
		{desc: "one instance, bad, with a sibling in grace: service-wide",
			verdicts: fleet("web", "BG"), endpoint: failing,
			refused: []refusal{{ServiceWideFailure, "the only probed instance is bad and the service endpoint fails too (status 503)", "web-0"}}},
		{desc: "service-wide: endpoint failing and every probed instance bad (grace/unknown/pending ignored)",
			verdicts: fleet("web", "BBBBGUN"), endpoint: failing,
			refused: []refusal{{ServiceWideFailure, "all 4 probed instances are bad and the service endpoint fails too (status 503): likely medic's network or a shared dependency", "web-0,web-1,web-2,web-3"}}},
		{desc: "service-wide across groups",
			verdicts: append(fleet("a", "BB"), fleet("b", "BB")...), endpoint: failing,
			refused: []refusal{{ServiceWideFailure, "all 4 probed instances", "a-0,a-1,b-0,b-1"}}},
		{desc: "service-wide without endpoint: every probed instance bad",
			verdicts: fleet("web", "BBB"),
			refused:  []refusal{{ServiceWideFailure, "no endpoint is configured", "web-0,web-1,web-2"}}},
		{desc: "no endpoint, one healthy: not service-wide, max_unhealthy decides",
			verdicts: fleet("web", "BBH"), policy: func(p *config.Policy) { p.MaxUnhealthy = pct(100) },
			mark: "web-0,web-1"},
		{desc: "endpoint failing but one instance healthy: not service-wide",
			verdicts: fleet("web", "BHH"), endpoint: failing, mark: "web-0"},
		{desc: "last healthy: bad plus a suspect, no healthy left",
			verdicts: fleet("web", "BS"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = pct(100) },
			refused: []refusal{{LastHealthy, "no healthy InService instance left in web", "web-0"}}},
		{desc: "last healthy: the only healthy one is already Unhealthy to the group",
			verdicts: fleet("web", "BhG"), endpoint: passing, policy: func(p *config.Policy) { p.MaxUnhealthy = pct(100) },
			refused: []refusal{{LastHealthy, "no healthy InService instance left in web", "web-0"}}},
		{desc: "last healthy is per group: group b has none, group a marks",
			verdicts: append(fleet("a", "BHH"), fleet("b", "BS")...), endpoint: passing,
			policy:  func(p *config.Policy) { p.MaxUnhealthy = pct(100) },
			mark:    "a-0",
			refused: []refusal{{LastHealthy, "left in b", "b-0"}}},
		{desc: "max_unhealthy is per group",
			verdicts: append(fleet("a", "BBHH"), fleet("b", "BHHH")...), endpoint: passing,
			mark:    "b-0",
			refused: []refusal{{MaxUnhealthy, "2 of 4 desired in a are unavailable (2 bad; 2 available), above max_unhealthy 34% (1)", "a-0,a-1"}}},
		// The capacity budget counts against desired capacity.
		{desc: "budget in flight: 2 of 6 held Unhealthy (their probes pass again), a 3rd fails: refused",
			verdicts: fleet("web", "hhBHHH"), endpoint: passing, groups: desired("web", 6),
			refused: []refusal{{MaxUnhealthy, "3 of 6 desired in web are unavailable (1 bad, 2 held Unhealthy; 3 available), above max_unhealthy 34% (2)", "web-2"}}},
		{desc: "marked by medic, not yet held Unhealthy: counted, so a 3rd bad is refused",
			verdicts: fleet("web", "BHHHBH"), endpoint: passing, groups: desired("web", 6), marked: "web-1,web-2",
			refused: []refusal{{MaxUnhealthy, "4 of 6 desired", "web-0,web-4"}}},
		{desc: "marked by medic: never a candidate again",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, groups: desired("web", 6), marked: "web-0"},
		{desc: "suspects count as unavailable: 1 bad + 2 suspect of 6 at 34% refused",
			verdicts: fleet("web", "BSSHHH"), endpoint: passing, groups: desired("web", 6),
			refused: []refusal{{MaxUnhealthy, "3 of 6 desired in web are unavailable (1 bad, 2 suspect; 3 available)", "web-0"}}},
		{desc: "exactly at the budget: 1 bad + 1 suspect of 6 at 34% marked",
			verdicts: fleet("web", "BSHHHH"), endpoint: passing, groups: desired("web", 6), mark: "web-0"},
		{desc: "grace and unknown count as unavailable",
			verdicts: fleet("web", "BGUHHH"), endpoint: passing, groups: desired("web", 6),
			refused: []refusal{{MaxUnhealthy, "(1 bad, 2 in grace or unknown; 3 available)", "web-0"}}},
		{desc: "desired above InService: the missing instances count (1 bad, 1 missing of 6)",
			verdicts: fleet("web", "BHHHH"), endpoint: passing, groups: desired("web", 6), mark: "web-0"},
		{desc: "desired above InService: 1 bad, 2 missing of 6 is over",
			verdicts: fleet("web", "BHHH"), endpoint: passing, groups: desired("web", 6),
			refused: []refusal{{MaxUnhealthy, "(1 bad, 2 missing; 3 available)", "web-0"}}},
		{desc: "a Pending replacement beside 6 InService does not add capacity",
			verdicts: fleet("web", "BBHHHHN"), endpoint: passing, groups: desired("web", 6),
			mark: "web-0,web-1"},
		{desc: "3 of 6 break at once at 34%: none marked",
			verdicts: fleet("web", "BBBHHH"), endpoint: passing, groups: desired("web", 6),
			refused: []refusal{{MaxUnhealthy, "3 of 6 desired", "web-0,web-1,web-2"}}},
		{desc: "desired 1 at count 1: the last healthy is never marked",
			verdicts: fleet("web", "B"), endpoint: failing, groups: desired("web", 1),
			policy:  func(p *config.Policy) { p.MaxUnhealthy = count(1) },
			refused: []refusal{{ServiceWideFailure, "the only probed instance", "web-0"}}},

		// medic's own health and pauses.
		{desc: "self unwell: nothing marked, the reason given",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, self: SelfHealth{Unwell: true, Reason: "probes start 3s late"},
			refused: []refusal{{SelfUnwell, "medic itself is unwell (probes start 3s late)", "web-0"}}},
		{desc: "self unwell stands with no bad instance",
			verdicts: fleet("web", "HHH"), endpoint: passing, self: SelfHealth{Unwell: true, Reason: "DNS errors"},
			refused: []refusal{{SelfUnwell, "DNS errors", ""}}},
		{desc: "service paused by policy",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.Paused = true },
			refused: []refusal{{Paused, "policy paused: true", "web-0"}}},
		{desc: "group paused by tag medic:pause=true, the other group marks",
			verdicts: append(fleet("a", "BHHHHH"), fleet("b", "BHHHHH")...), endpoint: passing,
			groups:  []discovery.Group{{Name: "a", Desired: 6, Tags: map[string]string{"medic:pause": "true"}}, {Name: "b", Desired: 6}},
			mark:    "b-0",
			refused: []refusal{{Paused, `a carries the tag medic:pause="true"`, "a-0"}}},
		{desc: "tag medic:pause with an empty value pauses",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing,
			groups:  []discovery.Group{{Name: "web", Desired: 6, Tags: map[string]string{"medic:pause": ""}}},
			refused: []refusal{{Paused, "medic:pause", "web-0"}}},
		{desc: "tag medic:pause=False does not pause",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing,
			groups: []discovery.Group{{Name: "web", Desired: 6, Tags: map[string]string{"medic:pause": "False"}}},
			mark:   "web-0"},
		{desc: "a paused group stands refused with no bad instance",
			verdicts: fleet("web", "HHH"), endpoint: passing,
			groups:  []discovery.Group{{Name: "web", Desired: 3, Tags: map[string]string{"medic:pause": "yes"}}},
			refused: []refusal{{Paused, "medic:pause", ""}}},

		// The group's own state.
		{desc: "ReplaceUnhealthy suspended: no mark, the process named",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, groups: suspended("web", 6, "ReplaceUnhealthy"),
			refused: []refusal{{ProcessSuspended, "web has suspended ReplaceUnhealthy: the group would not replace a marked instance", "web-0"}}},
		{desc: "Launch suspended: a mark would shrink the group",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, groups: suspended("web", 6, "Launch"),
			refused: []refusal{{ProcessSuspended, "suspended Launch: the group could not launch a replacement", "web-0"}}},
		{desc: "Terminate suspended",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, groups: suspended("web", 6, "Terminate"),
			refused: []refusal{{ProcessSuspended, "suspended Terminate", "web-0"}}},
		{desc: "HealthCheck suspended",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, groups: suspended("web", 6, "HealthCheck"),
			refused: []refusal{{ProcessSuspended, "suspended HealthCheck", "web-0"}}},
		{desc: "AZRebalance suspended does not matter",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, groups: suspended("web", 6, "AZRebalance", "AddToLoadBalancer"),
			mark: "web-0"},
		{desc: "instance refresh in progress",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing,
			groups:  []discovery.Group{{Name: "web", Desired: 6, InstanceRefresh: "InProgress"}},
			refused: []refusal{{InstanceRefresh, "web is in an instance refresh (InProgress)", "web-0"}}},
		{desc: "replacements failing: stopped, a person must act",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, groups: desired("web", 6),
			stopped: map[string]Stop{"web": {Since: t0, Detail: "1 replacement launched since medic's mark is bad"}},
			refused: []refusal{{ReplacementsFailing, "1 replacement launched since", "web-0"}}},
		{desc: "lifecycle states other than InService are never candidates",
			verdicts: func() []Verdict {
				vs := fleet("web", "HHHHHH")
				for i, st := range []string{"Pending:Wait", "Terminating:Wait", "Standby", "Detaching", "Warmed:Running"} {
					vs[i].State, vs[i].Instance.LifecycleState = Bad, st
				}
				return vs
			}(), endpoint: passing, groups: desired("web", 6)},

		// Spread thin: many failing a little, none standing out.
		{desc: "spread thin: 3 of 6 failing some, 6% of probes, none bad",
			verdicts: thin(fleet("web", "SSHHSH"), 64, 8, 6, 0, 0, 9, 0), endpoint: passing,
			refused: []refusal{{SpreadThin, "3 of 6 probed instances failed some of their latest probes (6.0% of 384), none stands out: medic's vantage point or a shared dependency is likely at fault, while the service endpoint passes", ""}}},
		{desc: "spread thin needs 5% of probes: 4.7% is not",
			verdicts: thin(fleet("web", "SSHHSH"), 64, 5, 4, 0, 0, 9, 0), endpoint: passing},
		{desc: "spread thin needs half the instances failing some: 2 of 6 is not",
			verdicts: thin(fleet("web", "SSHHHH"), 64, 20, 20, 0, 0, 0, 0), endpoint: passing},
		{desc: "one standing out is not spread thin: it is marked",
			verdicts: thin(fleet("web", "BSHHHH"), 64, 40, 8, 3, 3, 9, 0), endpoint: passing, mark: "web-0"},
		{desc: "rate: 9 recent marks of 10 leave one; oldest failure first",
			verdicts: fleet("web", "HHBBHHHHHH"), endpoint: passing,
			recent:  ago(1*time.Minute, 2*time.Minute, 3*time.Minute, 4*time.Minute, 5*time.Minute, 6*time.Minute, 7*time.Minute, 8*time.Minute, 9*time.Minute),
			mark:    "web-2",
			refused: []refusal{{RateLimit, "9 marks in the last hour of max_actions_per_hour 10: marking 1 now, 1 bad instance wait", "web-3"}}},
		{desc: "rate: exactly max_actions_per_hour in the hour refuses all",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxActionsPerHour = 2 },
			recent:  ago(59*time.Minute, time.Second),
			refused: []refusal{{RateLimit, "2 marks in the last hour of max_actions_per_hour 2: marking 0 now", "web-0"}}},
		{desc: "rate: a 61-minute-old action no longer counts",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxActionsPerHour = 2 },
			recent: ago(61*time.Minute, time.Second),
			mark:   "web-0"},
		{desc: "rate: an action exactly an hour old no longer counts",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxActionsPerHour = 1 },
			recent: ago(time.Hour),
			mark:   "web-0"},
		{desc: "rate: recent actions in any order",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxActionsPerHour = 2 },
			recent:  ago(time.Second, 2*time.Hour, 30*time.Minute),
			refused: []refusal{{RateLimit, "2 marks", "web-0"}}},
		{desc: "rate: max_actions_per_hour 0 is monitor only",
			verdicts: fleet("web", "BHHHHH"), endpoint: passing, policy: func(p *config.Policy) { p.MaxActionsPerHour = 0 },
			refused: []refusal{{RateLimit, "max_actions_per_hour is 0 (monitor only)", "web-0"}}},
		{desc: "rate: oldest failure first across groups, ties by id",
			verdicts: func() []Verdict {
				vs := append(fleet("a", "HHHB"), fleet("b", "HHHB")...)
				vs[7].Since = vs[3].Since // same failure start: by id
				vs = append(vs, fleet("c", "HHBH")...)
				return vs
			}(),
			endpoint: passing, policy: func(p *config.Policy) { p.MaxActionsPerHour = 2 },
			mark:    "c-2,a-3",
			refused: []refusal{{RateLimit, "marking 2 now, 1 bad instance wait", "b-3"}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := defaultPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			markedSet := map[string]bool{}
			for _, id := range strings.Split(tc.marked, ",") {
				markedSet[id] = id != ""
			}
			d := Guard(GuardInput{Verdicts: tc.verdicts, Groups: tc.groups, Endpoint: tc.endpoint, RecentActions: tc.recent,
				Policy: p, Now: t0, Self: tc.self, Marked: markedSet, Stopped: tc.stopped})
			var marked []string
			for _, v := range d.Mark {
				marked = append(marked, v.Instance.ID)
				if v.State != Bad {
					t.Errorf("marking %s in state %s", v.Instance.ID, v.State)
				}
			}
			if got := strings.Join(marked, ","); got != tc.mark {
				t.Errorf("mark = %q, want %q", got, tc.mark)
			}
			if len(d.Refusals) != len(tc.refused) {
				t.Fatalf("refusals = %+v, want %d", d.Refusals, len(tc.refused))
			}
			for i, want := range tc.refused {
				got := d.Refusals[i]
				if got.Reason != want.reason {
					t.Errorf("refusal %d reason = %s, want %s", i, got.Reason, want.reason)
				}
				if !strings.Contains(got.Detail, want.detail) {
					t.Errorf("refusal %d detail = %q, want it to contain %q", i, got.Detail, want.detail)
				}
				if want.instances == "" && len(got.Instances) == 0 {
					continue
				}
				if !reflect.DeepEqual(got.Instances, strings.Split(want.instances, ",")) {
					t.Errorf("refusal %d instances = %v, want %s", i, got.Instances, want.instances)
				}
			}
		})
	}
}

func TestAllowedUnhealthy(t *testing.T) {
	tests := []struct {
		desc      string
		mu        config.IntOrPercent
		inService int
		want      int
	}{
		{"34% of 3 = 1.02 → 1", pct(34), 3, 1},
		{"34% of 6 = 2.04 → 2", pct(34), 6, 2},
		{"34% of 2 = 0.68 → 0", pct(34), 2, 0},
		{"34% of 1 = 0.34 → 0", pct(34), 1, 0},
		{"50% of 5 = 2.5 → 2", pct(50), 5, 2},
		{"100% of 7 = 7", pct(100), 7, 7},
		{"0% of 10 = 0", pct(0), 10, 0},
		{"any % of 0 = 0", pct(34), 0, 0},
		{"count 2 of 6 = 2", count(2), 6, 2},
		{"count 2 of 1 = 2", count(2), 1, 2},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := allowedUnhealthy(tc.mu, tc.inService); got != tc.want {
				t.Errorf("allowedUnhealthy(%+v, %d) = %d, want %d", tc.mu, tc.inService, got, tc.want)
			}
		})
	}
}
