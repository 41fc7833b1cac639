package controller

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
)

// recoveryWindow is how long after a mark medic waits, beyond the grace
// period, for a replacement to become healthy before it says a person
// should look.
const recoveryWindow = 5 * time.Minute

// maxEvents is how many recent events the reporter keeps per service for
// the status page.
const maxEvents = 50

// reporter is the one place that turns heal-cycle reports into events:
// marks and every other outcome of a marking, refusals as they start and
// end, endpoint failures and recoveries, insight findings, zonal shifts and
// the outcome of each replacement. It remembers just enough between cycles
// to report changes, not every cycle, and keeps the last maxEvents events
// of each service (Controller.Statuses hands them to the status page).
//
// With a lease, the conditions it tells of (endpoint failing, refusals, a
// slow service, a vantage verdict) are told only by the leading replica,
// so two replicas do not tell people everything twice: leads reports
// whether this replica leads now. A standby leaves what it has told as it
// was, so on becoming leader it tells what still holds (and the end of
// what it told before and has ended since); a condition that starts and
// ends while it stands by is never told by it. Its own marks and their
// replacements it tells whatever its standing (a standby marks nothing).
type reporter struct {
	notifier     alerts.Notifier
	leads        func() bool
	replacements *prometheus.CounterVec

	mu sync.Mutex // services heal side by side

	recent map[string][]alerts.Event // service → its last events, oldest first

	refusing map[string]map[healer.RefusalReason]bool // service → reasons refusing now
	endpoint map[string]bool                          // service → endpoint failing now
	pending  map[string]pendingReplacement            // instance id → replacement being watched
	insight  insightEvents
}

// pendingReplacement is an instance medic marked, whose replacement it
// watches.
type pendingReplacement struct {
	service, group, az string
	before             map[string]bool // the group's instance ids when it was marked
	markedAt           time.Time
	deadline           time.Time
	requestID          string
	// goodSince is when a healthy newcomer and a passing endpoint were
	// first seen together, zero while they are not.
	goodSince time.Time
}

// newReporter sends to n; leads (nil: always) reports whether this
// replica leads.
func newReporter(n alerts.Notifier, leads func() bool, reg prometheus.Registerer) *reporter {
	if leads == nil {
		leads = func() bool { return true }
	}
	r := &reporter{
		notifier: n,
		leads:    leads,
		replacements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_replacements_total",
			Help: "Replacements medic watched after marking an instance, by outcome (recovered, not_recovered).",
		}, []string{"service", "outcome"}),
		refusing: map[string]map[healer.RefusalReason]bool{},
		endpoint: map[string]bool{},
		pending:  map[string]pendingReplacement{},
		insight:  newInsightEvents(),
		recent:   map[string][]alerts.Event{},
	}
	if reg != nil {
		reg.MustRegister(r.replacements)
	}
	return r
}

// Notify records e among its service's recent events and sends it on: the
// zonal shifts send their events through it, so the page sees them too.
func (r *reporter) Notify(e alerts.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(e)
}

// emit records e and sends it to the notifier. Callers hold r.mu.
func (r *reporter) emit(e alerts.Event) {
	r.record(e)
	r.notifier.Notify(e)
}

// record keeps e among its service's last maxEvents events without sending
// it anywhere: for what the page shows but no sink is told about. Callers
// hold r.mu.
func (r *reporter) record(e alerts.Event) {
	if e.Service == "" {
		return
	}
	l := r.recent[e.Service]
	if len(l) == maxEvents {
		copy(l, l[1:])
		l = l[:len(l)-1]
	}
	r.recent[e.Service] = append(l, e)
}

// events returns the service's recent events, newest first.
func (r *reporter) events(service string) []alerts.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.recent[service]
	out := make([]alerts.Event, len(l))
	for i, e := range l {
		out[len(l)-1-i] = e
	}
	return out
}

// observe reports what changed in one service since its last cycle.
func (r *reporter) observe(svc config.Service, snap discovery.Snapshot, rep healer.Report, ep healer.EndpointState, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The service's outcome series exist from its first cycle, at 0: a
	// counter born at 1 shows no increase() to dashboards.
	r.replacements.WithLabelValues(svc.Name, "recovered")
	r.replacements.WithLabelValues(svc.Name, "not_recovered")
	state := serviceState(rep, ep)
	verdicts := map[string]healer.Verdict{}
	for _, v := range rep.Verdicts {
		verdicts[v.Instance.ID] = v
	}

	if r.leads() {
		r.observeConditions(svc, rep, ep, state, verdicts, now)
	}
	r.observeMarks(svc, snap, rep, ep, state, verdicts, now)
}

// observeConditions tells the conditions of one service that changed
// since this replica last told them: the endpoint failing or passing
// again, a refusal starting or clearing, the insight findings.
func (r *reporter) observeConditions(svc config.Service, rep healer.Report, ep healer.EndpointState, state string,
	verdicts map[string]healer.Verdict, now time.Time) {
	// Endpoint failing / recovered, on change only.
	if ep.Configured {
		failing := !ep.Healthy
		if failing != r.endpoint[svc.Name] {
			r.endpoint[svc.Name] = failing
			e := alerts.Event{Kind: alerts.EndpointRecovered, Severity: alerts.Info, Time: now, Service: svc.Name,
				Subject: svc.Endpoint, State: state, Resolved: !failing,
				Summary: fmt.Sprintf("The endpoint of %s passes again.", svc.Name), Action: "nothing"}
			if failing {
				e.Kind, e.Severity = alerts.EndpointFailing, alerts.Warning
				e.Summary = fmt.Sprintf("The endpoint of %s fails: %s.", svc.Name, ep.Reason)
				e.Evidence = []string{"latest probe of " + svc.Endpoint + ": " + ep.Reason}
				e.Action = "watching; instances are judged on their own probes"
			}
			r.emit(e)
		}
	}

	// Refusals, when a reason starts and when it clears.
	now2 := map[healer.RefusalReason]bool{}
	for _, ref := range rep.Decision.Refusals {
		now2[ref.Reason] = true
		if r.refusing[svc.Name][ref.Reason] {
			continue
		}
		e := alerts.Event{Kind: alerts.MarkRefused, Severity: alerts.Warning, Time: now, Service: svc.Name,
			Subject: string(ref.Reason), Summary: "medic refused to mark instances of " + svc.Name + ": " + ref.Detail,
			Evidence: append(append([]string(nil), ref.Evidence...), evidenceFor(ref.Instances, verdicts)...),
			Action:   "nothing: the guard refused (" + string(ref.Reason) + ")",
			State:    state, Labels: map[string]string{"reason": string(ref.Reason)}, RequestID: rep.RequestID}
		if ref.NeedsAction { // replacements failing: the one event that asks a person to act
			e.Severity, e.NeedsAction = alerts.Action, true
			e.Action = "stopped marking in " + ref.Group + "; a person should act"
		}
		r.emit(e)
	}
	for reason := range r.refusing[svc.Name] {
		if !now2[reason] {
			r.emit(alerts.Event{Kind: alerts.MarkRefused, Severity: alerts.Info, Time: now, Service: svc.Name,
				Subject: string(reason), Resolved: true, Summary: "the guard no longer refuses (" + string(reason) + ") in " + svc.Name,
				Action: "nothing", State: state, Labels: map[string]string{"reason": string(reason)}})
		}
	}
	r.refusing[svc.Name] = now2
	r.observeInsight(svc, rep, state, now)
}

// observeMarks tells this replica's marks of one service and watches each
// replacement until it recovers or the deadline passes.
func (r *reporter) observeMarks(svc config.Service, snap discovery.Snapshot, rep healer.Report, ep healer.EndpointState,
	state string, verdicts map[string]healer.Verdict, now time.Time) {
	// Marks: report each, and watch its replacement.
	ids := make([]string, 0, len(rep.Outcomes))
	for id := range rep.Outcomes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		out := rep.Outcomes[id]
		v := verdicts[id]
		e := alerts.Event{Kind: alerts.InstanceMarked, Severity: alerts.Info, Time: now, Service: svc.Name, Subject: id,
			AZ: v.Instance.AZ, Summary: fmt.Sprintf("%s in %s (%s) was bad: %s.", id, svc.Name, v.Instance.AZ, v.Reason),
			Evidence: evidenceFor([]string{id}, verdicts), State: state, RequestID: rep.RequestID,
			Labels: map[string]string{"asg": v.Instance.Group, "result": string(out.Result)}}
		switch out.Result {
		case healer.ResultMarked:
			e.Action = "marked Unhealthy in " + v.Instance.Group + "; the group replaces it"
			before := map[string]bool{}
			for _, in := range snap.Instances {
				if in.Group == v.Instance.Group {
					before[in.ID] = true
				}
			}
			r.pending[id] = pendingReplacement{service: svc.Name, group: v.Instance.Group, az: v.Instance.AZ,
				before: before, markedAt: now, deadline: now.Add(graceOf(svc.Policy, snap, v.Instance.Group) + recoveryWindow),
				requestID: rep.RequestID}
		case healer.ResultDryRun:
			e.Action = "dry run: would have marked it Unhealthy; nothing was changed"
		case healer.ResultFailed:
			e.Severity = alerts.Warning
			e.Action = "tried to mark it Unhealthy and failed after " + plural(out.Attempts, "call") + ": " + errString(out.Err)
		default:
			// Nothing was changed (standby, gone, already Unhealthy,
			// skipped) or the change was not seen (not applied): the page
			// shows it, no sink is told.
			e.Action = unsentAction(out)
			if out.Result == healer.ResultNotApplied {
				e.Severity = alerts.Warning
			}
			r.record(e)
			continue
		}
		r.emit(e)
	}

	// Replacements: recovered when a newcomer in the group is healthy and
	// the endpoint passes; not recovered past the deadline.
	for id, p := range r.pending {
		if p.service != svc.Name {
			continue
		}
		var newcomer string
		for _, v := range rep.Verdicts {
			if v.Instance.Group == p.group && !p.before[v.Instance.ID] && v.State == healer.Healthy {
				newcomer = v.Instance.ID
				break
			}
		}
		epOK := !ep.Configured || ep.Healthy
		if newcomer == "" || !epOK {
			p.goodSince = time.Time{}
		} else if p.goodSince.IsZero() {
			p.goodSince = now
		}
		r.pending[id] = p
		switch {
		case !p.goodSince.IsZero() && now.Sub(p.goodSince) >= settle(svc):
			delete(r.pending, id)
			r.replacements.WithLabelValues(svc.Name, "recovered").Inc()
			r.emit(alerts.Event{Kind: alerts.ReplacementRecovered, Severity: alerts.Info, Time: now,
				Service: svc.Name, Subject: id, AZ: p.az, RequestID: p.requestID, State: state,
				Summary: fmt.Sprintf("%s was replaced by %s, which is healthy; %s recovered in %s and stayed good for %s.",
					id, newcomer, svc.Name, p.goodSince.Sub(p.markedAt).Round(time.Second), settle(svc)),
				Evidence: append(evidenceFor([]string{newcomer}, verdicts), scoreEvidence(rep)...),
				Action:   "marked " + id + " Unhealthy; " + p.group + " replaced it"})
		case now.After(p.deadline):
			delete(r.pending, id)
			r.replacements.WithLabelValues(svc.Name, "not_recovered").Inc()
			r.emit(alerts.Event{Kind: alerts.ReplacementNotRecovered, Severity: alerts.Action, Time: now,
				Service: svc.Name, Subject: id, AZ: p.az, RequestID: p.requestID, State: state, NeedsAction: true,
				Summary: fmt.Sprintf("%s was marked Unhealthy %s ago, but no healthy replacement has joined %s (endpoint passing: %t).",
					id, now.Sub(p.markedAt).Round(time.Second), p.group, epOK),
				Action: "marked " + id + " Unhealthy; a person should check why the group has not recovered"})
		}
	}
}

// settle is how long a healthy newcomer and a passing endpoint must hold
// together before a replacement counts as recovered: healthy_after probe
// intervals, so one lucky probe is not called a recovery.
func settle(svc config.Service) time.Duration {
	return time.Duration(max(svc.Policy.HealthyAfter, 1)) * svc.InstanceProbe.Interval.D()
}

// forget drops what the reporter remembers of a service that left the
// config, and its series.
func (r *reporter) forget(service string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.refusing, service)
	delete(r.endpoint, service)
	delete(r.recent, service)
	r.insight.forget(service)
	for id, p := range r.pending {
		if p.service == service {
			delete(r.pending, id)
		}
	}
	r.replacements.DeletePartialMatch(prometheus.Labels{"service": service})
}

// graceOf is the grace period a newcomer in group gets under policy.
func graceOf(p config.Policy, snap discovery.Snapshot, group string) time.Duration {
	if !p.GracePeriod.FromASG {
		return p.GracePeriod.Duration
	}
	for _, g := range snap.Groups {
		if g.Name == group {
			return g.GracePeriod
		}
	}
	return 0
}

// serviceState summarises a service in one line: "5/6 healthy, endpoint passing".
func serviceState(rep healer.Report, ep healer.EndpointState) string {
	healthy, total := 0, 0
	for _, v := range rep.Verdicts {
		if v.State == healer.NotInService {
			continue
		}
		total++
		if v.State == healer.Healthy {
			healthy++
		}
	}
	s := fmt.Sprintf("%d/%d instances healthy", healthy, total)
	switch {
	case !ep.Configured:
	case ep.Healthy:
		s += ", endpoint passing"
	default:
		s += ", endpoint failing (" + ep.Reason + ")"
	}
	return s
}

func evidenceFor(ids []string, verdicts map[string]healer.Verdict) []string {
	var ev []string
	for _, id := range ids {
		if v, ok := verdicts[id]; ok {
			ev = append(ev, fmt.Sprintf("%s (%s, %s): %s — %s", id, v.Instance.AZ, v.Instance.Group, v.State, v.Reason))
		}
	}
	return ev
}

// unsentAction says what came of a marking the sinks are not told about.
func unsentAction(o healer.Outcome) string {
	switch o.Result {
	case healer.ResultStandby:
		return "standby: this replica does not lead; it would have marked it Unhealthy, the leader decides"
	case healer.ResultAlreadyUnhealthy:
		return "nothing: its group already reports it Unhealthy"
	case healer.ResultGone:
		return "nothing: the instance is gone or left its group"
	case healer.ResultSkipped:
		return "nothing: it is no longer InService (" + o.Reason + ")"
	case healer.ResultNotApplied:
		return "SetInstanceHealth was accepted after " + plural(o.Attempts, "call") + " but the group was not seen holding it Unhealthy"
	}
	return string(o.Result)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return strings.TrimSpace(err.Error())
}

// scoreEvidence is the detectors' record for the recovery notification.
func scoreEvidence(rep healer.Report) []string {
	if rep.Insight.ScoreSummary != "" {
		return []string{"detector scores: " + rep.Insight.ScoreSummary}
	}
	if l := rep.Insight.ScoreLine(); l != "" {
		return []string{"detector scores: " + l}
	}
	return nil
}
