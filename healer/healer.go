package healer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/logkeys"
	"github.com/medic-sre/medic/probes"
)

// Retry backoff of an instance whose marking failed: the first retry after
// RetryBase, doubling with each failure, at most RetryMax apart. A permanent
// error (say, access denied) costs a call every RetryMax, not one a cycle;
// a dropped connection is retried within seconds.
const (
	RetryBase = 2 * time.Second
	RetryMax  = 30 * time.Second
)

// retryAfter is the wait after the n-th failure in a row (n ≥ 1).
func retryAfter(n int) time.Duration {
	if n > 5 {
		return RetryMax
	}
	return min(RetryBase<<(n-1), RetryMax)
}

// Options configure a Healer.
type Options struct {
	// Actuator marks instances; NewAWSActuator in production, DryRun to
	// only report. Required.
	Actuator Actuator
	// Logger receives every decision, action and refusal. Nil discards.
	Logger log.Logger
	// Registerer receives the healer's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Preflight, when set, is asked before a mark whether the group can
	// launch a replacement. Nil: no pre-flight.
	Preflight PreflightSource
}

// CycleInput is one service's view at one cycle.
type CycleInput struct {
	Service  string // defaults to Snapshot.Service
	Snapshot discovery.Snapshot
	// History holds each instance's probe results by instance id, oldest
	// first. Nil: the healer judges on what Observe recorded.
	History  map[string][]probes.Result
	Endpoint EndpointState
	Policy   config.Policy
	// Probe is the service's instance probe: its interval and timeout say
	// when a probe result is too old to count.
	Probe config.Probe
	// Self is medic's view of its own health; when Unwell nothing is marked.
	Self SelfHealth
	// RequestID ties together this cycle's log lines and AWS calls.
	RequestID string
	// Frozen: judge and guard as usual but act on nothing, because the
	// inputs cannot be trusted to act on (say, the fleet has not been read
	// from AWS recently). FrozenReason says why, for the logs.
	Frozen       bool
	FrozenReason string
}

// Report is what one cycle saw, decided and did.
type Report struct {
	// Verdicts as Judge gave them, except that an instance this healer has
	// marked (not dry-run) shows HealthStatus Unhealthy even before
	// discovery sees it.
	Verdicts []Verdict
	Decision Decision
	// Outcomes of this cycle's markings, by instance id.
	Outcomes map[string]Outcome
	// ActionsLastHour is the marks (and dry-run marks) in the sliding hour,
	// after this cycle: the rate-limit budget used.
	ActionsLastHour int
	// RequestID is the cycle's, from CycleInput.
	RequestID string
	// Frozen: the cycle acted on nothing because CycleInput.Frozen was set;
	// Decision.Mark is what the guard would have allowed.
	Frozen bool
	// Marked are the instances this healer marked that discovery does not
	// show held Unhealthy yet, with when.
	Marked map[string]time.Time
	// Insight: latency standing, vantage, pre-flight and scores.
	Insight Insight
}

// Healer runs judge → guard → act for each service and remembers, per
// service, what it marked and when. Cycle may be called concurrently for
// different services; calls for the same service are serialised.
type Healer struct {
	act    Actuator
	logger log.Logger
	now    func() time.Time
	m      *metrics
	lat    *LatencyBook
	ins    *InsightMetrics
	scorer *Scorer
	pre    PreflightSource

	mu       sync.Mutex
	services map[string]*serviceState
	observed map[string]*observed
}

// serviceState is the healer's memory of one service.
type serviceState struct {
	mu        sync.Mutex
	forgotten bool

	// marked: instances this healer really marked (or found already
	// Unhealthy or gone), until discovery shows them held Unhealthy or
	// gone. They are never marked twice.
	marked map[string]time.Time
	// failed: instances whose marking failed, for the retry backoff.
	failed map[string]failure
	// reported: what a dry run or a standby would have done to an
	// instance, reported once while the instance stays a candidate. Never
	// state: it spends no budget and suppresses no later real mark.
	reported map[string]ActionResult
	// actions: times of marks within the last RateWindow.
	actions []time.Time
	// marks: the real marks within the last RateWindow, by group, to tell
	// replacements from the instances they replaced.
	marks []mark
	// stopped: groups where replacements fail.
	stopped map[string]stop
	// servedOK: instances judged Healthy at least once; a replacement that
	// served and later broke is a new fault, not a failed replacement.
	servedOK map[string]bool
	// refusing: the instances refused per reason in the last cycle; a
	// reason present here is an ongoing refusal episode.
	refusing map[RefusalReason]map[string]bool
	// states: each instance's last judged state, to log only changes.
	states map[string]State
	// azs with medic_instances series.
	azs map[string]bool
	// frozen: the last cycle was frozen (to log only start and end).
	frozen bool
	// ins: the insight checks' memory (insight.go).
	ins insightState
}

type failure struct {
	at time.Time
	n  int // failures in a row
}

type mark struct {
	group string
	at    time.Time
}

// stop is a group where marking stopped; replacements are the instances of
// the group that entered InService after `after`.
type stop struct {
	Stop
	after time.Time
}

// observed is what Observe keeps of one service, under its own lock so a
// slow Cycle never holds up the probes.
type observed struct {
	mu       sync.Mutex
	params   DetectorParams
	dets     map[string]*Detector
	endpoint map[string]bool // target key → last result passed
}

// New returns a Healer. It never fails: a metric that cannot be registered
// is logged and kept unregistered.
func New(o Options) *Healer {
	h := &Healer{act: o.Actuator, logger: o.Logger, now: o.Now, services: map[string]*serviceState{}, observed: map[string]*observed{}}
	if h.logger == nil {
		h.logger = log.NewNopLogger()
	}
	h.logger = log.With(h.logger, logkeys.Component, "healer")
	if h.now == nil {
		h.now = time.Now
	}
	if h.act == nil {
		h.act = DryRun(h.logger)
		level.Warn(h.logger).Log(logkeys.Msg, "no actuator given: running dry")
	}
	h.m = newMetrics(o.Registerer, h.logger)
	h.lat, h.pre = NewLatencyBook(), o.Preflight
	var err error
	if h.ins, err = NewInsightMetrics(o.Registerer); err != nil {
		level.Error(h.logger).Log(logkeys.Msg, "cannot register insight metrics; kept unregistered", logkeys.Err, err)
		h.ins, _ = NewInsightMetrics(nil)
	}
	if h.scorer, err = NewScorer(o.Registerer, 0); err != nil {
		level.Error(h.logger).Log(logkeys.Msg, "cannot register score metrics; kept unregistered", logkeys.Err, err)
		h.scorer, _ = NewScorer(nil, 0)
	}
	return h
}

// state returns the service's state, locked. A state dropped by Forget
// while we waited for it is replaced by a fresh one.
func (h *Healer) state(svc string) *serviceState {
	for {
		h.mu.Lock()
		st, ok := h.services[svc]
		if !ok {
			st = &serviceState{
				marked:   map[string]time.Time{},
				failed:   map[string]failure{},
				reported: map[string]ActionResult{},
				stopped:  map[string]stop{},
				servedOK: map[string]bool{},
				refusing: map[RefusalReason]map[string]bool{},
				states:   map[string]State{},
				azs:      map[string]bool{},
				ins:      insightState{outliers: NewOutlierTracker()},
			}
			h.services[svc] = st
			h.m.initService(svc)
		}
		h.mu.Unlock()
		st.mu.Lock()
		if !st.forgotten {
			return st
		}
		st.mu.Unlock()
	}
}

// Forget drops everything the healer remembers about a service (marks,
// rate-limit history, refusal episodes, observed probe records) and deletes its metric series.
// It waits for a running Cycle of that service to finish.
func (h *Healer) Forget(service string) {
	h.mu.Lock()
	st, ok := h.services[service]
	delete(h.services, service)
	delete(h.observed, service)
	h.mu.Unlock()
	if !ok {
		return
	}
	st.mu.Lock() // wait for a running Cycle
	st.forgotten = true
	h.mu.Lock()
	if _, recreated := h.services[service]; !recreated {
		h.m.deleteService(service)
		h.lat.Forget(service)
		h.ins.Forget(service)
		h.scorer.Forget(service)
	}
	h.mu.Unlock()
	st.mu.Unlock()
}

// SeedMatch is how close a seeded mark must be to one the healer made
// itself to be taken for the same mark.
const SeedMatch = time.Second

// Seed adds marks made before this healer started — read back from AWS,
// by medic or by anyone else — to the service's rate-limit memory, so a
// restart does not hand out a fresh max_actions_per_hour. They count
// against the guard's budget and in medic_heal_actions_last_hour like the
// healer's own, until they are RateWindow old.
//
// A seeded mark within SeedMatch of one already remembered is taken for
// it and dropped, each remembered mark absorbing at most one seed: seeding
// the same marks twice adds nothing, while two distinct marks in the same
// second (two instances of one cycle) both count. Marks already out of the
// window are dropped.
func (h *Healer) Seed(service string, marks []time.Time) {
	st := h.state(service)
	defer st.mu.Unlock()
	now := h.now()
	st.actions = keepWindow(st.actions, now)
	used := make([]bool, len(st.actions))
	mine := len(st.actions)
	added := 0
	for _, m := range marks {
		if !m.After(now.Add(-RateWindow)) {
			continue
		}
		dup := false
		for i := range mine {
			if !used[i] && absDuration(st.actions[i].Sub(m)) < SeedMatch {
				used[i], dup = true, true
				break
			}
		}
		if !dup {
			st.actions = append(st.actions, m)
			added++
		}
	}
	n := actionsInWindow(st.actions, now)
	h.m.lastHour.WithLabelValues(service).Set(float64(n))
	if added > 0 {
		level.Info(h.logger).Log(logkeys.Msg, "rate-limit budget seeded with earlier marks read from AWS",
			logkeys.Service, service, logkeys.Count, added)
	}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Cycle judges every instance of the service, asks the guard what may be
// marked, marks it, and records all of it in logs and metrics.
//
// Memory between cycles, in order of use:
//   - the instances it really marked, fed to the guard as unavailable and
//     never marked again, until discovery shows them held Unhealthy or gone;
//   - instances whose marking failed: retried on a later cycle after
//     RetryBase, doubling per failure, at most RetryMax;
//   - its real marks by group: when a replacement (an instance of the group
//     that entered InService after a mark, never judged Healthy) is judged Bad,
//     stop_after_failed_replacements times, marking in the group stops
//     (refusal replacements_failing) until a replacement is judged Healthy
//     or a person pauses the group or the service (tag medic:pause, policy
//     paused) — the pause clears the stop and the group's remembered marks,
//     so unpausing resumes afresh: only replacements of later marks count;
//   - what a dry run or a standby would have marked: a report, once per
//     instance while it stays a candidate, never state: it spends no rate
//     budget, and the replica that leads next decides afresh.
//
// A Frozen cycle judges and guards but marks nothing.
//
// Logs: a line when an instance's judged state changes, a line per
// marking, a line when a refusal reason starts (and per instance newly
// refused for it), and one when it ends; likewise when freezing starts and
// ends.
func (h *Healer) Cycle(ctx context.Context, in CycleInput) Report {
	svc := in.Service
	if svc == "" {
		svc = in.Snapshot.Service
	}
	st := h.state(svc)
	defer st.mu.Unlock()

	now := h.now()
	logger := log.With(h.logger, logkeys.Service, svc, logkeys.RequestID, in.RequestID)

	verdicts := Judge(JudgeInput{Snapshot: in.Snapshot, History: in.History, Detectors: h.detectors(svc, in),
		Policy: in.Policy, Probe: in.Probe, Now: now})
	verdicts, lrep, lstates := h.latency(logger, svc, st, in, verdicts, now)
	st.forgetGone(verdicts, now)
	h.updateStops(logger, st, in, verdicts, now)
	vant := h.vantage(logger, svc, st, in.Endpoint, verdicts)

	unavailable := make(map[string]bool, len(st.marked)+len(st.failed))
	for id := range st.marked {
		unavailable[id] = true
	}
	for id, f := range st.failed {
		if now.Sub(f.at) < retryAfter(f.n) {
			unavailable[id] = true
		}
	}
	stopped := make(map[string]Stop, len(st.stopped))
	for g, s := range st.stopped {
		stopped[g] = s.Stop
	}
	dec := Guard(GuardInput{
		Verdicts:      verdicts,
		Groups:        in.Snapshot.Groups,
		Endpoint:      in.Endpoint,
		RecentActions: st.actions,
		Policy:        in.Policy,
		Now:           now,
		Self:          in.Self,
		Marked:        unavailable,
		Stopped:       stopped,
	})
	var pre map[string]PreflightResult
	if !in.Frozen {
		dec, pre = h.preflight(ctx, logger, svc, st, dec, now)
	}

	h.logStateChanges(logger, st, verdicts)
	h.trackRefusals(logger, svc, st, dec.Refusals, verdicts)

	switch {
	case in.Frozen && !st.frozen:
		level.Warn(logger).Log(logkeys.Msg, "frozen: judging but not acting: "+in.FrozenReason, logkeys.Count, len(dec.Mark))
	case !in.Frozen && st.frozen:
		level.Info(logger).Log(logkeys.Msg, "no longer frozen: acting again")
	}
	st.frozen = in.Frozen
	var outcomes map[string]Outcome
	if !in.Frozen {
		outcomes = h.markAll(ctx, logger, svc, st, dec.Mark, in.RequestID)
	}
	// The report shows what medic really marked as Unhealthy, before
	// discovery sees it; dry-run marks change nothing and show nothing.
	reported := make([]Verdict, len(verdicts))
	marked := make(map[string]time.Time, len(st.marked))
	for i, v := range verdicts {
		if at, ok := st.marked[v.Instance.ID]; ok {
			v.Instance.HealthStatus = discovery.HealthUnhealthy
			marked[v.Instance.ID] = at
		}
		reported[i] = v
	}

	h.setInstanceGauges(svc, st, reported)
	used := actionsInWindow(st.actions, now)
	h.m.lastHour.WithLabelValues(svc).Set(float64(used))
	settled, summary, scores := h.score(svc, in, reported, now)

	return Report{Verdicts: reported, Decision: dec, Outcomes: outcomes, ActionsLastHour: used,
		RequestID: in.RequestID, Frozen: in.Frozen, Marked: marked,
		Insight: Insight{Latency: lrep, Outliers: lstates, Vantage: vant, Scores: scores, Settled: settled,
			ScoreSummary: summary, Preflight: pre}}
}

// detectors returns a copy of what Observe recorded for the snapshot's
// instances, forgetting the instances that left it, and takes the policy
// for the next results. Nil when the cycle brings its own History.
func (h *Healer) detectors(svc string, in CycleInput) map[string]*Detector {
	o := h.observedFor(svc)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.params = ParamsFor(in.Policy, in.Probe)
	present := make(map[string]bool, len(in.Snapshot.Instances))
	for _, inst := range in.Snapshot.Instances {
		present[inst.ID] = true
	}
	for id := range o.dets {
		if !present[id] {
			delete(o.dets, id)
		}
	}
	if in.History != nil {
		return nil
	}
	out := make(map[string]*Detector, len(o.dets))
	for id, d := range o.dets {
		cp := *d
		out[id] = &cp
	}
	return out
}

// forgetGone drops the memory of instances that left the snapshot, marks
// discovery now shows held Unhealthy, report-only marks of instances no
// longer bad, and marks older than the rate window.
func (st *serviceState) forgetGone(verdicts []Verdict, now time.Time) {
	byID := make(map[string]Verdict, len(verdicts))
	for _, v := range verdicts {
		byID[v.Instance.ID] = v
	}
	for id := range st.marked {
		if v, ok := byID[id]; !ok || v.Instance.HeldUnhealthy() || !v.Instance.InService() {
			delete(st.marked, id)
		}
	}
	for id := range st.failed {
		if v, ok := byID[id]; !ok || v.State != Bad {
			delete(st.failed, id)
		}
	}
	for id := range st.reported {
		if v, ok := byID[id]; !ok || v.State != Bad {
			delete(st.reported, id)
		}
	}
	for id := range st.states {
		if _, ok := byID[id]; !ok {
			delete(st.states, id)
		}
	}
	for id := range st.servedOK {
		if _, ok := byID[id]; !ok {
			delete(st.servedOK, id)
		}
	}
	for _, v := range verdicts {
		if v.State == Healthy {
			st.servedOK[v.Instance.ID] = true
		}
	}
	st.actions = keepWindow(st.actions, now)
	from := now.Add(-RateWindow)
	kept := st.marks[:0]
	for _, m := range st.marks {
		if m.at.After(from) {
			kept = append(kept, m)
		}
	}
	st.marks = kept
}

// markAll marks the instances the guard allowed and remembers the outcomes.
func (h *Healer) markAll(ctx context.Context, logger log.Logger, svc string, st *serviceState, toMark []Verdict, requestID string) map[string]Outcome {
	outcomes := map[string]Outcome{}
	for _, v := range toMark {
		id := v.Instance.ID
		if _, done := st.marked[id]; done {
			continue
		}
		ilog := log.With(logger, logkeys.InstanceID, id, logkeys.Group, v.Instance.Group, logkeys.AZ, v.Instance.AZ)
		prev, repeat := st.reported[id]
		if prev == ResultDryRun {
			continue // a dry run stays one for the process's life: reported once
		}
		if !repeat {
			level.Info(ilog).Log(logkeys.Msg, "marking bad instance Unhealthy", logkeys.State, v.State, logkeys.Reason, v.Reason)
		}
		o := h.act.MarkUnhealthy(ctx, v.Instance, requestID)
		at := h.now()
		switch o.Result {
		case ResultMarked:
			delete(st.reported, id)
			st.marked[id] = at
			st.actions = append(st.actions, at)
			st.marks = append(st.marks, mark{group: v.Instance.Group, at: at})
			delete(st.failed, id)
			h.scorer.Marked(svc, id, detectorOf(v), v.Since, at)
		case ResultAlreadyUnhealthy, ResultGone:
			st.marked[id] = at
			delete(st.failed, id)
		case ResultFailed:
			f := st.failed[id]
			st.failed[id] = failure{at: at, n: f.n + 1}
			h.m.actions.WithLabelValues(svc, string(o.Result)).Inc()
			level.Error(ilog).Log(logkeys.Msg, "marking failed; retrying after "+retryAfter(f.n+1).String(),
				logkeys.Result, o.Result, logkeys.Attempt, o.Attempts, logkeys.Err, o.Err)
			outcomes[id] = o
			continue
		default: // a dry run or a standby: a report, once per episode
			if st.reported[id] == o.Result {
				continue
			}
			st.reported[id] = o.Result
		}
		h.m.actions.WithLabelValues(svc, string(o.Result)).Inc()
		outcomes[id] = o
		level.Info(ilog).Log(logkeys.Msg, "marking done", logkeys.Result, o.Result, logkeys.Attempt, o.Attempts)
	}
	return outcomes
}

// updateStops stops marking in a group when replacements medic caused are
// judged bad, and resumes it when one is judged healthy or a person pauses
// the group or the service.
func (h *Healer) updateStops(logger log.Logger, st *serviceState, in CycleInput, verdicts []Verdict, now time.Time) {
	groups := make(map[string]discovery.Group, len(in.Snapshot.Groups))
	for _, g := range in.Snapshot.Groups {
		groups[g.Name] = g
	}
	for name, s := range st.stopped {
		g, ok := groups[name]
		why := ""
		switch {
		case !ok:
			why = "the group left the service"
		case in.Policy.Paused || GroupPaused(g):
			why = "a person paused it; unpausing resumes marking"
		default:
			for _, v := range verdicts {
				if v.Instance.Group == name && v.State == Healthy && entered(v.Instance).After(s.after) {
					why = "replacement " + v.Instance.ID + " is healthy"
					break
				}
			}
		}
		if why != "" {
			delete(st.stopped, name)
			st.forgetMarks(name) // a resumed group starts afresh: only later marks' replacements count
			level.Info(logger).Log(logkeys.Msg, "marking resumed in group: "+why, logkeys.Group, name)
		}
	}
	if in.Policy.Paused {
		st.marks = st.marks[:0]
	}
	for _, g := range in.Snapshot.Groups {
		if GroupPaused(g) {
			st.forgetMarks(g.Name)
		}
	}
	need := in.Policy.StopAfterFailedReplacements
	if need <= 0 || in.Policy.Paused {
		return
	}
	first := map[string]time.Time{}
	for _, m := range st.marks {
		if f, ok := first[m.group]; !ok || m.at.Before(f) {
			first[m.group] = m.at
		}
	}
	for name, after := range first {
		if _, ok := st.stopped[name]; ok || GroupPaused(groups[name]) {
			continue
		}
		var bad []Verdict
		for _, v := range verdicts {
			if v.Instance.Group == name && v.State == Bad && entered(v.Instance).After(after) && !st.servedOK[v.Instance.ID] {
				bad = append(bad, v)
			}
		}
		if len(bad) < need {
			continue
		}
		s := stop{Stop: replacementsFailing(groups[name], bad, after, need), after: after}
		s.Since = now
		st.stopped[name] = s
		level.Error(logger).Log(logkeys.Msg, "marking stopped in group: "+s.Detail, logkeys.Group, name)
	}
}

// forgetMarks drops the remembered marks of a group.
func (st *serviceState) forgetMarks(group string) {
	kept := st.marks[:0]
	for _, m := range st.marks {
		if m.group != group {
			kept = append(kept, m)
		}
	}
	st.marks = kept
}

// entered is when an instance entered InService, as far as discovery knows.
func entered(inst discovery.Instance) time.Time {
	t, _ := graceStart(inst)
	return t
}

// replacementsFailing builds the stop of a group whose replacements are bad.
func replacementsFailing(g discovery.Group, bad []Verdict, after time.Time, need int) Stop {
	sort.Slice(bad, func(i, j int) bool { return bad[i].Instance.ID < bad[j].Instance.ID })
	lt := g.LaunchTemplate
	if lt == "" {
		lt = "unknown launch template"
	}
	if g.LaunchTemplateVersion != "" {
		lt += " version " + g.LaunchTemplateVersion
	}
	s := Stop{Detail: fmt.Sprintf("%s launched since medic's mark at %s in %s %s bad after grace (stop_after_failed_replacements %d): "+
		"replacing does not help; the group launches from %s. A person should check the image and launch template, "+
		"then resume (a healthy replacement resumes by itself; or tag the group %s and remove the tag)",
		plural(len(bad), "replacement"), clock(after), g.Name, isAre(len(bad)), need, lt, PauseTag)}
	for _, v := range bad {
		inst := v.Instance
		s.Evidence = append(s.Evidence, fmt.Sprintf("%s (%s, image %s, type %s, launch template %s %s, in service since %s): %s",
			inst.ID, inst.AZ, orUnknown(inst.ImageID), orUnknown(inst.InstanceType), orUnknown(inst.LaunchTemplate),
			inst.LaunchTemplateVersion, clock(entered(inst)), v.Reason))
	}
	return s
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (h *Healer) logStateChanges(logger log.Logger, st *serviceState, verdicts []Verdict) {
	for _, v := range verdicts {
		if prev, ok := st.states[v.Instance.ID]; ok && prev == v.State {
			continue
		}
		st.states[v.Instance.ID] = v.State
		lvl := level.Info
		if v.State == Bad {
			lvl = level.Warn
		}
		lvl(logger).Log(logkeys.Msg, "instance judged "+string(v.State),
			logkeys.InstanceID, v.Instance.ID, logkeys.Group, v.Instance.Group, logkeys.AZ, v.Instance.AZ,
			logkeys.State, v.State, logkeys.Reason, v.Reason)
	}
}

// trackRefusals turns per-cycle refusals into episodes: the counter and a
// log line when a reason starts refusing, a log line per instance newly
// refused for it, a line when the reason clears, and the 0/1 gauge.
func (h *Healer) trackRefusals(logger log.Logger, svc string, st *serviceState, refusals []Refusal, verdicts []Verdict) {
	byID := make(map[string]discovery.Instance, len(verdicts))
	for _, v := range verdicts {
		byID[v.Instance.ID] = v.Instance
	}
	cur := map[RefusalReason]map[string]bool{}
	for _, r := range refusals {
		prev := st.refusing[r.Reason]
		if prev == nil && cur[r.Reason] == nil {
			h.m.refusals.WithLabelValues(svc, string(r.Reason)).Inc()
			level.Warn(logger).Log(logkeys.Msg, "guard starts refusing: "+r.Detail, logkeys.Reason, r.Reason,
				logkeys.Group, r.Group, logkeys.Count, len(r.Instances))
		}
		if cur[r.Reason] == nil {
			cur[r.Reason] = map[string]bool{}
		}
		for _, id := range r.Instances {
			cur[r.Reason][id] = true
			if prev[id] {
				continue
			}
			inst := byID[id]
			level.Warn(logger).Log(logkeys.Msg, "guard refuses to mark: "+r.Detail,
				logkeys.Reason, r.Reason, logkeys.InstanceID, id, logkeys.Group, inst.Group, logkeys.AZ, inst.AZ)
		}
	}
	for _, reason := range RefusalReasons {
		_, on := cur[reason]
		if _, was := st.refusing[reason]; was && !on {
			level.Info(logger).Log(logkeys.Msg, "guard no longer refuses", logkeys.Reason, reason)
		}
		v := 0.0
		if on {
			v = 1
		}
		h.m.refusing.WithLabelValues(svc, string(reason)).Set(v)
	}
	st.refusing = cur
}

// setInstanceGauges sets medic_instances for every state of every AZ in the
// snapshot (0 for empty states) and deletes the series of AZs that left.
func (h *Healer) setInstanceGauges(svc string, st *serviceState, verdicts []Verdict) {
	counts := map[string]map[State]int{}
	for _, v := range verdicts {
		if counts[v.Instance.AZ] == nil {
			counts[v.Instance.AZ] = map[State]int{}
		}
		counts[v.Instance.AZ][v.State]++
	}
	for az := range st.azs {
		if _, ok := counts[az]; !ok {
			for _, s := range States {
				h.m.instances.DeleteLabelValues(svc, az, string(s))
			}
			delete(st.azs, az)
		}
	}
	for az, byState := range counts {
		st.azs[az] = true
		for _, s := range States {
			h.m.instances.WithLabelValues(svc, az, string(s)).Set(float64(byState[s]))
		}
	}
}

// keepWindow drops the actions RateWindow old or older, in place.
func keepWindow(actions []time.Time, now time.Time) []time.Time {
	from := now.Add(-RateWindow)
	out := actions[:0]
	for _, t := range actions {
		if t.After(from) {
			out = append(out, t)
		}
	}
	return out
}

type metrics struct {
	instances *prometheus.GaugeVec
	actions   *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	refusing  *prometheus.GaugeVec
	lastHour  *prometheus.GaugeVec
}

func newMetrics(r prometheus.Registerer, logger log.Logger) *metrics {
	m := &metrics{
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_instances",
			Help: "Instances by judged state.",
		}, []string{"service", "az", "state"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_heal_actions_total",
			Help: "Marking attempts by outcome.",
		}, []string{"service", "result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_guard_refusals_total",
			Help: "Times the guard started refusing to mark, by reason (once per episode).",
		}, []string{"service", "reason"}),
		refusing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_guard_refusing",
			Help: "1 while the guard is refusing to mark for that reason.",
		}, []string{"service", "reason"}),
		lastHour: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_heal_actions_last_hour",
			Help: "Marks in the sliding hour (rate-limit budget used).",
		}, []string{"service"}),
	}
	if r == nil {
		return m
	}
	m.instances = register(r, m.instances, logger)
	m.actions = register(r, m.actions, logger)
	m.refusals = register(r, m.refusals, logger)
	m.refusing = register(r, m.refusing, logger)
	m.lastHour = register(r, m.lastHour, logger)
	return m
}

// register registers c, or returns the collector already registered in
// its place (a second Healer on the same registry shares the series).
func register[C prometheus.Collector](r prometheus.Registerer, c C, logger log.Logger) C {
	err := r.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	level.Error(logger).Log(logkeys.Msg, "cannot register healer metric", logkeys.Err, err)
	return c
}

// initService creates the service's counter and refusal series at zero, so
// rate() and alerts see them before the first event.
func (m *metrics) initService(svc string) {
	for _, r := range []ActionResult{ResultMarked, ResultDryRun, ResultAlreadyUnhealthy, ResultGone, ResultFailed} {
		m.actions.WithLabelValues(svc, string(r))
	}
	for _, r := range RefusalReasons {
		m.refusals.WithLabelValues(svc, string(r))
		m.refusing.WithLabelValues(svc, string(r)).Set(0)
	}
	m.lastHour.WithLabelValues(svc).Set(0)
}

func (m *metrics) deleteService(svc string) {
	l := prometheus.Labels{"service": svc}
	m.instances.DeletePartialMatch(l)
	m.actions.DeletePartialMatch(l)
	m.refusals.DeletePartialMatch(l)
	m.refusing.DeletePartialMatch(l)
	m.lastHour.DeletePartialMatch(l)
}

// Observe records one probe result of one of service's targets as it
// arrives, in O(1), and reports whether it may change a verdict, so that the
// caller runs a heal cycle of that service soon: for an instance, see
// Detector.Add; for a target with no instance (the endpoint), a change
// between passing and failing. Cycle judges on these records when its
// input brings no History; the records of instances that leave the
// snapshot are forgotten at the next Cycle.
func (h *Healer) Observe(service string, t probes.Target, r probes.Result) (wake bool) {
	o := h.observedFor(service)
	o.mu.Lock()
	defer o.mu.Unlock()
	if t.InstanceID != "" {
		h.lat.Observe(service, t.InstanceID, r)
	}
	if t.InstanceID == "" {
		prev, seen := o.endpoint[t.Key]
		o.endpoint[t.Key] = r.Success
		return !seen || prev != r.Success
	}
	p := o.params
	p.Interval, p.Timeout = t.Probe().Interval.D(), t.Probe().Timeout.D()
	d := o.dets[t.InstanceID]
	if d == nil {
		d = &Detector{}
		o.dets[t.InstanceID] = d
	}
	return d.Add(r, p)
}

// observedFor returns the service's observed records, created on first use
// with the default policy until a Cycle brings the service's own.
func (h *Healer) observedFor(service string) *observed {
	h.mu.Lock()
	defer h.mu.Unlock()
	o, ok := h.observed[service]
	if !ok {
		o = &observed{params: ParamsFor(config.Policy{}, config.Probe{}), dets: map[string]*Detector{}, endpoint: map[string]bool{}}
		h.observed[service] = o
	}
	return o
}
