// Package controller runs medic's loop: it re-reads the fleet from AWS,
// keeps the probe scheduler's targets in step with it, and hands each
// service's observations to the healer. It holds no decision logic: the
// healer's judge and guard decide; this package only gathers and wires.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/internal/logkeys"
	"github.com/medic-sre/medic/probes"
)

// Discoverer reads every service's fleet, and once per service the marks
// made before medic started. *discovery.Discoverer is one.
type Discoverer interface {
	Refresh(ctx context.Context, services []config.Service) (map[string]discovery.Snapshot, error)
	RecentHealthCheckReplacements(ctx context.Context, services []config.Service, since time.Time) (map[string][]time.Time, error)
}

// Options wire a Controller.
type Options struct {
	Config     *config.Config
	Discoverer Discoverer
	Actuator   healer.Actuator
	Notifier   alerts.Notifier // nil: events are dropped
	Logger     log.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// HealInterval is the longest the healer waits between cycles when no
	// probe result wakes it. Default 1s.
	HealInterval time.Duration
	// Preflight, when set, checks before a mark that the group can launch
	// a replacement (NewPreflightFacts). Nil: no pre-flight.
	Preflight healer.PreflightSource
	// ZonalShifter starts and cancels ARC zonal shifts for the services
	// that opt in (policy.zonal_shift); Zones reads the zone ids ARC needs.
	// Nil: zonal shifts are only reported.
	ZonalShifter healer.ZonalShifter
	Zones        ZoneLister
	// Leads reports whether this replica leads (with a lease: holds it).
	// Conditions (endpoint failing, refusals, findings) are notified only
	// while it does, so replicas do not notify them twice. Nil: always.
	Leads func() bool
}

// Controller owns the discovery loop, the probe scheduler and one heal
// loop per service that has groups.
//
// Each service heals in its own goroutine (loop), woken when the healer
// says one of its probe results may change a verdict and otherwise once
// every HealInterval (grace ending, results going stale). A slow cycle —
// a mark retried against a throttling AWS — holds up its own service only:
// no lock is held across an AWS call, and /-/ready, reload and the status
// page read state kept under c.mu, which is only ever held briefly.
type Controller struct {
	disc     Discoverer
	sched    *probes.Scheduler
	healer   *healer.Healer
	notifier alerts.Notifier
	logger   log.Logger
	now      func() time.Time
	healIvl  time.Duration

	reconfig chan struct{} // the config changed; coalesced

	// loops maps a service name to its heal loop; replaced whole (copy on
	// write) under c.mu, read without a lock by the probe workers.
	loops atomic.Pointer[map[string]*serviceLoop]

	updMu sync.Mutex // serialises updateTargets

	mu          sync.Mutex
	probing     map[string][]probes.Target // the scheduler's targets by service, as last handed over; never modified
	runCtx      context.Context            // set by Run; nil before
	stopped     bool                       // Run is returning: no new loops
	loopWG      sync.WaitGroup
	cfg         *config.Config
	snapshots   map[string]discovery.Snapshot
	fresh       map[string]time.Time // when each service's snapshot was read
	svcErr      map[string]error     // why a service got no snapshot in the last refresh
	reports     map[string]healer.Report
	lastGood    time.Time // last refresh AWS answered (possibly with some services refused)
	lastErr     error
	awsTrouble  bool            // an AWSAPITrouble event is open
	seeded      map[string]bool // services whose earlier marks were read back
	outcomes    *reporter
	zonal       *zonalShifts
	readyReason string
}

// New builds a Controller; Run starts it.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HealInterval <= 0 {
		o.HealInterval = time.Second
	}
	if o.Notifier == nil {
		o.Notifier = alerts.Discard{}
	}
	c := &Controller{
		disc:        o.Discoverer,
		notifier:    o.Notifier,
		logger:      o.Logger,
		now:         o.Now,
		healIvl:     o.HealInterval,
		reconfig:    make(chan struct{}, 1),
		cfg:         o.Config,
		snapshots:   map[string]discovery.Snapshot{},
		fresh:       map[string]time.Time{},
		svcErr:      map[string]error{},
		reports:     map[string]healer.Report{},
		seeded:      map[string]bool{},
		readyReason: "no discovery has completed yet",
	}
	c.outcomes = newReporter(o.Notifier, o.Leads, o.Registerer)
	c.sched = probes.NewScheduler(probes.Options{
		MaxConcurrent: o.Config.Global.MaxConcurrentProbes,
		Logger:        o.Logger,
		Registerer:    o.Registerer,
		OnResult:      c.observe,
		Now:           o.Now,
	})
	c.healer = healer.New(healer.Options{
		Actuator:   o.Actuator,
		Logger:     o.Logger,
		Registerer: o.Registerer,
		Now:        o.Now,
		Preflight:  o.Preflight,
	})
	c.zonal = &zonalShifts{client: o.ZonalShifter, zones: o.Zones, logger: log.With(o.Logger, logkeys.Component, "zonal"),
		healer: c.healer, notify: c.outcomes, svc: map[string]*zonalState{}, timeout: 10 * time.Second}
	c.loops.Store(&map[string]*serviceLoop{})
	c.updateTargets()
	return c
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Apply replaces the running config with cfg, which Load has validated.
// Targets follow at once; the fleet is re-read at the next refresh.
func (c *Controller) Apply(cfg *config.Config) {
	c.mu.Lock()
	c.cfg = cfg
	c.syncLoops() // a removed service stops now, its cycle in flight cancelled
	for name := range c.snapshots {
		if cfg.Service(name) == nil {
			delete(c.snapshots, name)
			delete(c.reports, name)
			delete(c.fresh, name)
			delete(c.svcErr, name)
			c.healer.Forget(name)
			c.outcomes.forget(name)
			c.zonal.forget(name)
		}
	}
	for name := range c.seeded {
		if cfg.Service(name) == nil {
			delete(c.seeded, name) // added back later, it is seeded afresh
		}
	}
	for name := range c.svcErr {
		if cfg.Service(name) == nil {
			delete(c.svcErr, name)
		}
	}
	c.mu.Unlock()
	c.updateTargets()
	poke(c.reconfig) // re-read the fleet now: groups may have changed
}

// Config returns the running config.
func (c *Controller) Config() *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// Gatherer returns the per-target probe series (the probe scheduler's
// Gather), which are not in Options.Registerer: /metrics serves the two
// merged (gather.Merge).
func (c *Controller) Gatherer() prometheus.Gatherer { return c.sched }

// Ready reports whether medic can act: a config is loaded, AWS answered
// a fleet refresh recently, and at least one service with groups (if there
// are any) has a fresh fleet view. When not, the string says why. A service
// that refuses on its own — a group not found — does not make medic
// unready while others can heal: the string is then "ok; " and names it.
func (c *Controller) Ready() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastGood.IsZero() {
		if c.lastErr != nil {
			return false, "no discovery has succeeded: " + c.lastErr.Error()
		}
		return false, c.readyReason
	}
	now := c.now()
	if age := now.Sub(c.lastGood); age > c.staleAfter() {
		msg := fmt.Sprintf("last good discovery %s ago", age.Round(time.Second))
		if c.lastErr != nil {
			msg += ": " + c.lastErr.Error()
		}
		return false, msg
	}
	var refusing []string
	grouped := 0
	for _, svc := range c.cfg.Services {
		if len(svc.AutoScalingGroups) == 0 {
			continue
		}
		grouped++
		if why := c.refusalLocked(svc, now); why != "" {
			refusing = append(refusing, svc.Name+": "+why)
		}
	}
	switch {
	case len(refusing) == 0:
		return true, "ok"
	case len(refusing) == grouped:
		return false, "every service refuses: " + strings.Join(refusing, "; ")
	}
	return true, "ok; refusing: " + strings.Join(refusing, "; ")
}

// refusalLocked says why svc's fleet view cannot be acted on now, or "":
// its groups were not all found, it was never read, or its view is stale.
// Callers hold c.mu.
func (c *Controller) refusalLocked(svc config.Service, now time.Time) string {
	if err := c.svcErr[svc.Name]; err != nil {
		var se *discovery.ServiceError
		if errors.As(err, &se) && errors.Is(err, discovery.ErrGroupNotFound) {
			return "group " + se.Group + " not found"
		}
		return err.Error()
	}
	at, ok := c.fresh[svc.Name]
	if !ok {
		return "its fleet has not been read yet"
	}
	if age := now.Sub(at); age > c.staleAfter() {
		return fmt.Sprintf("its fleet was last read %s ago", age.Round(time.Second))
	}
	return ""
}

// staleAfter is how old a fleet snapshot may be before medic stops acting
// on it: three refreshes missed. Callers hold c.mu.
func (c *Controller) staleAfter() time.Duration {
	return 3 * c.cfg.Global.DiscoveryInterval.D()
}

// Run runs the loops until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = c.sched.Run(ctx) }()
	go func() { defer wg.Done(); c.discoveryLoop(ctx) }()
	c.mu.Lock()
	c.runCtx = ctx
	c.syncLoops()
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	wg.Wait()
	c.loopWG.Wait()
	return nil
}

func (c *Controller) discoveryLoop(ctx context.Context) {
	for {
		c.refresh(ctx)
		t := time.NewTimer(c.Config().Global.DiscoveryInterval.D())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.reconfig:
			t.Stop()
		}
	}
}

// refresh re-reads the fleet. A refresh AWS did not answer keeps every
// snapshot, which goes stale and stops that service's actions once older
// than staleAfter. A refresh that refused some services (a group not found,
// *discovery.ServiceError) updates the others: only the refused ones stop.
func (c *Controller) refresh(ctx context.Context) {
	cfg := c.Config()
	rid := newRequestID()
	logger := log.With(c.logger, logkeys.Component, "discovery", logkeys.RequestID, rid)
	snaps, err := c.disc.Refresh(ctx, cfg.Services)
	if ctx.Err() != nil {
		return
	}
	refused := serviceErrors(err)
	answered := err == nil || snaps != nil || len(refused) > 0
	c.seed(ctx, logger, cfg, snaps)
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	now := c.now()
	changed := false // the instances to probe changed
	if answered {
		for _, svc := range cfg.Services {
			if c.cfg.Service(svc.Name) == nil {
				continue // removed by a reload meanwhile
			}
			if s, ok := snaps[svc.Name]; ok {
				changed = changed || !sameProbed(c.snapshots[svc.Name], s)
				c.snapshots[svc.Name] = s
				c.fresh[svc.Name] = now
			}
			if e := refused[svc.Name]; e != nil {
				c.svcErr[svc.Name] = e
			} else {
				delete(c.svcErr, svc.Name)
			}
		}
	}
	wasErr := c.lastErr
	c.lastErr = err
	if answered {
		c.lastGood = now
	}
	// Trouble worth telling people about starts when the fleet view goes
	// stale (medic stops acting) and ends when AWS answers again. A service
	// refused on its own is that service's refusal, not AWS trouble.
	failed := !answered
	stale := failed && (c.lastGood.IsZero() || now.Sub(c.lastGood) > c.staleAfter())
	startTrouble, endTrouble := stale && !c.awsTrouble, !failed && c.awsTrouble
	c.awsTrouble = stale || (c.awsTrouble && failed)
	lastGood := c.lastGood
	c.mu.Unlock()
	switch {
	case failed:
		level.Warn(logger).Log(logkeys.Msg, "fleet refresh failed; keeping the last fleet, no actions once it is stale", logkeys.Err, err)
	case err != nil:
		level.Warn(logger).Log(logkeys.Msg, "fleet refresh refused some services; they stop acting, the others go on", logkeys.Err, err)
	case wasErr != nil:
		level.Info(logger).Log(logkeys.Msg, "fleet refresh recovered")
	}
	if startTrouble || endTrouble {
		c.notifier.Notify(awsTroubleEvent(endTrouble, err, lastGood, now, rid))
	}
	if changed { // else the scheduler has these targets already: no O(targets) rebuild
		c.updateTargets()
	}
	c.wakeAll()
}

// sameProbed reports whether two snapshots of a service give the same
// instance targets (targets reads only these fields).
func sameProbed(a, b discovery.Snapshot) bool {
	if len(a.Instances) != len(b.Instances) {
		return false
	}
	for i := range a.Instances {
		x, y := &a.Instances[i], &b.Instances[i]
		if x.ID != y.ID || x.PrivateIP != y.PrivateIP || x.LifecycleState != y.LifecycleState || x.AZ != y.AZ {
			return false
		}
	}
	return true
}

// serviceErrors picks the *discovery.ServiceError values out of a refresh's
// error (one, or several joined), by service; several for one service are
// joined.
func serviceErrors(err error) map[string]error {
	if err == nil {
		return nil
	}
	var out map[string]error
	var walk func(error)
	walk = func(e error) {
		if se, ok := e.(*discovery.ServiceError); ok {
			if out == nil {
				out = map[string]error{}
			}
			out[se.Service] = errors.Join(out[se.Service], se)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if x := errors.Unwrap(e); x != nil {
			walk(x)
		}
	}
	walk(err)
	return out
}

// seed hands the healer, once per service, the marks of the last
// healer.RateWindow read back from its groups' scaling activities, so that
// a restart (a crash, a deploy, a new leader) does not start from an empty
// rate-limit budget. It runs for the services this refresh read for the
// first time — at start, or added by a reload — before their snapshots are
// published, hence before their first heal cycle; later refreshes make no
// call.
//
// A failure is logged and not retried: the service heals with what was
// read, its budget possibly larger than it should be for up to an hour.
// (A retry after the healer has marked could count its own marks twice:
// the group's activity starts seconds after the mark.)
func (c *Controller) seed(ctx context.Context, logger log.Logger, cfg *config.Config, snaps map[string]discovery.Snapshot) {
	c.mu.Lock()
	var todo []config.Service
	for _, svc := range cfg.Services {
		if _, read := snaps[svc.Name]; read && len(svc.AutoScalingGroups) > 0 && !c.seeded[svc.Name] {
			todo = append(todo, svc)
		}
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	since := c.now().Add(-healer.RateWindow)
	marks, err := c.disc.RecentHealthCheckReplacements(ctx, todo, since)
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	n := 0
	for _, svc := range todo {
		if c.cfg.Service(svc.Name) == nil {
			continue // removed by a reload meanwhile
		}
		c.healer.Seed(svc.Name, marks[svc.Name])
		c.seeded[svc.Name] = true
		n += len(marks[svc.Name])
	}
	c.mu.Unlock()
	if err != nil {
		level.Warn(logger).Log(logkeys.Msg, "cannot read all earlier marks back from the groups' scaling activities; "+
			"going on with what was read: the rate-limit budget may be larger than it should be for up to an hour",
			logkeys.Err, err, logkeys.Count, n)
		return
	}
	level.Info(logger).Log(logkeys.Msg, "rate-limit budget seeded from the groups' scaling activities of the last hour",
		logkeys.Count, n)
}

// awsTroubleEvent says that medic cannot read the fleet from AWS (and so
// has stopped acting), or that it can again.
func awsTroubleEvent(resolved bool, err error, lastGood, now time.Time, rid string) alerts.Event {
	e := alerts.Event{Kind: alerts.AWSAPITrouble, Severity: alerts.Warning, Time: now, Subject: "discovery",
		RequestID: rid, Resolved: resolved}
	if resolved {
		e.Severity = alerts.Info
		e.Summary = "medic reads the fleet from AWS again and acts again."
		e.Action = "resumed healing"
		return e
	}
	since := "it never has since it started"
	if !lastGood.IsZero() {
		since = "the last good read was " + now.Sub(lastGood).Round(time.Second).String() + " ago"
	}
	e.Summary = "medic cannot read the fleet from AWS: " + since + "."
	e.Evidence = []string{"last error: " + errString(err)}
	e.Action = "stopped marking instances until it can read the fleet again; probing and reporting go on"
	e.State = "healing paused"
	return e
}

// targets lists what the scheduler should probe now: each service's
// endpoint, its static targets, and every InService instance with a
// private IP inside allowed_networks.
func (c *Controller) targets() []probes.Target {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, svc := range c.cfg.Services {
		n += 1 + len(svc.StaticTargets) + len(c.snapshots[svc.Name].Instances)
	}
	ts := make([]probes.Target, 0, n)
	allowed := c.cfg.Global.AllowedNetworks
	for i := range c.cfg.Services {
		svc := &c.cfg.Services[i] // its probe settings are shared by its targets
		if svc.Endpoint != "" {
			ts = append(ts, probes.Target{
				Key: endpointKey(svc.Name), Service: svc.Name, Address: svc.Endpoint,
				Settings: &svc.EndpointProbe, Allowed: allowed,
			})
		}
		for _, st := range svc.StaticTargets {
			ts = append(ts, probes.Target{
				Key: svc.Name + "/static/" + st, Service: svc.Name, Address: st,
				Settings: &svc.InstanceProbe, Allowed: allowed,
			})
		}
		snap, ok := c.snapshots[svc.Name]
		if !ok {
			continue
		}
		for _, in := range snap.Instances {
			if in.LifecycleState != "InService" || !in.PrivateIP.IsValid() {
				continue
			}
			// An instance outside allowed_networks is never probed (a probe
			// would fail and the instance would look bad): it stays unknown.
			if !c.cfg.Global.Allows(in.PrivateIP) {
				level.Debug(c.logger).Log(logkeys.Msg, "instance IP outside allowed_networks; not probing it",
					logkeys.Service, svc.Name, logkeys.InstanceID, in.ID, logkeys.AZ, in.AZ, "ip", in.PrivateIP)
				continue
			}
			ts = append(ts, probes.Target{
				Key: instanceKey(svc.Name, in.ID), Service: svc.Name, InstanceID: in.ID, AZ: in.AZ,
				Address:  netip.AddrPortFrom(in.PrivateIP, uint16(svc.InstanceProbe.Port)).String(),
				Settings: &svc.InstanceProbe, Allowed: allowed,
			})
		}
	}
	return ts
}

// updateTargets hands the scheduler the targets of the config and fleet
// as they are now, and keeps the list for the status page.
func (c *Controller) updateTargets() {
	c.updMu.Lock()
	defer c.updMu.Unlock()
	ts := c.targets()
	by := byService(ts)
	c.mu.Lock()
	c.probing = by
	c.mu.Unlock()
	c.sched.Update(ts)
}

// byService cuts ts, which lists each service's targets together, into
// one sub-slice per service (no copy), so that a status page is not a
// regrouping of every target.
func byService(ts []probes.Target) map[string][]probes.Target {
	by := map[string][]probes.Target{}
	for i := 0; i < len(ts); {
		j := i + 1
		for j < len(ts) && ts[j].Service == ts[i].Service {
			j++
		}
		by[ts[i].Service] = ts[i:j:j]
		i = j
	}
	return by
}

func endpointKey(service string) string     { return service + "/endpoint" }
func instanceKey(service, id string) string { return service + "/" + id }

// endpointState says whether the service endpoint passes: it fails when its
// latest probe failed.
func endpointState(svc config.Service, h []probes.Result) healer.EndpointState {
	if svc.Endpoint == "" {
		return healer.EndpointState{}
	}
	st := healer.EndpointState{Configured: true, Healthy: true}
	if len(h) == 0 {
		st.Reason = "not probed yet"
		return st
	}
	last := h[len(h)-1]
	st.Healthy = last.Success
	st.Reason = last.Reason
	return st
}

// Status is what the status page shows of one service.
type Status struct {
	Service  config.Service
	Snapshot discovery.Snapshot
	Report   healer.Report
	// Probes holds each target's History by key when Results is nil (a
	// Status built by hand); Statuses leaves it nil and sets Results, so a
	// page reads only the histories it shows. Read through History and
	// Last, which pick the one that is set.
	Probes  map[string][]probes.Result
	Results ProbeResults
	Targets []probes.Target
	// Zonal is the service's last zonal shift decision (zero before one).
	Zonal healer.ZonalDecision
	// Events are the service's last events, newest first: every event the
	// reporter made of its heal reports, including those no sink is told
	// about (see reporter.record).
	Events []alerts.Event
}

// ProbeResults reads targets' recent probe results on demand, by key:
// *probes.Scheduler.
type ProbeResults interface {
	History(key string) []probes.Result
	Last(key string) (probes.Result, bool)
}

// History is the target's recent probe results, oldest first (nil when
// none).
func (st *Status) History(key string) []probes.Result {
	if st.Results != nil {
		return st.Results.History(key)
	}
	return st.Probes[key]
}

// Last is the target's latest probe result; false when it has none.
func (st *Status) Last(key string) (probes.Result, bool) {
	if st.Results != nil {
		return st.Results.Last(key)
	}
	h := st.Probes[key]
	if len(h) == 0 {
		return probes.Result{}, false
	}
	return h[len(h)-1], true
}

// Statuses returns every configured service's status, sorted by name.
// Probe results are not copied: each Status reads them from the scheduler
// as the page needs them (Results), so a page of a few rows costs a few
// histories, not one per target.
func (c *Controller) Statuses() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.cfg.Services))
	for _, svc := range c.cfg.Services {
		st := Status{Service: svc, Snapshot: c.snapshots[svc.Name], Report: c.reports[svc.Name],
			Targets: c.probing[svc.Name], Results: c.sched, Zonal: c.zonal.decision(svc.Name)}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service.Name < out[j].Service.Name })
	for i := range out { // the reporter's lock is taken under c.mu, never the other way
		out[i].Events = c.outcomes.events(out[i].Service.Name)
	}
	return out
}

// newRequestID returns a short random id tying together the log lines of
// one cycle or action.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
