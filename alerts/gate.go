package alerts

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// MaxDigestSubjects bounds the subjects listed in one digest; the rest are
// counted in Digest.Omitted.
const MaxDigestSubjects = 50

// verdict is what the gate decides for one event.
type verdict int

const (
	deliver   verdict = iota // send it now
	duplicate                // identical to one sent within the dedup window: drop
	digested                 // part of a flood: it goes into the kind's digest
)

func (v verdict) String() string {
	return [...]string{"deliver", "duplicate", "digested"}[v]
}

// gate holds the deduplication and digest state. It is a pure state
// machine: every decision is a function of the events seen and the times
// passed in, never of the wall clock.
//
// Deduplication: an event whose (Kind, Service, Subject, Resolved) was let
// through less than dedupWindow ago is a duplicate. Letting an event
// through forgets its opposite (the same condition with the other Resolved
// value, and the conditions its kind Ends), so a condition that clears and
// comes back is reported again.
//
// Digest: for each (Kind, Service, Resolved), at most threshold events are
// let through one by one within any digestWindow. The next one opens a
// digest: it and every later event of the flood are folded into it, and at
// the end of the window the digest is due — one message counting the whole
// flood, including the events already sent one by one. While events keep
// coming, a new digest covers each following window; the first window
// without any ends the flood.
type gate struct {
	dedupWindow  time.Duration
	digestWindow time.Duration
	threshold    int

	sent   map[dedupKey]time.Time
	floods map[floodKey]*flood
}

type dedupKey struct {
	kind     Kind
	service  string
	subject  string
	resolved bool
}

type floodKey struct {
	kind     Kind
	service  string
	resolved bool
}

// flood is the digest state of one floodKey.
type flood struct {
	recent []time.Time // events let through one by one, oldest first (at most threshold)
	first  []Event     // those events, for the digest that may follow
	open   *openDigest // non-nil while the flood is folded into a digest
}

type openDigest struct {
	since, due   time.Time
	count        int
	individually int
	subjects     []string
	evidence     []string
	omitted      int
	actions      []string // distinct, at most 3
	last         Event
	severity     Severity
	needsAction  bool
	ask          string
}

func newGate(dedupWindow, digestWindow time.Duration, threshold int) *gate {
	return &gate{
		dedupWindow:  dedupWindow,
		digestWindow: digestWindow,
		threshold:    threshold,
		sent:         map[dedupKey]time.Time{},
		floods:       map[floodKey]*flood{},
	}
}

// configure changes the windows and threshold, keeping the state.
func (g *gate) configure(dedupWindow, digestWindow time.Duration, threshold int) {
	g.dedupWindow, g.digestWindow, g.threshold = dedupWindow, digestWindow, threshold
}

// admit decides what happens to e, arriving at now.
func (g *gate) admit(e Event, now time.Time) verdict {
	dk := dedupKey{e.Kind, e.Service, e.Subject, e.Resolved}
	if t, ok := g.sent[dk]; ok && now.Sub(t) < g.dedupWindow {
		return duplicate
	}
	g.sent[dk] = now
	opposite := dk
	opposite.resolved = !dk.resolved
	delete(g.sent, opposite)
	for _, k := range e.Kind.Ends() {
		delete(g.sent, dedupKey{k, e.Service, e.Subject, false})
	}

	fk := floodKey{e.Kind, e.Service, e.Resolved}
	f := g.floods[fk]
	if f == nil {
		f = &flood{}
		g.floods[fk] = f
	}
	if f.open != nil {
		f.open.add(e)
		return digested
	}
	f.prune(now.Add(-g.digestWindow))
	if len(f.recent) < g.threshold {
		f.recent = append(f.recent, now)
		f.first = append(f.first, e)
		return deliver
	}
	// One more than threshold within the window: the flood begins.
	od := &openDigest{since: f.recent[0], due: now.Add(g.digestWindow)}
	for _, fe := range f.first {
		od.add(fe)
	}
	od.individually = len(f.first)
	od.add(e)
	f.open = od
	f.recent, f.first = nil, nil
	return digested
}

// prune forgets the one-by-one events at or before cutoff.
func (f *flood) prune(cutoff time.Time) {
	i := 0
	for i < len(f.recent) && !f.recent[i].After(cutoff) {
		i++
	}
	f.recent, f.first = f.recent[i:], f.first[i:]
}

func (od *openDigest) add(e Event) {
	od.count++
	if len(od.subjects) < MaxDigestSubjects {
		subj := e.Subject
		if subj == "" {
			subj = "(no subject)"
		}
		od.subjects = append(od.subjects, subj)
		line := subj
		if e.AZ != "" {
			line += " (" + e.AZ + ")"
		}
		if e.Summary != "" {
			line += ": " + e.Summary
		}
		od.evidence = append(od.evidence, line)
	} else {
		od.omitted++
	}
	if e.Action != "" && len(od.actions) < 3 && !contains(od.actions, e.Action) {
		od.actions = append(od.actions, e.Action)
	}
	if severityRank(e.Severity) > severityRank(od.severity) {
		od.severity = e.Severity
	}
	if e.NeedsAction {
		if !od.needsAction {
			od.ask = e.Ask
		}
		od.needsAction = true
	}
	od.last = e
}

// due returns the digests whose window has ended at now, in a stable
// order, and forgets state older than the windows.
func (g *gate) due(now time.Time) []Event {
	return g.collect(now, false)
}

// flushAll returns every open digest now, due or not (at shutdown).
func (g *gate) flushAll(now time.Time) []Event {
	return g.collect(now, true)
}

func (g *gate) collect(now time.Time, all bool) []Event {
	keys := make([]floodKey, 0, len(g.floods))
	for k := range g.floods {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.service != b.service {
			return a.service < b.service
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return !a.resolved && b.resolved
	})
	var out []Event
	for _, k := range keys {
		f := g.floods[k]
		if od := f.open; od != nil && (all || !now.Before(od.due)) {
			if od.count > od.individually {
				out = append(out, od.event(k, now))
				// The flood may go on: the next window is digested too.
				f.open = &openDigest{since: now, due: now.Add(g.digestWindow)}
			} else {
				f.open = nil // a quiet window: the flood is over
			}
			if all {
				f.open = nil
			}
		}
		if f.open == nil {
			f.prune(now.Add(-g.digestWindow))
			if len(f.recent) == 0 {
				delete(g.floods, k)
			}
		}
	}
	for k, t := range g.sent {
		if now.Sub(t) >= g.dedupWindow {
			delete(g.sent, k)
		}
	}
	return out
}

// event builds the digest message for the flood of k.
func (od *openDigest) event(k floodKey, now time.Time) Event {
	phrase := digestPhrase(k.kind, k.resolved, od.count)
	summary := fmt.Sprintf("%d %s in %s in the last %s", od.count, phrase, k.service, humanDuration(now.Sub(od.since)))
	switch {
	case od.individually == 1:
		summary += " (the first was reported on its own)"
	case od.individually > 1:
		summary += fmt.Sprintf(" (the first %d were reported one by one)", od.individually)
	}
	action := strings.Join(od.actions, "; ")
	if len(od.actions) > 1 {
		action = "varied: " + action
	}
	ev := make([]string, len(od.evidence), len(od.evidence)+1)
	copy(ev, od.evidence)
	if od.omitted > 0 {
		ev = append(ev, fmt.Sprintf("… and %d more", od.omitted))
	}
	sev := od.severity
	if sev == "" {
		sev = Info
	}
	return Event{
		Kind:        k.kind,
		Severity:    sev,
		Time:        now,
		Service:     k.service,
		Summary:     summary,
		Evidence:    ev,
		Action:      action,
		State:       od.last.State,
		NeedsAction: od.needsAction,
		Ask:         od.ask,
		Resolved:    k.resolved,
		RequestID:   od.last.RequestID,
		Digest: &Digest{
			Count:        od.count,
			Individually: od.individually,
			Subjects:     append([]string(nil), od.subjects...),
			Omitted:      od.omitted,
			Since:        od.since,
			Until:        now,
		},
	}
}

// digestPhrase names n events of kind k: "instances marked Unhealthy".
func digestPhrase(k Kind, resolved bool, n int) string {
	forms, ok := map[Kind][2]string{
		InstanceMarked:          {"instance marked Unhealthy", "instances marked Unhealthy"},
		MarkRefused:             {"marking refused by the guard", "markings refused by the guard"},
		EndpointFailing:         {"endpoint failure", "endpoint failures"},
		EndpointRecovered:       {"endpoint recovery", "endpoint recoveries"},
		ReplacementRecovered:    {"instance replaced and recovered", "instances replaced and recovered"},
		ReplacementNotRecovered: {"instance replaced but not recovered", "instances replaced but not recovered"},
		QuotaNearLimit:          {"quota near its limit", "quotas near their limit"},
		QuotaExhaustionForecast: {"quota forecast to run out", "quotas forecast to run out"},
		PrewarmNeeded:           {"pre-warm need", "pre-warm needs"},
		PrewarmApplied:          {"pre-warm applied", "pre-warms applied"},
		AWSAPITrouble:           {"AWS API trouble", "AWS API troubles"},
	}[k]
	if !ok {
		forms = [2]string{string(k) + " event", string(k) + " events"}
	}
	p := forms[1]
	if n == 1 {
		p = forms[0]
	}
	if resolved {
		p += ", resolved"
	}
	return p
}

// humanDuration renders d for a sentence: "10 minutes", "45 seconds".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		s := int(d.Round(time.Second) / time.Second)
		if s == 1 {
			return "second"
		}
		return fmt.Sprintf("%d seconds", s)
	case d < 2*time.Hour:
		m := int(d.Round(time.Minute) / time.Minute)
		if m == 1 {
			return "minute"
		}
		return fmt.Sprintf("%d minutes", m)
	default:
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour)/time.Hour))
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// severityRank orders severities; unknown ones count as info.
func severityRank(s Severity) int {
	switch s {
	case Warning:
		return 1
	case Critical:
		return 2
	}
	return 0
}
