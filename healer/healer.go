package healer

import (
	"context"
	"errors"
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

// FailedCooldown is how long the healer leaves an instance alone after a
// marking of it failed, so a permanent error (say, access denied) costs one
// call and one log line a minute rather than one a cycle.
const FailedCooldown = time.Minute

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
}

// CycleInput is one service's view at one cycle.
type CycleInput struct {
	Service  string // defaults to Snapshot.Service
	Snapshot discovery.Snapshot
	// History holds each instance's probe results by instance id, oldest first.
	History  map[string][]probes.Result
	Endpoint EndpointState
	Policy   config.Policy
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
}

// Healer runs judge → guard → act for each service and remembers, per
// service, what it marked and when. Cycle may be called concurrently for
// different services; calls for the same service are serialised.
type Healer struct {
	act    Actuator
	logger log.Logger
	now    func() time.Time
	m      *metrics

	mu       sync.Mutex
	services map[string]*serviceState
}

// serviceState is the healer's memory of one service.
type serviceState struct {
	mu        sync.Mutex
	forgotten bool

	// marked: instances marked (or dry-run marked, or found already
	// Unhealthy or gone) while they are still in the snapshot. They are
	// never marked again.
	marked map[string]ActionResult
	// failed: when a marking last failed, for FailedCooldown.
	failed map[string]time.Time
	// actions: times of marks within the last RateWindow.
	actions []time.Time
	// refusing: the instances refused per reason in the last cycle; a
	// reason present here is an ongoing refusal episode.
	refusing map[RefusalReason]map[string]bool
	// states: each instance's last judged state, to log only changes.
	states map[string]State
	// azs with medic_instances series.
	azs map[string]bool
	// frozen: the last cycle was frozen (to log only start and end).
	frozen bool
}

// New returns a Healer. It never fails: a metric that cannot be registered
// is logged and kept unregistered.
func New(o Options) *Healer {
	h := &Healer{act: o.Actuator, logger: o.Logger, now: o.Now, services: map[string]*serviceState{}}
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
				marked:   map[string]ActionResult{},
				failed:   map[string]time.Time{},
				refusing: map[RefusalReason]map[string]bool{},
				states:   map[string]State{},
				azs:      map[string]bool{},
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
// rate-limit history, refusal episodes) and deletes its metric series.
// It waits for a running Cycle of that service to finish.
func (h *Healer) Forget(service string) {
	h.mu.Lock()
	st, ok := h.services[service]
	delete(h.services, service)
	h.mu.Unlock()
	if !ok {
		return
	}
	st.mu.Lock() // wait for a running Cycle
	st.forgotten = true
	h.mu.Lock()
	if _, recreated := h.services[service]; !recreated {
		h.m.deleteService(service)
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
// marked, marks it (at most once per instance while the instance stays in
// the snapshot), and records all of it in logs and metrics.
//
// What the healer marked is fed back to the guard as Unhealthy even before
// discovery reports it, so the next cycles neither mark it again nor spend
// rate budget on it. Dry-run marks count like real ones: they use the rate
// budget and are reported once per instance, so dry-run shows what medic
// would really do. An instance whose marking failed is retried after
// FailedCooldown. A Frozen cycle judges and guards but marks nothing.
//
// Logs: a line when an instance's judged state changes, a line per
// marking, a line per instance when a refusal reason starts refusing it,
// and one when the reason clears; likewise when freezing starts and ends.
func (h *Healer) Cycle(ctx context.Context, in CycleInput) Report {
	svc := in.Service
	if svc == "" {
		svc = in.Snapshot.Service
	}
	st := h.state(svc)
	defer st.mu.Unlock()

	now := h.now()
	logger := log.With(h.logger, logkeys.Service, svc, logkeys.RequestID, in.RequestID)

	verdicts := Judge(JudgeInput{Snapshot: in.Snapshot, History: in.History, Policy: in.Policy, Now: now})

	present := make(map[string]bool, len(verdicts))
	for _, v := range verdicts {
		present[v.Instance.ID] = true
	}
	for id := range st.marked {
		if !present[id] {
			delete(st.marked, id)
		}
	}
	for id := range st.failed {
		if !present[id] {
			delete(st.failed, id)
		}
	}
	for id := range st.states {
		if !present[id] {
			delete(st.states, id)
		}
	}
	st.actions = keepWindow(st.actions, now)

	// The guard sees every instance medic has dealt with (dry run
	// included) or is cooling down after a failed marking as Unhealthy, so
	// it neither picks it again nor spends budget on it.
	guarded := make([]Verdict, len(verdicts))
	for i, v := range verdicts {
		_, dealt := st.marked[v.Instance.ID]
		t, failed := st.failed[v.Instance.ID]
		if dealt || (failed && now.Sub(t) < FailedCooldown) {
			v.Instance.HealthStatus = healthUnhealthy
		}
		guarded[i] = v
	}

	dec := Guard(GuardInput{
		Verdicts:      guarded,
		Groups:        in.Snapshot.Groups,
		Endpoint:      in.Endpoint,
		RecentActions: st.actions,
		Policy:        in.Policy,
		Now:           now,
	})

	h.logStateChanges(logger, st, verdicts)
	h.trackRefusals(logger, svc, st, dec.Refusals, verdicts)

	outcomes := map[string]Outcome{}
	toMark := dec.Mark
	switch {
	case in.Frozen && !st.frozen:
		level.Warn(logger).Log(logkeys.Msg, "frozen: judging but not acting: "+in.FrozenReason, logkeys.Count, len(dec.Mark))
	case !in.Frozen && st.frozen:
		level.Info(logger).Log(logkeys.Msg, "no longer frozen: acting again")
	}
	st.frozen = in.Frozen
	if in.Frozen {
		toMark = nil
	}
	for _, v := range toMark {
		id := v.Instance.ID
		if _, done := st.marked[id]; done {
			continue
		}
		ilog := log.With(logger, logkeys.InstanceID, id, logkeys.Group, v.Instance.Group, logkeys.AZ, v.Instance.AZ)
		level.Info(ilog).Log(logkeys.Msg, "marking bad instance Unhealthy", logkeys.State, v.State, logkeys.Reason, v.Reason)
		o := h.act.MarkUnhealthy(ctx, v.Instance, in.RequestID)
		outcomes[id] = o
		h.m.actions.WithLabelValues(svc, string(o.Result)).Inc()
		at := h.now()
		switch o.Result {
		case ResultMarked, ResultDryRun:
			st.marked[id] = o.Result
			st.actions = append(st.actions, at)
			delete(st.failed, id)
		case ResultAlreadyUnhealthy, ResultGone:
			st.marked[id] = o.Result
			delete(st.failed, id)
		default:
			st.failed[id] = at
		}
		if o.Err != nil {
			level.Error(ilog).Log(logkeys.Msg, "marking failed", logkeys.Result, o.Result, logkeys.Attempt, o.Attempts, logkeys.Err, o.Err)
		} else {
			level.Info(ilog).Log(logkeys.Msg, "marking done", logkeys.Result, o.Result, logkeys.Attempt, o.Attempts)
		}
	}
	// The report shows what medic really marked as Unhealthy, before
	// discovery sees it; dry-run marks change nothing and show nothing.
	reported := make([]Verdict, len(verdicts))
	for i, v := range verdicts {
		if st.marked[v.Instance.ID] == ResultMarked {
			v.Instance.HealthStatus = healthUnhealthy
		}
		reported[i] = v
	}

	h.setInstanceGauges(svc, st, reported)
	used := actionsInWindow(st.actions, now)
	h.m.lastHour.WithLabelValues(svc).Set(float64(used))

	return Report{Verdicts: reported, Decision: dec, Outcomes: outcomes, ActionsLastHour: used,
		RequestID: in.RequestID, Frozen: in.Frozen}
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

// Observe records one probe result of one of service's targets (an instance
// or the endpoint) as it arrives, in O(1), and reports whether it may change
// a verdict, so that the caller runs a heal cycle of that service soon.
// Results of targets with no instance and no endpoint role (static targets)
// are not observed at all.
//
// CONTRACT (wave 2): the controller calls this from the scheduler's OnResult
// and wakes the service's heal loop only when it returns true; the healer
// keeps the incremental per-instance detector state it needs. This first
// version wakes on every result.
func (h *Healer) Observe(service string, t probes.Target, r probes.Result) (wake bool) {
	return true
}
