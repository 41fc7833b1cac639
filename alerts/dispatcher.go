package alerts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/cenkalti/backoff/v4"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// Options configure a Dispatcher.
type Options struct {
	Config config.Notifications
	// AWS builds the SNS clients; it may be nil when no sink is sns.
	AWS        *aws.Config
	Logger     log.Logger            // default: discard
	Registerer prometheus.Registerer // default: a private registry
	// Now is the clock of deduplication, digests and alert times.
	// Default time.Now.
	Now func() time.Time
	// DrainTimeout bounds how long Run keeps delivering queued events
	// after its context ends. Default 3s: within medic's 4s shutdown
	// budget (cmd/medic), so that a hanging sink neither delays the exit
	// nor keeps what is left from being counted as dropped.
	DrainTimeout time.Duration
	// TickInterval is how often Run checks for due digests and
	// Alertmanager resends. Default 1s.
	TickInterval time.Duration
	// ExternalURL is the URL under which people reach medic's status
	// page (cmd/medic's --web.external-url, route prefix included). Alerts
	// sent to Alertmanager carry it as their generatorURL; empty leaves
	// generatorURL out.
	ExternalURL string
	// Leads reports whether this replica leads (with a lease: holds it);
	// nil: always. A standby's Alertmanager sinks keep alive no alert of a
	// kind only the leader tells (Kind.ToldByLeader): the leader does, and
	// a former leader's would fire again what the new leader resolved.
	Leads func() bool
}

// Dispatcher is the Notifier of medic: it deduplicates and digests events,
// then hands them to a bounded queue per sink, which a goroutine per sink
// delivers with bounded retries. Notify never waits for a sink.
type Dispatcher struct {
	logger       log.Logger
	now          func() time.Time
	awsCfg       *aws.Config
	drainTimeout time.Duration
	tick         time.Duration
	externalURL  string
	leads        func() bool
	m            *metrics

	mu      sync.Mutex
	gate    *gate
	workers []*worker // in config order
	running bool
	// wctx is the parent context of the workers while Run runs; its end
	// starts their drain.
	wctx context.Context
	wg   sync.WaitGroup
}

var _ Notifier = (*Dispatcher)(nil)

// Notify results (the result label of medic_notifications_total).
const (
	resultSent         = "sent"
	resultFailed       = "failed"
	resultDeduplicated = "deduplicated"
	resultDigested     = "digested"
)

type metrics struct {
	notifications *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	queueLength   *prometheus.GaugeVec
	duration      *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_notifications_total",
			Help: "Events handled per sink by outcome: sent, failed (after retries), deduplicated, digested (folded into a digest).",
		}, []string{"sink", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_notifications_dropped_total",
			Help: "Events dropped because the sink's queue was full (the oldest is dropped), or left queued at shutdown or on removal.",
		}, []string{"sink"}),
		queueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medic_notification_queue_length",
			Help: "Events waiting in the sink's queue.",
		}, []string{"sink"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "medic_notification_delivery_duration_seconds",
			Help:    "Duration of one delivery attempt to the sink.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
	}
	for _, c := range []prometheus.Collector{m.notifications, m.dropped, m.queueLength, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering notification metrics: %w", err)
		}
	}
	return m, nil
}

// NewDispatcher builds a Dispatcher and its sinks from o.Config. It fails
// when a sink cannot be built (a secret that cannot be read, sns without
// an AWS config) or the metrics cannot be registered.
func NewDispatcher(o Options) (*Dispatcher, error) {
	d := &Dispatcher{
		logger:       o.Logger,
		now:          o.Now,
		awsCfg:       o.AWS,
		drainTimeout: o.DrainTimeout,
		tick:         o.TickInterval,
		externalURL:  o.ExternalURL,
		leads:        o.Leads,
	}
	if d.logger == nil {
		d.logger = log.NewNopLogger()
	}
	d.logger = log.With(d.logger, logkeys.Component, "notifications")
	if d.now == nil {
		d.now = time.Now
	}
	if d.drainTimeout <= 0 {
		d.drainTimeout = 3 * time.Second
	}
	if d.tick <= 0 {
		d.tick = time.Second
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	d.m = m
	cfg := o.Config.Defaulted()
	d.gate = newGate(cfg.DedupWindow.D(), cfg.DigestWindow.D(), cfg.DigestThreshold)
	if err := d.Update(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// Update applies a reloaded config. Every sink is built first; on any
// error nothing changes. A sink whose config and secrets are unchanged
// keeps running untouched; a changed one is replaced and its queue (and,
// for Alertmanager, its active alerts) carried over; a removed one is
// stopped and its queued events counted as dropped.
func (d *Dispatcher) Update(cfg config.Notifications) error {
	cfg = cfg.Defaulted()
	var bs []built
	var errs []error
	for _, sc := range cfg.Sinks {
		b, err := buildSink(sc, d.awsCfg, d.externalURL, d.now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if am, ok := b.sink.(*alertmanagerSink); ok {
			am.leads = d.leads
		}
		bs = append(bs, b)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.gate.configure(cfg.DedupWindow.D(), cfg.DigestWindow.D(), cfg.DigestThreshold)
	old := map[string]*worker{}
	for _, w := range d.workers {
		old[w.name] = w
	}
	var next []*worker
	for _, b := range bs {
		name := b.spec.cfg.Name
		if w, ok := old[name]; ok && w.spec.same(b.spec) && w.retry == cfg.Retry {
			next = append(next, w)
			delete(old, name)
			continue
		}
		w := d.newWorker(b, cfg.Retry)
		if o, ok := old[name]; ok {
			o.stop()
			if am, ok := w.sink.(*alertmanagerSink); ok {
				if oam, ok := o.sink.(*alertmanagerSink); ok {
					am.adopt(oam)
				}
			}
			for _, e := range o.q.takeAll() {
				if dropped, _ := w.q.push(e); dropped {
					d.m.dropped.WithLabelValues(name).Inc()
				}
			}
			d.m.queueLength.WithLabelValues(name).Set(float64(w.q.len()))
			delete(old, name)
		}
		next = append(next, w)
		if d.running {
			d.start(w)
		}
		level.Info(d.logger).Log(logkeys.Sink, name, logkeys.Msg, "notification sink ready", "type", b.spec.cfg.Type)
	}
	for name, o := range old {
		o.stop()
		if n := len(o.q.takeAll()); n > 0 {
			d.m.dropped.WithLabelValues(name).Add(float64(n))
		}
		d.m.queueLength.DeleteLabelValues(name)
		level.Info(d.logger).Log(logkeys.Sink, name, logkeys.Msg, "notification sink removed")
	}
	d.workers = next
	return nil
}

// Notify takes e for delivery and returns at once: it never waits for a
// sink. It owns e's slices and map from now on. An event with a zero Time
// gets the Dispatcher's clock.
func (d *Dispatcher) Notify(e Event) {
	now := d.now()
	if e.Time.IsZero() {
		e.Time = now
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.gate.admit(e, now)
	for _, w := range d.workers {
		if !w.accepts(e) {
			continue
		}
		switch {
		case v == duplicate:
			d.m.notifications.WithLabelValues(w.name, resultDeduplicated).Inc()
		case v == digested && !w.eachEvent:
			d.m.notifications.WithLabelValues(w.name, resultDigested).Inc()
		default:
			d.enqueueLocked(w, e)
		}
	}
	d.enqueueDigestsLocked(d.gate.due(now))
}

func (d *Dispatcher) enqueueDigestsLocked(digests []Event) {
	for _, de := range digests {
		for _, w := range d.workers {
			if !w.eachEvent && w.accepts(de) {
				d.enqueueLocked(w, de)
			}
		}
	}
}

func (d *Dispatcher) enqueueLocked(w *worker, e Event) {
	dropped, n := w.q.push(e)
	if dropped {
		d.m.dropped.WithLabelValues(w.name).Inc()
	}
	d.m.queueLength.WithLabelValues(w.name).Set(float64(n))
}

// flushDue queues the digests due at the clock's now.
func (d *Dispatcher) flushDue() {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.enqueueDigestsLocked(d.gate.due(now))
}

// Run delivers until ctx ends, then sends the open digests and drains the
// queues for at most DrainTimeout. It returns nil after a clean stop, or
// an error if it was already running.
func (d *Dispatcher) Run(ctx context.Context) error {
	wctx, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("notifications: Run called twice")
	}
	d.running = true
	d.wctx = wctx
	for _, w := range d.workers {
		d.start(w)
	}
	d.mu.Unlock()

	t := time.NewTicker(d.tick)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			d.flushDue()
		}
	}

	d.mu.Lock()
	d.enqueueDigestsLocked(d.gate.flushAll(d.now()))
	d.running = false
	d.mu.Unlock()
	stopWorkers() // the workers drain what is queued, then return
	d.wg.Wait()
	return nil
}

// worker runs one sink: it owns the sink's queue and the retries.
type worker struct {
	name      string
	spec      sinkSpec
	sink      Sink
	q         *queue
	retry     config.NotificationRetry
	timeout   time.Duration
	minRank   int
	eachEvent bool
	logger    log.Logger

	// ctx ends when the worker is stopped (reload) or its drain deadline
	// passes; stop ends it.
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}
	once    sync.Once
}

func (d *Dispatcher) newWorker(b built, retry config.NotificationRetry) *worker {
	w := &worker{
		name:    b.spec.cfg.Name,
		spec:    b.spec,
		sink:    b.sink,
		q:       newQueue(b.spec.cfg.QueueSize),
		retry:   retry,
		timeout: b.spec.cfg.Timeout.D(),
		minRank: minRank(b.spec.cfg.MinSeverity),
		logger:  log.With(d.logger, logkeys.Sink, b.spec.cfg.Name),
		stopped: make(chan struct{}),
	}
	if ee, ok := b.sink.(eachEventSink); ok {
		w.eachEvent = ee.EachEvent()
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for _, r := range []string{resultSent, resultFailed, resultDeduplicated, resultDigested} {
		d.m.notifications.WithLabelValues(w.name, r)
	}
	d.m.dropped.WithLabelValues(w.name)
	d.m.queueLength.WithLabelValues(w.name)
	d.m.duration.WithLabelValues(w.name)
	return w
}

// accepts reports whether e is severe enough for the sink and of a kind
// it sends.
func (w *worker) accepts(e Event) bool {
	if f, ok := w.sink.(kindFilter); ok && !f.Sends(e.Kind) {
		return false
	}
	return severityRank(severityOf(e)) >= w.minRank
}

// stop ends w for good. Call with d.mu.
func (w *worker) stop() {
	w.once.Do(func() {
		close(w.stopped)
		w.cancel()
	})
}

// start runs w until it is stopped or d's workers drain. Call with d.mu.
func (d *Dispatcher) start(w *worker) {
	select {
	case <-w.stopped:
		return
	default:
	}
	if w.ctx.Err() != nil { // drained by an earlier Run
		w.ctx, w.cancel = context.WithCancel(context.Background())
	}
	wctx := d.wctx
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.runWorker(wctx, w)
	}()
}

func (d *Dispatcher) runWorker(wctx context.Context, w *worker) {
	d.mu.Lock()
	ctx, cancel := w.ctx, w.cancel
	d.mu.Unlock()
	// When the Dispatcher stops, give the queue DrainTimeout to empty.
	stopDrain := context.AfterFunc(wctx, func() {
		t := time.AfterFunc(d.drainTimeout, cancel)
		<-ctx.Done()
		t.Stop()
	})
	defer stopDrain()
	defer cancel()

	var resend <-chan time.Time
	if r, ok := w.sink.(resender); ok && r.ResendInterval() > 0 {
		t := time.NewTicker(r.ResendInterval())
		defer t.Stop()
		resend = t.C
	}
	for {
		if ctx.Err() != nil {
			select {
			case <-w.stopped: // replaced or removed: Update took the queue
			default:
				if n := len(w.q.takeAll()); n > 0 {
					d.m.dropped.WithLabelValues(w.name).Add(float64(n))
					level.Warn(w.logger).Log(logkeys.Msg, "notifications left undelivered at shutdown", logkeys.Count, n)
				}
				d.m.queueLength.WithLabelValues(w.name).Set(0)
			}
			return
		}
		if e, ok, n := w.q.pop(); ok {
			d.m.queueLength.WithLabelValues(w.name).Set(float64(n))
			d.deliver(ctx, w, e)
			continue
		}
		select {
		case <-ctx.Done():
		case <-wctx.Done():
			if w.q.len() == 0 {
				return
			}
		case <-w.q.ready:
		case <-resend:
			r := w.sink.(resender)
			rctx, rcancel := context.WithTimeout(ctx, w.timeout)
			if err := r.Resend(rctx); err != nil {
				level.Warn(w.logger).Log(logkeys.Msg, "re-posting active alerts failed", logkeys.Err, err)
			}
			rcancel()
		}
	}
}

// deliver sends e to w's sink with bounded retries and counts the outcome.
func (d *Dispatcher) deliver(wctx context.Context, w *worker, e Event) {
	attempt := 0
	var partial *partialError
	op := func() error {
		attempt++
		ctx, cancel := context.WithTimeout(wctx, w.timeout)
		defer cancel()
		start := time.Now()
		err := w.sink.Send(ctx, e)
		d.m.duration.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
		if errors.As(err, &partial) {
			return nil // delivered; the rest is logged below
		}
		partial = nil
		return err
	}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(w.retry.InitialInterval.D()),
		backoff.WithMaxInterval(w.retry.MaxInterval.D()),
		backoff.WithMaxElapsedTime(0), // bounded by attempts and the context
	)
	policy := backoff.WithContext(backoff.WithMaxRetries(b, uint64(w.retry.MaxAttempts-1)), wctx)
	err := backoff.RetryNotify(op, policy, func(err error, wait time.Duration) {
		level.Debug(w.logger).Log(logkeys.Msg, "notification failed, retrying", logkeys.Attempt, attempt,
			"retry_in", wait, logkeys.Err, err, logkeys.Service, e.Service, "kind", e.Kind)
	})
	if err != nil {
		d.m.notifications.WithLabelValues(w.name, resultFailed).Inc()
		level.Warn(w.logger).Log(logkeys.Msg, "notification not delivered", logkeys.Attempt, attempt,
			logkeys.Err, err, logkeys.Service, e.Service, "kind", e.Kind, logkeys.RequestID, e.RequestID)
		return
	}
	if partial != nil {
		level.Warn(w.logger).Log(logkeys.Msg, "notification not delivered to every destination", logkeys.Err, partial,
			logkeys.Service, e.Service, "kind", e.Kind, logkeys.RequestID, e.RequestID)
	}
	d.m.notifications.WithLabelValues(w.name, resultSent).Inc()
}

// minRank is the rank of a sink's min_severity (validated by config).
func minRank(s string) int {
	sev, _ := ParseSeverity(s)
	return severityRank(sev)
}
