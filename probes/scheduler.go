package probes

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// historySize is how many recent results are kept per target.
const historySize = 16

// defaultMaxConcurrent matches config's max_concurrent_probes default.
const defaultMaxConcurrent = 512

// maxJitter bounds the random delay added to each slot, so that targets
// with equal phases (or a hash collision) do not fire in lockstep.
const maxJitter = 20 * time.Millisecond

// Options configure a Scheduler.
type Options struct {
	// MaxConcurrent bounds the probes in flight across all targets; it is
	// also the number of worker goroutines. 0 means 512. Below it the
	// scheduler adapts its own limit (see limit.go), from min(64,
	// MaxConcurrent) up.
	MaxConcurrent int
	Logger        log.Logger
	// Registerer receives the probe counters and histograms
	// (docs/metrics.md, Probes); the per-target gauges are not registered:
	// the Scheduler gathers them itself (Gather). Nil registers nothing.
	// Registering twice on one registry panics.
	Registerer prometheus.Registerer
	// OnResult is called from a probe worker with every result the
	// scheduler records. It must not block: a slow OnResult holds a worker
	// and delays other targets' probes. Hand the result off with a
	// non-blocking send. It is not called for targets removed while their
	// probe ran, nor for probes cut short because Run is stopping.
	OnResult func(Target, Result)
	// Now is the clock for slots and Result.Start. Nil means time.Now.
	Now func() time.Time
}

// Scheduler probes a changing set of targets, each on its own interval.
//
// Each target gets a stable phase in [0, interval), derived from its Key,
// so probes spread evenly over the interval and a target keeps its slots
// across updates and restarts. One goroutine keeps a min-heap of next
// slots and hands due probes to a fixed pool of MaxConcurrent workers,
// as many at once as its adaptive limit allows (limit.go). A slot is
// skipped, and counted, when the target's previous probe is still running
// (overlap) or when no worker came free within one interval of it
// (concurrency).
type Scheduler struct {
	now      func() time.Time
	logger   log.Logger
	onResult func(Target, Result)
	workers  int
	m        *metrics

	mu      sync.Mutex
	entries map[string]*entry
	order   []*entry     // every entry, by scope then series labels (Gather)
	counts  []groupCount // medic_probe_targets, made by Update
	// relabelled: an Update changed an entry's series labels (re-sort order)
	relabelled bool
	queue      queue
	running    bool
	self       selfWindow

	// inflight counts the jobs sent to workers and not given back; the
	// dispatcher sends none while the young ones are at limit (see adapt
	// and young). waited: a due slot waited for the limit since the last
	// adapt. starts holds each worker's probe start (UnixNano; 0 when
	// idle), read by countOld.
	inflight, limit, old int
	cutoff               int64
	waited               bool
	starts               []atomic.Int64
	schedP90             func() time.Duration // tests; nil: the runtime's

	wake  chan struct{} // an Update changed the queue
	freed chan struct{} // a job was given back, or the limit grew
	epoch time.Time     // origin of the queue's due times
}

// entry is one target's schedule, state and history.
type entry struct {
	target   Target
	scope    string
	interval time.Duration
	phase    time.Duration
	base     time.Time // the slot on the target's grid
	next     time.Time // base plus jitter: when the probe is due
	index    int       // in the queue
	busy     bool      // a probe of this target is in flight
	removed  bool
	m        *handles // shared with the entries of its (service, scope)
	labels   []*dto.LabelPair

	hist [historySize]record // ring; the newest is hist[(n-1)%historySize]
	n    int                 // results recorded
}

// series is the labels of the entry's per-target series.
func (e *entry) series() seriesKey { return seriesKeyOf(&e.target, e.scope) }

type job struct {
	e    *entry
	t    Target
	slot time.Time
}

// NewScheduler returns a Scheduler with no targets; call Update, then Run.
func NewScheduler(o Options) *Scheduler {
	s := &Scheduler{
		now:      o.Now,
		logger:   o.Logger,
		onResult: o.OnResult,
		workers:  o.MaxConcurrent,
		m:        newMetrics(),
		entries:  map[string]*entry{},
		wake:     make(chan struct{}, 1),
		freed:    make(chan struct{}, 1),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.epoch = s.now()
	if s.logger == nil {
		s.logger = log.NewNopLogger()
	}
	s.logger = log.With(s.logger, logkeys.Component, "probes")
	if s.workers <= 0 {
		s.workers = defaultMaxConcurrent
	}
	s.limit = min(limitFloor, s.workers)
	s.m.limit.Set(float64(s.limit))
	if o.Registerer != nil {
		inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "medic_probes_in_flight",
			Help: "Probes running now.",
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(s.inflight)
		})
		o.Registerer.MustRegister(s.m.probes, s.m.latency, s.m.skipped, s.m.lateness, s.m.limit, inflight)
	}
	return s
}

// Update replaces the set of targets at once. A Key already scheduled keeps
// its history and its slots; its new settings apply from its next probe (a
// changed interval moves it to the new grid). Keys not in targets stop:
// their history and their per-target series are dropped (a keep-alive
// connection closes at its idle timeout). When a Key appears twice the last
// one wins.
func (s *Scheduler) Update(targets []Target) {
	s.mu.Lock()
	now := s.now()
	before := s.groups()
	next := make(map[string]*entry, len(targets))
	var added, removed []string
	pp := newPreparer()
	for _, t := range targets {
		t.prep = pp.prepare(t)
		if e, ok := next[t.Key]; ok {
			s.retarget(e, t, now, pp)
			continue
		}
		if e, ok := s.entries[t.Key]; ok {
			s.retarget(e, t, now, pp)
			next[t.Key] = e
			continue
		}
		e := &entry{target: t, scope: scopeOf(t), interval: intervalOf(t), index: -1}
		e.phase = phaseOf(t.Key, e.interval)
		e.m = s.m.handlesFor(t.Service, e.scope)
		e.labels = pp.labels(e.series(), e.scope)
		s.schedule(e, now)
		s.queue.push(qitem{due: s.due(e), e: e})
		next[t.Key] = e
		added = append(added, t.Key)
	}
	for k, e := range s.entries {
		if _, ok := next[k]; ok {
			continue
		}
		e.removed = true
		s.queue.remove(e.index)
		removed = append(removed, k)
	}
	s.entries = next
	if len(added) > 0 || len(removed) > 0 || s.relabelled {
		s.sortOrder()
		s.relabelled = false
	}
	after := s.groups()
	s.dropSeries(before, after)
	s.counts = countGroups(after)
	s.mu.Unlock()

	select {
	case s.wake <- struct{}{}:
	default:
	}
	if len(added) > 0 {
		level.Debug(s.logger).Log(logkeys.Msg, "probe targets added", logkeys.Count, len(added))
	}
	if len(removed) > 0 {
		level.Debug(s.logger).Log(logkeys.Msg, "probe targets removed", logkeys.Count, len(removed))
	}
}

// retarget gives a kept entry its new Target (with a new prepared).
func (s *Scheduler) retarget(e *entry, t Target, now time.Time, pp preparer) {
	old := e.series()
	e.target = t
	if scope := scopeOf(t); t.Service != old.service || scope != e.scope {
		e.scope = scope
		e.m = s.m.handlesFor(t.Service, scope)
	}
	if k := e.series(); k != old {
		e.labels = pp.labels(k, e.scope)
		s.relabelled = true
	}
	if iv := intervalOf(t); iv != e.interval {
		e.interval = iv
		e.phase = phaseOf(t.Key, iv)
		if e.index >= 0 {
			s.schedule(e, now)
			s.queue.fix(e.index)
		}
	}
}

// sortOrder rebuilds s.order from s.entries, sorted by scope (the
// endpoints' series are families of their own), then by series labels.
// Called with mu held.
func (s *Scheduler) sortOrder() {
	s.order = make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		s.order = append(s.order, e)
	}
	slices.SortFunc(s.order, func(a, b *entry) int {
		if a.scope != b.scope {
			return strings.Compare(a.scope, b.scope)
		}
		if c := a.series().compare(b.series()); c != 0 {
			return c
		}
		return strings.Compare(a.target.Key, b.target.Key) // duplicates: a stable winner
	})
}

type group struct{ service, scope string }

// groups returns the targets of each (service, scope) that has any. Called
// with mu held.
func (s *Scheduler) groups() map[group]int {
	g := map[group]int{}
	for _, e := range s.entries {
		g[group{e.target.Service, e.scope}]++
	}
	return g
}

// dropSeries deletes the counter and histogram series of the (service,
// scope) pairs that had targets before and have none after, so a service
// removed from the config leaves /metrics. Called with mu held.
func (s *Scheduler) dropSeries(before, after map[group]int) {
	services := map[string]bool{}
	for g := range after {
		services[g.service] = true
	}
	for g := range before {
		if after[g] > 0 {
			continue
		}
		delete(s.m.handles, g)
		s.m.probes.DeletePartialMatch(prometheus.Labels{"service": g.service, "scope": g.scope})
		s.m.latency.DeletePartialMatch(prometheus.Labels{"service": g.service, "scope": g.scope})
		if !services[g.service] {
			s.m.skipped.DeletePartialMatch(prometheus.Labels{"service": g.service})
		}
	}
}

// Run probes the targets until ctx is done, then waits for the probes in
// flight (which see ctx cancelled) and returns nil. It returns an error at
// once if the Scheduler is already running.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("probes: scheduler already running")
	}
	s.running = true
	// Slots computed by Update before Run may be long past.
	now := s.now()
	for _, it := range s.queue {
		if now.Sub(it.e.next) > 0 {
			s.schedule(it.e, now)
		}
	}
	s.queue.init()
	s.mu.Unlock()

	level.Info(s.logger).Log(logkeys.Msg, "probe scheduler started", logkeys.Count, s.workers)
	jobs := make(chan job, s.workers)
	var wg sync.WaitGroup
	s.starts = make([]atomic.Int64, s.workers)
	for i := range s.workers {
		wg.Go(func() { s.work(ctx, jobs, &s.starts[i]) })
	}
	p90 := s.schedP90
	if p90 == nil {
		p90 = newSchedLatency().p90
	}
	wg.Go(func() { s.adapt(ctx, p90) })
	s.dispatch(ctx, jobs)
	close(jobs)
	wg.Wait()

	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	level.Info(s.logger).Log(logkeys.Msg, "probe scheduler stopped")
	return nil
}

// dispatch hands each due slot to a worker while fewer than the limit
// are in flight (young) and a worker is free. A job counts in flight from
// when it is sent until its worker gives it back (see work); at most one
// per worker is, so sending on jobs never blocks.
func (s *Scheduler) dispatch(ctx context.Context, jobs chan<- job) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	for {
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		now := s.now()
		e, wait := s.top(now)
		switch {
		case e != nil && s.young() < s.limit && s.inflight < s.workers:
			s.inflight++
			jobs <- s.take(e, now)
			s.mu.Unlock()
			continue
		case e != nil: // due, but the limit is reached: wait for a probe to end
			s.waited = true
			s.mu.Unlock()
			select {
			case <-s.freed:
			case <-ctx.Done():
				return
			}
			continue
		}
		s.mu.Unlock()
		switch {
		case wait < 0: // no targets
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			}
		case wait > 0:
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-s.wake:
				timer.Stop()
			case <-ctx.Done():
				return
			}
		}
	}
}

// adapt ages the probes in flight every limitScan and moves the limit
// every limitTick (see limit.go) until ctx is done. p90 reads the
// scheduling latency.
func (s *Scheduler) adapt(ctx context.Context, p90 func() time.Duration) {
	t := time.NewTicker(limitScan)
	defer t.Stop()
	lo := min(limitFloor, s.workers)
	next := time.Now().Add(limitTick)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Before(next) {
				s.mu.Lock()
				s.countOld()
				s.mu.Unlock()
				s.signalFreed() // probes grown old may let one more start
				continue
			}
			next = now.Add(limitTick)
		}
		sched := p90()
		s.mu.Lock()
		s.countOld()
		prev := s.limit
		s.limit = nextLimit(prev, lo, s.workers, s.waited, sched)
		s.waited = false
		cur, inflight := s.limit, s.inflight
		s.mu.Unlock()
		s.signalFreed()
		if cur == prev {
			continue
		}
		s.m.limit.Set(float64(cur))
		level.Debug(s.logger).Log(logkeys.Msg, "probe concurrency limit changed", logkeys.Limit, cur,
			logkeys.PreviousLimit, prev, logkeys.SchedLatency, sched, logkeys.Count, inflight)
	}
}

// young is how many probes in flight count against the limit: those not
// yet limitOld in flight. Called with mu held.
func (s *Scheduler) young() int { return s.inflight - s.old }

// countOld counts the probes in flight that started before now -
// limitOld: they wait on their targets, not on medic's CPU, and do not
// count against the limit, so slow or hanging targets never starve the
// others below MaxConcurrent. A worker that ends such a probe takes it off
// the count (see ended). Called with mu held.
func (s *Scheduler) countOld() {
	s.cutoff = s.now().Add(-limitOld).UnixNano()
	s.old = 0
	for i := range s.starts {
		if st := s.starts[i].Load(); st != 0 && st < s.cutoff {
			s.old++
		}
	}
	s.old = min(s.old, s.inflight)
}

// ended records the end of a probe that started at start (from the
// worker's slot in starts). Called with mu held.
func (s *Scheduler) ended(start int64) {
	if start < s.cutoff && s.old > 0 {
		s.old--
	}
}

// signalFreed wakes the dispatcher if it waits for the limit.
func (s *Scheduler) signalFreed() {
	select {
	case s.freed <- struct{}{}:
	default:
	}
}

// maxSkips bounds the overlapped slots top passes under one hold of mu.
const maxSkips = 64

// top returns the entry at the top of the queue when its slot is due and
// a worker may take it (take), after counting and passing the slots whose
// target's previous probe is still running (overlap). Otherwise it returns
// how long until the top is due: negative when there are no targets, zero
// when it stopped after maxSkips (call it again). Called with mu held.
func (s *Scheduler) top(now time.Time) (*entry, time.Duration) {
	for range maxSkips {
		if len(s.queue) == 0 {
			return nil, -1
		}
		e := s.queue[0].e
		if wait := e.next.Sub(now); wait > 0 {
			return nil, wait
		}
		if !e.busy {
			return e, 0
		}
		e.m.overlap.Inc()
		s.advance(e)
	}
	return nil, 0
}

// take marks e, just returned by top, as probing at now and moves it to
// its following slot. When no worker came within a whole interval of e's
// slot, the slots that have passed since are counted and skipped
// (concurrency) and the probe is the latest due slot's, so its lateness
// stays under one interval. The queue is ordered by due slot and a late
// target is probed, not moved past now: when the schedule is over
// capacity the target that has waited longest goes first, every target's
// gap between probes stays near the mean (the number of targets over the
// probes medic can make a second), and none waits an extra interval for
// having been skipped. Called with mu held.
func (s *Scheduler) take(e *entry, now time.Time) job {
	if late := now.Sub(e.next); late >= e.interval {
		k := late / e.interval
		e.m.concurrency.Add(float64(k))
		s.self.skip(now, int(k))
		e.base = e.base.Add(k * e.interval)
		e.next = e.next.Add(k * e.interval)
	}
	j := job{e: e, t: e.target, slot: e.next}
	e.busy = true
	s.advance(e)
	return j
}

// work runs probes until jobs is closed. After each probe the worker
// takes the next due slot itself, staying in flight, while the limit
// allows: under load a worker goes from probe to probe, like a plain loop,
// rather than through the dispatcher and a wake-up. When no slot is due,
// or the limit has shrunk below the probes in flight, it gives its place
// back.
func (s *Scheduler) work(ctx context.Context, jobs <-chan job, start *atomic.Int64) {
	// Each probe's context (its timeout) hangs off this worker's own
	// child of ctx: registering it with ctx itself would make every probe
	// of every worker take ctx's one lock, twice.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The targets of a config share one allowed_networks list: the
	// context carrying it is made once per list, not once per probe.
	actx, allowed := ctx, []config.Prefix(nil)
	tl := &targetLogger{base: s.logger}
	for j := range jobs {
		for {
			pctx := ctx
			if a := j.t.Allowed; len(a) > 0 {
				if len(a) != len(allowed) || &a[0] != &allowed[0] {
					actx, allowed = withAllowed(ctx, a), a
				}
				pctx = actx
			}
			tl.t = &j.t
			now := s.now()
			start.Store(now.UnixNano())
			s.probe(pctx, j, tl, now)
			s.mu.Lock()
			s.ended(now.UnixNano())
			start.Store(0)
			if ctx.Err() == nil && s.young() <= s.limit {
				next := s.now()
				if e, _ := s.top(next); e != nil {
					j = s.take(e, next)
					s.mu.Unlock()
					continue
				}
			}
			s.inflight--
			s.mu.Unlock()
			s.signalFreed()
			break
		}
	}
}

// probe runs one job, starting now at start, and records its result.
func (s *Scheduler) probe(ctx context.Context, j job, tl *targetLogger, start time.Time) {
	var r Result
	if ctx.Err() == nil {
		r = runProber(ctx, j.t, tl)
	}
	r.Start = start
	r.Lateness = start.Sub(j.slot)

	s.mu.Lock()
	e := j.e
	e.busy = false
	if e.removed || ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	var was bool
	first := e.n == 0
	if !first {
		was = e.hist[(e.n-1)%historySize].success
	}
	e.hist[e.n%historySize] = toRecord(&r)
	e.n++
	if r.Success {
		e.m.ok.Inc()
	} else {
		e.m.fail.Inc()
	}
	e.m.latency.Observe(r.Duration.Seconds())
	s.self.probe(start, &r)
	s.mu.Unlock()
	s.m.lateness.Observe(r.Lateness.Seconds())

	if first || was != r.Success {
		level.Debug(s.logger).Log(logkeys.Msg, "probe result changed", logkeys.Service, j.t.Service,
			logkeys.Target, j.t.Key, logkeys.Result, resultWord(r.Success), logkeys.Reason, r.Reason)
	}
	if s.onResult != nil {
		s.onResult(j.t, r)
	}
}

// targetLogger logs with a target's service and key. One per worker, set
// to each probe's target; the context (log.With copies the base logger's)
// is built only when a line is logged, which a passing probe never does.
type targetLogger struct {
	base log.Logger
	t    *Target
}

func (l *targetLogger) Log(keyvals ...any) error {
	return log.With(l.base, logkeys.Service, l.t.Service, logkeys.Target, l.t.Key).Log(keyvals...)
}

// runProber calls the target's prober, turning an unknown type or a panic
// into a failed Result.
func runProber(ctx context.Context, t Target, logger log.Logger) (r Result) {
	typ := t.Probe().Type
	if typ == "" {
		typ = "http"
	}
	p := Probers[typ]
	if p == nil {
		return Result{Reason: "unknown probe type " + typ}
	}
	defer func() {
		if v := recover(); v != nil {
			level.Error(logger).Log(logkeys.Msg, "prober panicked", logkeys.Err, fmt.Sprint(v))
			r = Result{Reason: "prober panicked"}
		}
	}()
	return p(ctx, t, logger)
}

func resultWord(ok bool) string {
	if ok {
		return "success"
	}
	return "failure"
}

// History returns a copy of the target's recent results, oldest first, at
// most 16; nil for an unknown Key.
func (s *Scheduler) History(key string) []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e == nil {
		return nil
	}
	return e.history()
}

// Last returns the target's latest result, without copying its history;
// false for an unknown Key or a target not probed yet.
func (s *Scheduler) Last(key string) (Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e == nil || e.n == 0 {
		return Result{}, false
	}
	return e.hist[(e.n-1)%historySize].result(), true
}

// Histories returns a copy of the History of each of keys that is
// scheduled, by Key: the cost is that of the keys asked for, not of every
// target. A target not probed yet maps to an empty slice; an unknown Key is
// absent.
func (s *Scheduler) Histories(keys []string) map[string][]Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]Result, len(keys))
	for _, k := range keys {
		if e := s.entries[k]; e != nil {
			out[k] = e.history()
		}
	}
	return out
}

// Snapshot returns a copy of every target's History, by Key. A target not
// probed yet maps to an empty slice. It costs a copy of every history: for
// one service's targets use Histories.
func (s *Scheduler) Snapshot() map[string][]Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]Result, len(s.entries))
	for k, e := range s.entries {
		out[k] = e.history()
	}
	return out
}

func (e *entry) history() []Result {
	n := min(e.n, historySize)
	out := make([]Result, 0, n)
	for i := e.n - n; i < e.n; i++ {
		out = append(out, e.hist[i%historySize].result())
	}
	return out
}

// schedule puts e on the first slot of its grid after now. The caller
// fixes the heap.
func (s *Scheduler) schedule(e *entry, now time.Time) {
	e.base = nextSlot(now, e.phase, e.interval)
	s.setNext(e, e.base.Add(jitter(e.interval)))
}

// setNext sets when e is due, in the entry and in its queue item.
func (s *Scheduler) setNext(e *entry, t time.Time) {
	e.next = t
	if e.index >= 0 {
		s.queue[e.index].due = s.due(e)
	}
}

// due is e.next as the queue orders it: time since the scheduler was made
// (monotonic), held in the queue item itself so that ordering the heap
// reads no entry.
func (s *Scheduler) due(e *entry) time.Duration { return e.next.Sub(s.epoch) }

// advance moves e, at the top of the queue, to its following slot. A slot
// that is then already a whole interval late is counted and skipped by
// take, in one step however many slots were missed.
func (s *Scheduler) advance(e *entry) {
	e.base = e.base.Add(e.interval)
	e.next = e.base.Add(jitter(e.interval))
	s.advanceTo(e)
}

// advanceTo puts e, whose next was just set, in its place in the queue.
func (s *Scheduler) advanceTo(e *entry) {
	s.setNext(e, e.next)
	s.queue.fix(e.index)
}

// nextSlot returns the first time after now that is phase past a multiple
// of interval since the Unix epoch. It keeps now's monotonic reading.
func nextSlot(now time.Time, phase, interval time.Duration) time.Time {
	n := now.UnixNano()
	iv := int64(interval)
	k := (n - int64(phase)) / iv
	slot := k*iv + int64(phase)
	for slot <= n {
		slot += iv
	}
	return now.Add(time.Duration(slot - n))
}

// phaseOf spreads keys evenly, and stably, over [0, interval).
func phaseOf(key string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(key))
	return time.Duration(h.Sum64() % uint64(interval))
}

func jitter(interval time.Duration) time.Duration {
	j := min(interval/50, maxJitter)
	if j <= 0 {
		return 0
	}
	return rand.N(j)
}

func intervalOf(t Target) time.Duration {
	if d := t.Probe().Interval.D(); d > 0 {
		return d
	}
	return fallbackInterval
}

// queue is a min-heap of entries by next due time. Each item carries its
// entry's due time, so comparisons touch only the queue's own array; an
// entry's index is written once per level an item moves (no swaps). The
// heap is 4-ary: half the levels of a binary one, and the dispatcher's
// usual move (the earliest entry to the back) crosses every level.
type queue []qitem

type qitem struct {
	due time.Duration // see Scheduler.due
	e   *entry
}

const queueArity = 4

func (q *queue) push(it qitem) {
	*q = append(*q, it)
	q.up(len(*q) - 1)
}

// remove takes the item at i out of the queue; its entry's index becomes -1.
func (q *queue) remove(i int) {
	h := *q
	n := len(h) - 1
	e := h[i].e
	if i != n {
		h.put(i, h[n])
	}
	h[n] = qitem{}
	*q = h[:n]
	e.index = -1
	if i != n {
		q.fix(i)
	}
}

// fix restores the order after the due time at i changed.
func (q queue) fix(i int) {
	if !q.down(i) {
		q.up(i)
	}
}

// init orders the whole queue and sets every entry's index.
func (q queue) init() {
	for i := range q {
		q[i].e.index = i
	}
	if len(q) < 2 {
		return
	}
	for i := (len(q) - 2) / queueArity; i >= 0; i-- {
		q.down(i)
	}
}

func (q queue) up(j int) {
	it := q[j]
	for j > 0 {
		p := (j - 1) / queueArity
		if q[p].due <= it.due {
			break
		}
		q.put(j, q[p])
		j = p
	}
	q.put(j, it)
}

// put places it at j and tells its entry.
func (q queue) put(j int, it qitem) {
	q[j] = it
	it.e.index = j
}

// down moves the item at i towards the leaves; it reports whether it moved.
func (q queue) down(i int) bool {
	it := q[i]
	n := len(q)
	j := i
	for {
		c := queueArity*j + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < min(c+queueArity, n); k++ {
			if q[k].due < q[m].due {
				m = k
			}
		}
		if q[m].due >= it.due {
			break
		}
		q.put(j, q[m])
		j = m
	}
	q.put(j, it)
	return j > i
}
