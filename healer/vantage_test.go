package healer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/medic-sre/medic/discovery"
)

// vantageFleet builds verdicts from an instance pattern — "0" nothing judged
// (two in grace), "A" three passing, "S" two passing and two failing, "X"
// three failing — and a load balancer view of the pattern's subject (the
// passing ones for A, the failing ones for S and X; S's passing ones are
// always healthy to it): "u" no target health, "r" all healthy, "m" the
// first healthy and the rest unhealthy, "o" all unhealthy.
func vantageFleet(pattern, lb string) []Verdict {
	mk := func(id string, s State) Verdict {
		return Verdict{Instance: discovery.Instance{ID: id, LifecycleState: discovery.LifecycleInService}, State: s}
	}
	var subject, others []Verdict
	switch pattern {
	case "0":
		others = []Verdict{mk("g1", Grace), mk("g2", Grace)}
	case "A":
		subject = []Verdict{mk("p1", Healthy), mk("p2", Suspect), mk("p3", Healthy)}
	case "S":
		others = []Verdict{mk("p1", Healthy), mk("p2", Healthy)}
		subject = []Verdict{mk("f1", Bad), mk("f2", Bad)}
	case "X":
		subject = []Verdict{mk("f1", Bad), mk("f2", Bad), mk("f3", Bad)}
	}
	tg := func(state string) []discovery.TargetHealth {
		return []discovery.TargetHealth{{TargetGroup: "web-tg", State: state}}
	}
	for i := range others {
		if pattern == "S" {
			others[i].Instance.LBHealth = tg("healthy")
		}
	}
	for i := range subject {
		switch {
		case lb == "r", lb == "m" && i == 0:
			subject[i].Instance.LBHealth = tg("healthy")
		case lb == "o", lb == "m":
			subject[i].Instance.LBHealth = tg("unhealthy")
		}
	}
	return append(others, subject...)
}

func TestCompareVantageEveryCombination(t *testing.T) {
	endpoints := map[string]EndpointState{
		"N": {},
		"P": {Configured: true, Healthy: true},
		"F": {Configured: true, Reason: "status 503"},
	}
	// want[endpoint][instances] is the verdict for lb views u, r, m, o.
	want := map[string]map[string][4]VantageVerdict{
		"N": {
			"0": {VantageNoData, VantageNoData, VantageNoData, VantageNoData},
			"A": {VantageOK, VantageOK, VantageLBDisagrees, VantageLBDisagrees},
			"S": {VantageInstancesFailing, VantageFailingLBRoutes, VantageFailingLBRoutes, VantageInstancesFailing},
			"X": {VantageUnconfirmed, VantageMedic, VantageServiceDown, VantageServiceDown},
		},
		"P": {
			"0": {VantageNoData, VantageNoData, VantageNoData, VantageNoData},
			"A": {VantageOK, VantageOK, VantageLBDisagrees, VantageLBDisagrees},
			"S": {VantageInstancesFailing, VantageFailingLBRoutes, VantageFailingLBRoutes, VantageInstancesFailing},
			"X": {VantageMedic, VantageMedic, VantageMedic, VantageMedic},
		},
		"F": {
			"0": {VantageNoData, VantageNoData, VantageNoData, VantageNoData},
			"A": {VantageLBOrRouting, VantageLBOrRouting, VantageLBOrRouting, VantageLBDisagrees},
			"S": {VantageInstancesFailing, VantageFailingLBRoutes, VantageFailingLBRoutes, VantageInstancesFailing},
			"X": {VantageServiceDown, VantageMedic, VantageServiceDown, VantageServiceDown},
		},
	}
	helps := map[VantageVerdict]bool{VantageOK: true, VantageInstancesFailing: true, VantageFailingLBRoutes: true}
	seen := map[VantageVerdict]bool{}
	for _, e := range []string{"N", "P", "F"} {
		for _, inst := range []string{"0", "A", "S", "X"} {
			for li, lb := range []string{"u", "r", "m", "o"} {
				desc := fmt.Sprintf("endpoint %s, instances %s, lb %s", e, inst, lb)
				got := CompareVantage(endpoints[e], vantageFleet(inst, lb))
				w := want[e][inst][li]
				seen[got.Verdict] = true
				if got.Verdict != w {
					t.Errorf("%s: %s, want %s (%s)", desc, got.Verdict, w, got.Evidence)
				}
				if got.MarksHelp != helps[w] {
					t.Errorf("%s: MarksHelp %t", desc, got.MarksHelp)
				}
				if got.Evidence == "" || strings.Contains(got.Evidence, "%!") {
					t.Errorf("%s: bad evidence %q", desc, got.Evidence)
				}
			}
		}
	}
	for _, v := range VantageVerdicts {
		if !seen[v] {
			t.Errorf("verdict %s never produced", v)
		}
	}
}

func TestCompareVantageEvidence(t *testing.T) {
	tests := []struct {
		desc string
		ep   EndpointState
		vs   []Verdict
		want string
	}{
		{"endpoint failing, instances passing: routing",
			EndpointState{Configured: true, Reason: "status 503"}, vantageFleet("A", "r"),
			"the endpoint fails (status 503) while all 3 instances pass medic's direct probes; the load balancer finds them healthy: a load balancer, listener, DNS or routing problem, not the instances'"},
		{"failing instances still routed: counted",
			EndpointState{Configured: true, Healthy: true}, vantageFleet("S", "m"),
			"2 of 4 instances fail medic's direct probes and the load balancer still routes to 1 of them; the endpoint passes: users see these failures"},
	}
	for _, tt := range tests {
		if got := CompareVantage(tt.ep, tt.vs); got.Evidence != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.desc, got.Evidence, tt.want)
		}
	}
}
