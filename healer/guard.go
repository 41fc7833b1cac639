package healer

import (
	"fmt"
	"sort"
	"time"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
)

// RateWindow is the sliding window of max_actions_per_hour.
const RateWindow = time.Hour

// EndpointState is what the probe through the load balancer says about the
// service as a whole.
type EndpointState struct {
	Configured bool   // the service has an endpoint
	Healthy    bool   // its last probe passed
	Reason     string // why the last probe failed ("status 503"), empty when healthy
}

// RefusalReason says why the guard refused to mark bad instances. The values
// are the `reason` label of medic_guard_refusals_total and medic_guard_refusing.
type RefusalReason string

const (
	// MaxUnhealthy: more of a group's InService instances are bad than the
	// policy's max_unhealthy allows; replacing them could take the group down.
	MaxUnhealthy RefusalReason = "max_unhealthy"
	// ServiceWideFailure: every probed instance of the service is bad; the
	// fault is likely medic's own network or a shared dependency.
	ServiceWideFailure RefusalReason = "service_wide_failure"
	// RateLimit: max_actions_per_hour marks were already made in the last hour.
	RateLimit RefusalReason = "rate_limit"
	// LastHealthy: the group has no judged-healthy InService instance left
	// to carry the traffic while the bad ones are replaced.
	LastHealthy RefusalReason = "last_healthy"
	// AZCorrelated: the bad instances are all in one availability zone and
	// at least half of it; the fault is likely the zone's, and the group's
	// replacements would land in it too.
	AZCorrelated RefusalReason = "az_correlated"
)

// RefusalReasons lists every RefusalReason.
var RefusalReasons = []RefusalReason{MaxUnhealthy, ServiceWideFailure, RateLimit, LastHealthy, AZCorrelated}

// Refusal is one reason the guard would not mark some bad instances.
type Refusal struct {
	Reason RefusalReason
	// Detail is a sentence with the numbers behind the refusal.
	Detail string
	// Instances are the ids of the bad instances not marked, sorted.
	Instances []string
}

// Decision is the guard's answer: the instances to mark Unhealthy now, in
// the order to mark them, and why the other bad ones are left alone.
type Decision struct {
	Mark     []Verdict
	Refusals []Refusal
}

// GuardInput is everything Guard looks at.
type GuardInput struct {
	Verdicts []Verdict
	// Groups of the service, for the record: the guard counts a group's
	// InService and bad instances from the verdicts themselves.
	Groups   []discovery.Group
	Endpoint EndpointState
	// RecentActions are the times of earlier marks of this service, any
	// order; those within the last RateWindow count against the budget.
	RecentActions []time.Time
	Policy        config.Policy
	Now           time.Time
}

// Guard decides which bad instances may be marked Unhealthy without making
// the service worse. Candidates are InService instances judged Bad whose
// group still reports them Healthy (already Unhealthy ones need nothing).
// With no candidates the decision is empty. Otherwise, in this order:
//
//  1. Service-wide failure: when every probed instance of the service
//     (Healthy, Suspect or Bad; grace, unknown and not-in-service ones don't
//     count) is Bad, nothing is marked. If the endpoint fails too, or there
//     is no endpoint to ask, the fault is most likely medic's own network
//     or a shared dependency; if the endpoint passes, the load balancer
//     reaches the instances and medic does not, so medic's probes are at
//     fault. Either way replacing every instance cannot help.
//  2. Per group, max_unhealthy: when the group's Bad InService instances
//     outnumber the allowance, none of its candidates is marked. A
//     percentage allows floor(pct × InService / 100) (34% of 6 → 2); a
//     count allows that many. Exactly at the allowance is allowed.
//  3. Per group, last healthy: when the group has no InService instance
//     both judged Healthy and reported Healthy by the group, none of its
//     candidates is marked: nothing would carry the traffic.
//  4. AZ correlation (policy az_correlation): when two or more probed
//     instances are Bad, all in one zone of a service probed in two or
//     more zones, and they are at least half of that zone's probed
//     instances, none of the remaining candidates is marked: the zone is
//     at fault, and replacements would land in it too.
//  5. Rate: the remaining candidates, oldest failure first (then by id),
//     are marked up to max_actions_per_hour minus the marks in the last
//     RateWindow; the rest are refused. max_actions_per_hour 0 means
//     monitor only: nothing is ever marked.
//
// Every refusal names its instances and gives the numbers.
func Guard(in GuardInput) Decision {
	var cands []Verdict
	probed, probedBad := 0, 0
	byGroup := map[string][]Verdict{}
	for _, v := range in.Verdicts {
		switch v.State {
		case Healthy, Suspect:
			probed++
		case Bad:
			probed++
			probedBad++
		}
		byGroup[v.Instance.Group] = append(byGroup[v.Instance.Group], v)
		if isCandidate(v) {
			cands = append(cands, v)
		}
	}
	if len(cands) == 0 {
		return Decision{}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if !a.Since.Equal(b.Since) {
			return a.Since.Before(b.Since)
		}
		return a.Instance.ID < b.Instance.ID
	})

	var d Decision
	if probedBad == probed {
		d.Refusals = append(d.Refusals, Refusal{
			Reason:    ServiceWideFailure,
			Detail:    serviceWideDetail(probed, in.Endpoint),
			Instances: ids(cands),
		})
		return d
	}

	candsByGroup := map[string][]Verdict{}
	for _, c := range cands {
		candsByGroup[c.Instance.Group] = append(candsByGroup[c.Instance.Group], c)
	}
	refusedGroup := map[string]bool{}
	for _, g := range sortedKeys(candsByGroup) {
		gc := candsByGroup[g]
		inService, bad, healthy := 0, 0, 0
		for _, v := range byGroup[g] {
			if v.Instance.LifecycleState != lifecycleInService {
				continue
			}
			inService++
			switch {
			case v.State == Bad:
				bad++
			case v.State == Healthy && v.Instance.HealthStatus == healthHealthy:
				healthy++
			}
		}
		if allowed := allowedUnhealthy(in.Policy.MaxUnhealthy, inService); bad > allowed {
			refusedGroup[g] = true
			d.Refusals = append(d.Refusals, Refusal{
				Reason: MaxUnhealthy,
				Detail: fmt.Sprintf("%d of %d InService instances in %s are bad, above max_unhealthy %s",
					bad, inService, g, formatAllowance(in.Policy.MaxUnhealthy, allowed)),
				Instances: ids(gc),
			})
			continue
		}
		if healthy == 0 {
			refusedGroup[g] = true
			d.Refusals = append(d.Refusals, Refusal{
				Reason: LastHealthy,
				Detail: fmt.Sprintf("no healthy InService instance left in %s (%d InService, %d bad, the rest in grace, unknown, suspect or already Unhealthy): marking %s would leave nothing to serve",
					g, inService, bad, plural(len(gc), "bad instance")),
				Instances: ids(gc),
			})
		}
	}

	var eligible []Verdict
	for _, c := range cands { // keeps the oldest-failure-first order
		if !refusedGroup[c.Instance.Group] {
			eligible = append(eligible, c)
		}
	}
	if len(eligible) == 0 {
		return d
	}
	if in.Policy.AZCorrelation {
		if r, ok := azCorrelated(in.Verdicts, eligible); ok {
			d.Refusals = append(d.Refusals, r)
			return d
		}
	}
	used := actionsInWindow(in.RecentActions, in.Now)
	budget := max(in.Policy.MaxActionsPerHour-used, 0)
	if budget >= len(eligible) {
		d.Mark = eligible
		return d
	}
	d.Mark = eligible[:budget:budget]
	waiting := eligible[budget:]
	var detail string
	if in.Policy.MaxActionsPerHour <= 0 {
		detail = fmt.Sprintf("max_actions_per_hour is 0 (monitor only): not marking %s", plural(len(waiting), "bad instance"))
	} else {
		detail = fmt.Sprintf("%s in the last hour of max_actions_per_hour %d: marking %d now, %s wait",
			plural(used, "mark"), in.Policy.MaxActionsPerHour, budget, plural(len(waiting), "bad instance"))
	}
	d.Refusals = append(d.Refusals, Refusal{Reason: RateLimit, Detail: detail, Instances: ids(waiting)})
	return d
}

// azCorrelated reports a refusal when the probed Bad instances are two or
// more, all in one zone of a service probed in several, and at least half
// of that zone's probed instances.
func azCorrelated(verdicts, cands []Verdict) (Refusal, bool) {
	probed, bad := map[string]int{}, map[string]int{}
	for _, v := range verdicts {
		switch v.State {
		case Healthy, Suspect:
			probed[v.Instance.AZ]++
		case Bad:
			probed[v.Instance.AZ]++
			bad[v.Instance.AZ]++
		}
	}
	if len(probed) < 2 || len(bad) != 1 {
		return Refusal{}, false
	}
	for az, n := range bad {
		if n < 2 || 2*n < probed[az] {
			return Refusal{}, false
		}
		return Refusal{
			Reason: AZCorrelated,
			Detail: fmt.Sprintf("all %d bad instances are in %s, %d of its %d probed instances, while the service's other zones are fine: "+
				"likely a fault of the zone, and replacements would land there too; marking none (consider a zonal shift)",
				n, az, n, probed[az]),
			Instances: ids(cands),
		}, true
	}
	return Refusal{}, false
}

// isCandidate: judged Bad, InService, in a group, and still Healthy to the group.
func isCandidate(v Verdict) bool {
	return v.State == Bad &&
		v.Instance.LifecycleState == lifecycleInService &&
		v.Instance.Group != "" &&
		v.Instance.HealthStatus == healthHealthy
}

func serviceWideDetail(probed int, ep EndpointState) string {
	all := "the only probed instance is bad"
	if probed > 1 {
		all = fmt.Sprintf("all %d probed instances are bad", probed)
	}
	switch {
	case !ep.Configured:
		return all + " and no endpoint is configured to tell otherwise: likely medic's network or a shared dependency, not the instances; marking none"
	case !ep.Healthy:
		why := ""
		if ep.Reason != "" {
			why = " (" + ep.Reason + ")"
		}
		return all + " and the service endpoint fails too" + why + ": likely medic's network or a shared dependency, not the instances; marking none"
	default:
		return all + " while the service endpoint passes: the load balancer reaches them and medic does not, so medic's probes are likely at fault; marking none"
	}
}

// allowedUnhealthy is how many of inService instances may be bad: a count
// as is, a percentage rounded down.
func allowedUnhealthy(mu config.IntOrPercent, inService int) int {
	if mu.IsPercent {
		return mu.Value * inService / 100
	}
	return mu.Value
}

// formatAllowance says "34% (2)" for a percentage, "2" for a count.
func formatAllowance(v config.IntOrPercent, allowed int) string {
	if v.IsPercent {
		return fmt.Sprintf("%d%% (%d)", v.Value, allowed)
	}
	return fmt.Sprint(v.Value)
}

// actionsInWindow counts the actions less than RateWindow before now
// (an action exactly RateWindow old no longer counts; future ones do).
func actionsInWindow(actions []time.Time, now time.Time) int {
	from := now.Add(-RateWindow)
	n := 0
	for _, t := range actions {
		if t.After(from) {
			n++
		}
	}
	return n
}

func ids(vs []Verdict) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Instance.ID)
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
