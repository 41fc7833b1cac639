package healer

import (
	"fmt"
	"strings"
)

// This file compares three views of one service: the endpoint probed
// through the load balancer, the instances probed directly, and the load
// balancer's own target health. Where they disagree, the disagreement says
// where the fault is — and whether marking instances could help at all.

// VantageVerdict names one combination of the three views. The values are
// the `verdict` label of a per-service gauge.
type VantageVerdict string

const (
	// VantageOK: the instances pass, the endpoint passes (or there is none)
	// and the load balancer agrees (or says nothing).
	VantageOK VantageVerdict = "ok"
	// VantageNoData: no instance has been judged on probes yet.
	VantageNoData VantageVerdict = "no_data"
	// VantageLBOrRouting: the endpoint fails while every instance passes
	// direct and the load balancer still finds them healthy: the fault is in
	// the load balancer, its listeners or rules, DNS or the route to it.
	// Never a reason to mark an instance.
	VantageLBOrRouting VantageVerdict = "lb_or_routing_problem"
	// VantageLBDisagrees: instances that pass direct are unhealthy to the
	// load balancer: its health check settings, or its path to them
	// (security groups, network ACLs), differ from medic's.
	VantageLBDisagrees VantageVerdict = "lb_health_check_disagrees"
	// VantageInstancesFailing: some instances fail direct and the load
	// balancer has taken them out of rotation too (or says nothing).
	VantageInstancesFailing VantageVerdict = "instances_failing"
	// VantageFailingLBRoutes: some instances fail direct while the load
	// balancer still finds them healthy and routes traffic to them: users
	// see the failures medic sees.
	VantageFailingLBRoutes VantageVerdict = "instances_failing_lb_routes"
	// VantageServiceDown: every instance fails direct, the endpoint fails
	// too, and the load balancer does not find them all healthy.
	VantageServiceDown VantageVerdict = "service_down"
	// VantageMedic: every instance fails direct, but the endpoint passes or
	// the load balancer finds every one healthy: medic's own vantage (its
	// network, its probe settings) is the likely fault.
	VantageMedic VantageVerdict = "medic_vantage"
	// VantageUnconfirmed: every instance fails direct and neither an
	// endpoint nor the load balancer can say whether it is the service or
	// medic.
	VantageUnconfirmed VantageVerdict = "all_failing_unconfirmed"
)

// VantageVerdicts lists every VantageVerdict, for metrics initialisation.
var VantageVerdicts = []VantageVerdict{VantageOK, VantageNoData, VantageLBOrRouting, VantageLBDisagrees,
	VantageInstancesFailing, VantageFailingLBRoutes, VantageServiceDown, VantageMedic, VantageUnconfirmed}

// Vantage is the comparison's result.
type Vantage struct {
	Verdict VantageVerdict
	// Evidence is a sentence with the counts behind the verdict.
	Evidence string
	// MarksHelp is false when the verdict says replacing instances cannot
	// help (lb_or_routing_problem, lb_health_check_disagrees, service_down,
	// medic_vantage, all_failing_unconfirmed): a reason for the status page
	// and notifications, in line with what Guard refuses.
	MarksHelp bool
	// Probed and Failing count the judged instances (Healthy, Suspect, Bad)
	// and the Bad ones.
	Probed, Failing int
	// LBRoutesFailing counts the Bad instances every target group of which
	// still reports healthy.
	LBRoutesFailing int
}

// lbView of a set of instances: what their target groups say.
type lbViewKind int

const (
	lbUnknown lbViewKind = iota // no instance of the set has target health
	lbRoutes                    // every one with target health is healthy in all its target groups
	lbMixed                     // some are, some are not
	lbOut                       // none is healthy in all its target groups
)

// CompareVantage judges the endpoint (through the load balancer), the
// instances (direct, from the verdicts) and the load balancer's target
// health (Instance.LBHealth) together. Only judged instances count (Healthy
// and Suspect pass, Bad fails; grace, unknown and not-in-service ones are
// left out). It decides, in this order:
//
//   - nothing judged → no_data;
//   - no instance failing: the endpoint failing → lb_or_routing_problem,
//     or lb_health_check_disagrees when the load balancer finds none of
//     them healthy; the endpoint passing (or none) → ok, or
//     lb_health_check_disagrees when the load balancer finds any of them
//     not healthy;
//   - some failing: the load balancer still routing to any failing one →
//     instances_failing_lb_routes, else instances_failing;
//   - all failing: the endpoint passing, or the load balancer finding every
//     one healthy → medic_vantage; else the endpoint failing →
//     service_down; else (no endpoint) the load balancer finding some not
//     healthy → service_down, saying nothing → all_failing_unconfirmed.
//
// An instance counts as healthy to the load balancer when every target
// group that lists it says "healthy".
func CompareVantage(ep EndpointState, verdicts []Verdict) Vantage {
	var passing, failing []Verdict
	for _, v := range verdicts {
		switch v.State {
		case Healthy, Suspect:
			passing = append(passing, v)
		case Bad:
			failing = append(failing, v)
		}
	}
	out := Vantage{Probed: len(passing) + len(failing), Failing: len(failing)}
	lbFail, routed := lbViewOf(failing)
	out.LBRoutesFailing = routed
	lbPass, _ := lbViewOf(passing)
	epText := endpointText(ep)

	switch {
	case out.Probed == 0:
		out.Verdict = VantageNoData
		out.Evidence = "no instance judged on probes yet"
		return out
	case len(failing) == 0 && ep.Configured && !ep.Healthy && lbPass == lbOut:
		out.Verdict = VantageLBDisagrees
		out.Evidence = fmt.Sprintf("the endpoint fails%s and the load balancer finds none of the %s healthy, yet all pass medic's direct probes: "+
			"check the load balancer's health check settings and its path to the instances (security groups, network ACLs)", epText, plural(len(passing), "instance"))
	case len(failing) == 0 && ep.Configured && !ep.Healthy:
		out.Verdict = VantageLBOrRouting
		out.Evidence = fmt.Sprintf("the endpoint fails%s while all %s pass medic's direct probes%s: "+
			"a load balancer, listener, DNS or routing problem, not the instances'", epText, plural(len(passing), "instance"), lbPhrase(lbPass))
	case len(failing) == 0 && (lbPass == lbOut || lbPass == lbMixed):
		out.Verdict = VantageLBDisagrees
		out.Evidence = fmt.Sprintf("all %s pass medic's direct probes%s, but the load balancer finds %d of them not healthy: "+
			"its health check settings or its path to them differ from medic's", plural(len(passing), "instance"), endpointPasses(ep), notHealthyCount(passing))
	case len(failing) == 0:
		out.Verdict = VantageOK
		out.Evidence = fmt.Sprintf("all %s pass medic's direct probes%s%s", plural(len(passing), "instance"), endpointPasses(ep), lbPhrase(lbPass))
		out.MarksHelp = true
		return out
	case len(passing) > 0 && (lbFail == lbRoutes || lbFail == lbMixed):
		out.Verdict = VantageFailingLBRoutes
		out.Evidence = fmt.Sprintf("%d of %d instances fail medic's direct probes and the load balancer still routes to %d of them%s: users see these failures",
			len(failing), out.Probed, routed, endpointAlso(ep))
		out.MarksHelp = true
		return out
	case len(passing) > 0:
		out.Verdict = VantageInstancesFailing
		out.Evidence = fmt.Sprintf("%d of %d instances fail medic's direct probes%s%s", len(failing), out.Probed, lbPhrase(lbFail), endpointAlso(ep))
		out.MarksHelp = true
		return out
	case (ep.Configured && ep.Healthy) || lbFail == lbRoutes:
		out.Verdict = VantageMedic
		out.Evidence = fmt.Sprintf("all %s fail medic's direct probes, but %s: the load balancer reaches them and medic does not; "+
			"likely medic's own network or probe settings (or a load balancer health check shallower than medic's probe)",
			plural(len(failing), "instance"), medicEvidence(ep, lbFail))
	case ep.Configured || lbFail == lbOut || lbFail == lbMixed:
		out.Verdict = VantageServiceDown
		out.Evidence = fmt.Sprintf("all %s fail medic's direct probes%s%s: the service is down, likely a shared dependency; replacing instances will not help",
			plural(len(failing), "instance"), endpointAlso(ep), lbPhrase(lbFail))
	default:
		out.Verdict = VantageUnconfirmed
		out.Evidence = fmt.Sprintf("all %s fail medic's direct probes, and with no endpoint and no load balancer view nothing tells the service's fault from medic's",
			plural(len(failing), "instance"))
	}
	return out
}

// lbViewOf classifies what the load balancer says of vs, and counts those
// it finds healthy in every target group listing them.
func lbViewOf(vs []Verdict) (lbViewKind, int) {
	known, healthy := 0, 0
	for _, v := range vs {
		if len(v.Instance.LBHealth) == 0 {
			continue
		}
		known++
		if lbFindsHealthy(v) {
			healthy++
		}
	}
	switch {
	case known == 0:
		return lbUnknown, 0
	case healthy == known:
		return lbRoutes, healthy
	case healthy == 0:
		return lbOut, 0
	}
	return lbMixed, healthy
}

func lbFindsHealthy(v Verdict) bool {
	for _, h := range v.Instance.LBHealth {
		if h.State != lbHealthy {
			return false
		}
	}
	return len(v.Instance.LBHealth) > 0
}

func notHealthyCount(vs []Verdict) int {
	n := 0
	for _, v := range vs {
		if len(v.Instance.LBHealth) > 0 && !lbFindsHealthy(v) {
			n++
		}
	}
	return n
}

func lbPhrase(k lbViewKind) string {
	switch k {
	case lbRoutes:
		return "; the load balancer finds them healthy"
	case lbMixed:
		return "; the load balancer finds some of them healthy"
	case lbOut:
		return "; the load balancer finds them not healthy"
	}
	return ""
}

func endpointText(ep EndpointState) string {
	if ep.Reason == "" {
		return ""
	}
	return " (" + ep.Reason + ")"
}

func endpointPasses(ep EndpointState) string {
	if ep.Configured && ep.Healthy {
		return " and the endpoint passes"
	}
	return ""
}

func endpointAlso(ep EndpointState) string {
	switch {
	case !ep.Configured:
		return ""
	case ep.Healthy:
		return "; the endpoint passes"
	}
	return "; the endpoint fails too" + endpointText(ep)
}

func medicEvidence(ep EndpointState, lb lbViewKind) string {
	var parts []string
	if ep.Configured && ep.Healthy {
		parts = append(parts, "the endpoint through the load balancer passes")
	}
	if lb == lbRoutes {
		parts = append(parts, "the load balancer finds every one healthy")
	}
	return strings.Join(parts, " and ")
}
