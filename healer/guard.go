package healer

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
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

// SelfHealth is medic's view of itself: whether its own probing can be
// trusted (the scheduler is on time, slots are not skipped, its own dials
// and DNS look-ups work).
type SelfHealth struct {
	Unwell bool
	Reason string // why, when Unwell ("probes start 4s late", "DNS errors on 80% of probes")
}

// RefusalReason says why the guard refused to mark bad instances. The values
// are the `reason` label of medic_guard_refusals_total and medic_guard_refusing.
type RefusalReason string

const (
	// SelfUnwell: medic itself is unwell (late or skipped probes, its own
	// dial or DNS errors); its probes cannot be trusted, so it marks nothing.
	SelfUnwell RefusalReason = "self_unwell"
	// Paused: the service's policy says paused, or the group carries the
	// medic:pause tag.
	Paused RefusalReason = "paused"
	// ProcessSuspended: the group has suspended a process a mark relies on
	// (ReplaceUnhealthy, Launch, Terminate, HealthCheck): a mark would not
	// lead to a replacement, or would shrink the group.
	ProcessSuspended RefusalReason = "process_suspended"
	// InstanceRefresh: the group is in an instance refresh; it replaces
	// instances itself, and a mark would race it.
	InstanceRefresh RefusalReason = "instance_refresh"
	// ReplacementsFailing: replacements medic caused in the group are bad
	// too (a bad image or launch template): replacing does not help; a
	// person must act.
	ReplacementsFailing RefusalReason = "replacements_failing"
	// ServiceWideFailure: every probed instance of the service is bad; the
	// fault is likely medic's own network or a shared dependency.
	ServiceWideFailure RefusalReason = "service_wide_failure"
	// SpreadThin: failures are spread thinly over the fleet — many
	// instances failing a little, none standing out: medic's vantage point
	// or a shared dependency is at fault, not an instance.
	SpreadThin RefusalReason = "spread_thin"
	// MaxUnhealthy: the group's unavailable capacity is above the policy's
	// max_unhealthy of its desired capacity; replacing could take it down.
	MaxUnhealthy RefusalReason = "max_unhealthy"
	// LastHealthy: the group has no available instance left to carry the
	// traffic while the bad ones are replaced.
	LastHealthy RefusalReason = "last_healthy"
	// AZCorrelated: the bad instances are all in one availability zone and
	// at least half of it; the fault is likely the zone's, and the group's
	// replacements would land in it too.
	AZCorrelated RefusalReason = "az_correlated"
	// RateLimit: max_actions_per_hour marks were already made in the last hour.
	RateLimit RefusalReason = "rate_limit"
)

// RefusalReasons lists every RefusalReason, in the order the guard applies them.
var RefusalReasons = []RefusalReason{SelfUnwell, Paused, ProcessSuspended, InstanceRefresh, ReplacementsFailing,
	ServiceWideFailure, SpreadThin, MaxUnhealthy, LastHealthy, AZCorrelated, RateLimit, PreflightRefused}

// Refusal is one reason the guard would not mark some bad instances.
type Refusal struct {
	Reason RefusalReason
	// Detail is a sentence with the numbers behind the refusal.
	Detail string
	// Instances are the ids of the bad instances not marked, sorted. A
	// standing refusal (self_unwell, paused, process_suspended,
	// instance_refresh, replacements_failing, spread_thin) holds while its
	// condition does, even with no bad instance to refuse.
	Instances []string
	// Group the refusal is about; empty for the whole service.
	Group string
	// NeedsAction: a person must act before medic marks again here.
	NeedsAction bool
	// Evidence is a line per fact behind the refusal, for notifications.
	Evidence []string
}

// Decision is the guard's answer: the instances to mark Unhealthy now, in
// the order to mark them, and why the other bad ones are left alone.
type Decision struct {
	Mark     []Verdict
	Refusals []Refusal
}

// Stop is a group where marking stopped because the replacements medic
// caused are bad too. The healer keeps them; the guard refuses for them.
type Stop struct {
	Since    time.Time
	Detail   string
	Evidence []string
}

// GuardInput is everything Guard looks at.
type GuardInput struct {
	Verdicts []Verdict
	// Groups of the service: desired capacity, suspended processes,
	// instance refresh, tags.
	Groups   []discovery.Group
	Endpoint EndpointState
	// RecentActions are the times of earlier marks of this service, any
	// order; those within the last RateWindow count against the budget.
	RecentActions []time.Time
	Policy        config.Policy
	Now           time.Time
	Self          SelfHealth
	// Marked are the instances medic marked that discovery does not show
	// held Unhealthy yet, or whose marking failed and waits for its retry:
	// unavailable, and not candidates.
	Marked map[string]bool
	// Stopped are the groups where replacements fail, by name.
	Stopped map[string]Stop
}

// PauseTag is the group tag that pauses medic for the group: present with
// any value but "false" (any case), an empty value included.
const PauseTag = "medic:pause"

// suspendedBlocking are the group processes a mark relies on, with what
// their suspension means for a mark.
var suspendedBlocking = []struct{ process, why string }{
	{"ReplaceUnhealthy", "the group would not replace a marked instance"},
	{"Launch", "the group could not launch a replacement: a mark would shrink it"},
	{"Terminate", "the group would not terminate a marked instance"},
	{"HealthCheck", "the group does not act on health checks"},
}

// Guard decides which bad instances may be marked Unhealthy without making
// the service worse. Candidates are InService instances judged Bad whose
// group still reports them Healthy and that medic has not marked already.
// In this order:
//
//  1. self_unwell: medic itself is unwell → nothing is marked.
//  2. paused: the service's policy says paused → nothing is marked.
//  3. Per group, its own state, the first that applies: the medic:pause
//     tag (paused); a suspended ReplaceUnhealthy, Launch, Terminate or
//     HealthCheck process (process_suspended, naming it); an instance
//     refresh in progress (instance_refresh); replacements failing
//     (replacements_failing, from GuardInput.Stopped) → none of the
//     group's candidates is marked. These refusals (and 1, 2 and 5) stand
//     while their condition holds, with or without candidates.
//  4. Service-wide failure: when every probed instance of the service
//     (Healthy, Suspect or Bad) is Bad, nothing is marked; replacing every
//     instance cannot help.
//  5. spread_thin: at least three probed instances, none Bad, at least
//     half of them with a failure among their latest results, and the
//     pooled failure rate at least 5%: medic's vantage point or a shared
//     dependency is at fault. (Nothing stands out, so nothing is marked.)
//  6. Per group, the capacity budget (max_unhealthy): unavailable =
//     desired − available, where available instances are InService,
//     Healthy to the group, not marked by medic, and judged Healthy (so out
//     of grace). Bad and suspect instances, instances in grace or unknown,
//     held Unhealthy, marked but not yet replaced, and Pending or
//     Terminating replacements are all unavailable. The bad candidates are
//     already among them, so a mark changes nothing in the count: the
//     group's candidates are all marked when unavailable ≤ the allowance,
//     else none. A percentage allows floor(pct × desired / 100) (34% of 6
//     → 2); a count allows that many. Desired is the group's desired
//     capacity (its InService count when the group is not in the input).
//  7. Per group, last healthy: no available instance → none is marked.
//  8. AZ correlation (policy az_correlation): when two or more probed
//     instances are Bad, all in one zone of a service probed in two or
//     more zones, and they are at least half of that zone's probed
//     instances, none of the remaining candidates is marked.
//  9. Rate: the remaining candidates, oldest failure first (then by id),
//     are marked up to max_actions_per_hour minus the marks in the last
//     RateWindow; the rest are refused. max_actions_per_hour 0 means
//     monitor only: nothing is ever marked.
//
// Every refusal names its instances and gives the numbers.
func Guard(in GuardInput) Decision {
	cands := candidates(in)
	var d Decision
	if in.Self.Unwell {
		why := cmp.Or(in.Self.Reason, "no reason given")
		d.Refusals = append(d.Refusals, Refusal{Reason: SelfUnwell, Instances: ids(cands),
			Detail: "medic itself is unwell (" + why + "): its probes cannot be trusted; marking none"})
		return d
	}
	if in.Policy.Paused {
		d.Refusals = append(d.Refusals, Refusal{Reason: Paused, Instances: ids(cands),
			Detail: "the service is paused (policy paused: true): probing and judging, marking none"})
		return d
	}
	blocked := map[string]bool{}
	for _, g := range in.Groups {
		if r, ok := groupState(g, in.Stopped[g.Name]); ok {
			r.Instances = ids(inGroup(cands, g.Name))
			d.Refusals = append(d.Refusals, r)
			blocked[g.Name] = true
		}
	}
	probed, probedBad := 0, 0
	for _, v := range in.Verdicts {
		switch v.State {
		case Healthy, Suspect:
			probed++
		case Bad:
			probed++
			probedBad++
		}
	}
	if len(cands) > 0 && probedBad == probed {
		d.Refusals = append(d.Refusals, Refusal{Reason: ServiceWideFailure, Detail: serviceWideDetail(probed, in.Endpoint), Instances: ids(cands)})
		return d
	}
	if r, ok := spreadThin(in.Verdicts, in.Endpoint); ok {
		d.Refusals = append(d.Refusals, r)
	}

	candsByGroup := map[string][]Verdict{}
	for _, c := range cands {
		if !blocked[c.Instance.Group] {
			candsByGroup[c.Instance.Group] = append(candsByGroup[c.Instance.Group], c)
		}
	}
	groups := make(map[string]discovery.Group, len(in.Groups))
	for _, g := range in.Groups {
		groups[g.Name] = g
	}
	for _, name := range sortedKeys(candsByGroup) {
		g, known := groups[name]
		c := countGroup(name, in.Verdicts, in.Marked)
		desired := c.inService
		if known {
			desired = g.Desired
		}
		if r, ok := c.refuse(desired, in.Policy.MaxUnhealthy, candsByGroup[name]); ok {
			d.Refusals = append(d.Refusals, r)
			blocked[name] = true
		}
	}

	var eligible []Verdict
	for _, c := range cands { // keeps the oldest-failure-first order
		if !blocked[c.Instance.Group] {
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

// candidates are the Bad InService instances in a group that the group
// still holds Healthy and medic has not marked, oldest failure first, then
// by id.
func candidates(in GuardInput) []Verdict {
	var cands []Verdict
	for _, v := range in.Verdicts {
		if v.State == Bad && v.Instance.InService() && v.Instance.Group != "" &&
			!v.Instance.HeldUnhealthy() && !in.Marked[v.Instance.ID] {
			cands = append(cands, v)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if !a.Since.Equal(b.Since) {
			return a.Since.Before(b.Since)
		}
		return a.Instance.ID < b.Instance.ID
	})
	return cands
}

func inGroup(vs []Verdict, group string) []Verdict {
	var out []Verdict
	for _, v := range vs {
		if v.Instance.Group == group {
			out = append(out, v)
		}
	}
	return out
}

// GroupPaused reports whether the group's tags pause medic for it.
func GroupPaused(g discovery.Group) bool {
	v, ok := g.Tags[PauseTag]
	return ok && !strings.EqualFold(strings.TrimSpace(v), "false")
}

// groupState is the refusal the group's own state calls for, if any.
func groupState(g discovery.Group, stop Stop) (Refusal, bool) {
	if GroupPaused(g) {
		return Refusal{Reason: Paused, Group: g.Name,
			Detail: fmt.Sprintf("%s carries the tag %s=%q: paused, marking none in it", g.Name, PauseTag, g.Tags[PauseTag])}, true
	}
	for _, s := range suspendedBlocking {
		if slices.Contains(g.SuspendedProcesses, s.process) {
			return Refusal{Reason: ProcessSuspended, Group: g.Name,
				Detail: fmt.Sprintf("%s has suspended %s: %s; marking none in it", g.Name, s.process, s.why)}, true
		}
	}
	if g.InstanceRefresh != "" {
		return Refusal{Reason: InstanceRefresh, Group: g.Name,
			Detail: fmt.Sprintf("%s is in an instance refresh (%s): it replaces instances itself; marking none in it until it ends", g.Name, g.InstanceRefresh)}, true
	}
	if !stop.Since.IsZero() {
		return Refusal{Reason: ReplacementsFailing, Group: g.Name, NeedsAction: true, Detail: stop.Detail, Evidence: stop.Evidence}, true
	}
	return Refusal{}, false
}

// spreadThinRate is the pooled failure rate from which failures spread over
// half the fleet are called thin.
const spreadThinRate = 0.05

// spreadThin reports failures spread thinly across the fleet with none
// standing out (see Guard, rule 5).
func spreadThin(verdicts []Verdict, ep EndpointState) (Refusal, bool) {
	probed, touched, fails, n := 0, 0, 0, 0
	var failing []string
	for _, v := range verdicts {
		switch v.State {
		case Bad:
			return Refusal{}, false
		case Healthy, Suspect:
			probed++
			fails += v.Failures
			n += v.Probes
			if v.Failures > 0 {
				touched++
			}
			if v.State == Suspect {
				failing = append(failing, v.Instance.ID)
			}
		}
	}
	if probed < 3 || 2*touched < probed || n == 0 || float64(fails) < spreadThinRate*float64(n) {
		return Refusal{}, false
	}
	sort.Strings(failing)
	where := "medic's vantage point or a shared dependency is likely at fault"
	switch {
	case ep.Configured && ep.Healthy:
		where += ", while the service endpoint passes"
	case ep.Configured:
		where += "; the service endpoint fails too (" + ep.Reason + ")"
	}
	// No instances: nothing bad is refused, and the failing ones churn
	// from cycle to cycle; they are named in the evidence only.
	return Refusal{Reason: SpreadThin, Evidence: []string{"failing now: " + strings.Join(failing, ", ")},
		Detail: fmt.Sprintf("failures are spread thinly: %d of %d probed instances failed some of their latest probes (%.1f%% of %d), none stands out: %s; marking none",
			touched, probed, 100*float64(fails)/float64(n), n, where)}, true
}

// groupCount is what the capacity budget counts of one group.
type groupCount struct {
	name                                                  string
	inService, available                                  int
	bad, suspect, held, marked, notInService, waitOrGrace int
}

func countGroup(name string, verdicts []Verdict, marked map[string]bool) groupCount {
	c := groupCount{name: name}
	for _, v := range verdicts {
		if v.Instance.Group != name {
			continue
		}
		inst := v.Instance
		switch {
		case !inst.InService():
			c.notInService++
			continue
		case inst.HeldUnhealthy():
			c.held++
		case marked[inst.ID]:
			c.marked++
		case v.State == Healthy:
			c.available++
		case v.State == Bad:
			c.bad++
		case v.State == Suspect:
			c.suspect++
		default:
			c.waitOrGrace++
		}
		c.inService++
	}
	return c
}

// refuse applies the capacity budget and the last-healthy rule to the
// group's candidates.
func (c groupCount) refuse(desired int, mu config.IntOrPercent, cands []Verdict) (Refusal, bool) {
	unavailable := max(desired-c.available, 0)
	allowed := allowedUnhealthy(mu, desired)
	if unavailable > allowed {
		return Refusal{Reason: MaxUnhealthy, Group: c.name, Instances: ids(cands),
			Detail: fmt.Sprintf("%d of %d desired in %s are unavailable (%s), above max_unhealthy %s",
				unavailable, desired, c.name, c.breakdown(desired), formatAllowance(mu, allowed))}, true
	}
	if c.available == 0 {
		return Refusal{Reason: LastHealthy, Group: c.name, Instances: ids(cands),
			Detail: fmt.Sprintf("no healthy InService instance left in %s (%s): marking %s would leave nothing to serve",
				c.name, c.breakdown(desired), plural(len(cands), "bad instance"))}, true
	}
	return Refusal{}, false
}

// breakdown says what the unavailable capacity is made of.
func (c groupCount) breakdown(desired int) string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(c.bad, "bad")
	add(c.suspect, "suspect")
	add(c.held, "held Unhealthy")
	add(c.marked, "marked, not yet replaced")
	add(c.waitOrGrace, "in grace or unknown")
	add(c.notInService, "not InService")
	add(desired-c.inService-c.notInService, "missing")
	if len(parts) == 0 {
		return fmt.Sprintf("%d available", c.available)
	}
	return strings.Join(parts, ", ") + fmt.Sprintf("; %d available", c.available)
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

// allowedUnhealthy is how many of desired instances may be unavailable: a
// count as is, a percentage of desired rounded down.
func allowedUnhealthy(mu config.IntOrPercent, desired int) int {
	if mu.IsPercent {
		return mu.Value * desired / 100
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
