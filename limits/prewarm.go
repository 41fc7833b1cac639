package limits

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// surgeQueueMax is a Classic load balancer's surge queue capacity; a queue
// at surgeNear of it is about to spill.
const (
	surgeQueueMax = 1024
	surgeNear     = 0.8
)

// PrewarmStatus is one load balancer's pre-warm assessment.
type PrewarmStatus struct {
	Name, Type string
	// Needed is true when pre-warm (or, for Classic, AWS's help) is needed
	// now or for the coming event; Reasons say why.
	Needed  bool
	Reasons []string
	// DataKnown is false when no CloudWatch data was read.
	DataKnown bool
	Ramp      Ramp
	// Signs of a load balancer out of capacity in the last hour.
	Rejected, ELB5XX, SurgeQueueMax, Spillover float64
	PeakLCU                                    float64 // ALB/NLB PeakLCUs in the last hour
	// Event is the next scheduled event not yet over ("" for none).
	Event      string
	EventStart time.Time
	Phase      EventPhase
	// Basis of the forecast: last_week, recent_hour or none.
	Basis    string
	Baseline LCUDims
	Forecast LCUDims
	// Sizing is the recommended reservation with its arithmetic.
	Sizing      LCUSizing
	Recommended int
	// Requested is the reservation asked for (Describe), in any state;
	// Applied is the part in place: Requested once provisioned, 0 while
	// pending, rebalancing or failed.
	Requested, Applied int
	AppliedKnown       bool
	// ReservationState is the worst zonal state (provisioned, pending,
	// rebalancing, failed, none) and ReservationReason AWS's reason.
	ReservationState, ReservationReason string
	DecreasesLeft                       int
	// Refused says why no reservation is made at all (a TLS NLB).
	Refused string
	// Step is what medic did (or would do under dry-run) this refresh.
	Step     ReservationStep
	StepErr  string
	StepDone bool
}

// lbMemory is what medic remembers of its own reservations (in memory:
// after a restart medic leaves reservations it cannot tell it made).
type lbMemory struct {
	setUnits  int
	decreases []time.Time
	// failures counts medic's requests that failed in a row.
	failures int
	// awaiting: medic made a request whose outcome (provisioned or
	// failed) it has not seen yet. A failed state counts as a new failure
	// only then, so a failure seen again is not counted twice, and one
	// that AWS reports at once (no pending seen) is still counted.
	awaiting bool
	// pendingSince is when the reservation was first seen pending.
	pendingSince time.Time
}

type lbMetric struct {
	name, stat string
	period     int32 // seconds; 300 unless said
}

// PeakLCUs is read as per-minute sums, the busiest minute deciding: AWS's
// page "Monitor Load Balancer Capacity Unit reservation" compares "the
// per-minute Sum of PeakLCUs" with the reservation (a 5-minute Maximum
// would see one data point, not the load balancer's total).
func lbMetrics(t string) (ns string, ms []lbMetric) {
	switch t {
	case "application":
		return "AWS/ApplicationELB", []lbMetric{{"RequestCount", "Sum", 0}, {"NewConnectionCount", "Sum", 0}, {"ActiveConnectionCount", "Sum", 0},
			{"ProcessedBytes", "Sum", 0}, {"RuleEvaluations", "Sum", 0}, {"PeakLCUs", "Sum", 60}, {"RejectedConnectionCount", "Sum", 0}, {"HTTPCode_ELB_5XX_Count", "Sum", 0}}
	case "network":
		// ProcessedBytes per minute: AWS sizes NLB reservations on the
		// busiest minute's throughput.
		return "AWS/NetworkELB", []lbMetric{{"NewFlowCount", "Sum", 0}, {"ActiveFlowCount", "Maximum", 0}, {"ProcessedBytes", "Sum", 60}, {"PeakLCUs", "Sum", 60}}
	}
	return "AWS/ELB", []lbMetric{{"RequestCount", "Sum", 0}, {"SurgeQueueLength", "Maximum", 0}, {"SpilloverCount", "Sum", 0}}
}

// rampMetric is the count a ramp is detected on.
func rampMetric(t string) string {
	if t == "network" {
		return "NewFlowCount"
	}
	return "RequestCount"
}

// Dimension is the CloudWatch LoadBalancer dimension: "app/name/id" from
// an ALB/NLB ARN, the name for Classic.
func Dimension(lb config.PrewarmLoadBalancer) (name, value string) {
	if lb.Type == "classic" {
		return "LoadBalancerName", lb.Name
	}
	if i := strings.Index(lb.ARN, ":loadbalancer/"); i >= 0 {
		return "LoadBalancer", lb.ARN[i+len(":loadbalancer/"):]
	}
	return "LoadBalancer", lb.ARN
}

func lbQueries(lbs []config.PrewarmLoadBalancer, prefix string) ([]cwtypes.MetricDataQuery, map[string][2]string) {
	var qs []cwtypes.MetricDataQuery
	ids := map[string][2]string{}
	for i, lb := range lbs {
		ns, ms := lbMetrics(lb.Type)
		dn, dv := Dimension(lb)
		for j, m := range ms {
			id := fmt.Sprintf("%s%d_%d", prefix, i, j)
			ids[id] = [2]string{lb.Name, m.name}
			qs = append(qs, cwtypes.MetricDataQuery{Id: aws.String(id), MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(ns), MetricName: aws.String(m.name),
					Dimensions: []cwtypes.Dimension{{Name: aws.String(dn), Value: aws.String(dv)}}},
				Period: aws.Int32(m.periodOr300()), Stat: aws.String(m.stat)}})
		}
	}
	return qs, ids
}

// series is the 5-minute buckets of each metric of each load balancer.
type series map[string]map[string][]Bucket

func (w *Watcher) readLBMetrics(ctx context.Context, lbs []config.PrewarmLoadBalancer, start, end time.Time) (series, error) {
	qs, ids := lbQueries(lbs, "m")
	pts, err := w.getMetricData(ctx, qs, start, end)
	if err != nil {
		return nil, err
	}
	out := series{}
	for id, ps := range pts {
		k := ids[id]
		if out[k[0]] == nil {
			out[k[0]] = map[string][]Bucket{}
		}
		for _, p := range ps {
			out[k[0]][k[1]] = append(out[k[0]][k[1]], Bucket(p))
		}
	}
	return out, nil
}

func peak(b []Bucket) (float64, bool) {
	m, ok := 0.0, false
	for _, x := range b {
		if !ok || x.V > m {
			m, ok = x.V, true
		}
	}
	return m, ok
}

func sum(b []Bucket) float64 {
	s := 0.0
	for _, x := range b {
		s += x.V
	}
	return s
}

// PeakDims turns 5-minute buckets into the LCU dimensions at their peak:
// the busiest bucket of each dimension, as a rate.
func PeakDims(lbType string, m map[string][]Bucket) (LCUDims, bool) {
	var d LCUDims
	any := false
	rate := func(name string, per float64) float64 {
		v, ok := peak(m[name])
		any = any || ok
		return v / per
	}
	d.PeakLCU = rate("PeakLCUs", 1)
	if lbType == "network" {
		d.Mbps = rate("ProcessedBytes", 1) * 8 / 60 / 1e6 // the busiest minute's bytes
		return d, any
	}
	d.NewConnPerSec = rate("NewConnectionCount", 300)
	d.ActiveConn = rate("ActiveConnectionCount", 5) // a 5-minute sum → per minute
	d.BytesPerHour = rate("ProcessedBytes", 1) * 12
	d.RuleEvalsPerSec = billedRuleEvals(m["RuleEvaluations"], m["RequestCount"]) / 300
	return d, any
}

// billedRuleEvals is the largest 5-minute count of rule evaluations
// beyond the 10 free per request: RuleEvaluations − 10 × RequestCount of
// the same bucket, at least 0.
func billedRuleEvals(evals, reqs []Bucket) float64 {
	byT := map[int64]float64{}
	for _, r := range reqs {
		byT[r.T.UnixNano()] = r.V
	}
	var most float64
	for _, e := range evals {
		most = math.Max(most, e.V-albFreeRuleEvals*byT[e.T.UnixNano()])
	}
	return most
}

// nextEvent is the earliest event for lb that is not over at now.
func nextEvent(evs []config.ScheduledEvent, lb string, lead time.Duration, now time.Time) (config.ScheduledEvent, EventPhase, bool) {
	var best config.ScheduledEvent
	found := false
	for _, e := range evs {
		if len(e.LoadBalancers) > 0 && !contains(e.LoadBalancers, lb) {
			continue
		}
		if PhaseOf(e.Start.Time, e.Duration.D(), lead, now) == PhaseAfter {
			continue
		}
		if !found || e.Start.Before(best.Start.Time) {
			best, found = e, true
		}
	}
	if !found {
		return best, PhaseAfter, false
	}
	return best, PhaseOf(best.Start.Time, best.Duration.D(), lead, now), true
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// weekBack shifts [a, b) back by whole weeks until it ends at or before
// now: the same time of week in the latest past week.
func weekBack(a, b, now time.Time) (time.Time, time.Time) {
	week := 7 * 24 * time.Hour
	k := time.Duration(1)
	if b.After(now) {
		k = (b.Sub(now) + week - 1) / week
		if k < 1 {
			k = 1
		}
	}
	return a.Add(-k * week), b.Add(-k * week)
}

// prewarm assesses every configured load balancer and, with apply, moves
// capacity reservations ahead of events and back after them.
func (w *Watcher) prewarm(ctx context.Context, cfg config.Limits, g *gathered, now time.Time) []PrewarmStatus {
	pw := cfg.Prewarm
	if len(pw.LoadBalancers) == 0 {
		return nil
	}
	timed := func(name string, f func() error) {
		start := time.Now()
		err := f()
		st := SourceStatus{Name: name, OK: true, Duration: time.Since(start)}
		if err != nil {
			st = failed(name, err, st.Duration)
		}
		g.set(func() { g.sources = append(g.sources, st) })
	}
	var recent series
	timed("cloudwatch_elb", func() (err error) {
		recent, err = w.readLBMetrics(ctx, pw.LoadBalancers, now.Add(-time.Hour), now)
		return err
	})
	// Baselines: the same time last week for the coming window, and for
	// each LB's next event.
	type win struct{ a, b time.Time }
	wins := map[win]series{}
	winOf := map[string]win{}
	for _, lb := range pw.LoadBalancers {
		a, b := now, now.Add(pw.Window.D())
		if ev, _, ok := nextEvent(pw.Events, lb.Name, pw.LeadTime.D(), now); ok {
			a, b = ev.Start.Time, ev.Start.Add(ev.Duration.D())
		}
		a, b = weekBack(a, b, now)
		wins[win{a, b}] = nil
		winOf[lb.Name] = win{a, b}
	}
	keys := make([]win, 0, len(wins))
	for k := range wins {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].a.Before(keys[j].a) })
	timed("cloudwatch_elb_last_week", func() error {
		for _, k := range keys {
			s, err := w.readLBMetrics(ctx, pw.LoadBalancers, k.a, k.b)
			if err != nil {
				return err
			}
			wins[k] = s
		}
		return nil
	})

	out := make([]PrewarmStatus, 0, len(pw.LoadBalancers))
	var resErr []string
	for _, lb := range pw.LoadBalancers {
		st := assessLB(pw, lb, recent[lb.Name], wins[winOf[lb.Name]][lb.Name], now)
		if lb.Type != "classic" {
			if err := w.reserve(ctx, pw, lb, &st, now, regionLCUQuota(g, lb.Type)); err != nil {
				resErr = append(resErr, err.Error())
			}
		}
		w.notifyPrewarm(lb, st, now)
		out = append(out, st)
	}
	if hasReservations(pw.LoadBalancers) {
		st := SourceStatus{Name: "elbv2_capacity_reservation", OK: len(resErr) == 0}
		if len(resErr) > 0 {
			st.Err = strings.Join(resErr, "; ")
		}
		g.set(func() { g.sources = append(g.sources, st) })
	}
	return out
}

func hasReservations(lbs []config.PrewarmLoadBalancer) bool {
	for _, lb := range lbs {
		if lb.Type != "classic" {
			return true
		}
	}
	return false
}

// assessLB is the pure part of pre-warm: from the last hour's buckets, last
// week's buckets for the coming window and the schedule, decide the need
// and size the reservation.
func assessLB(pw config.Prewarm, lb config.PrewarmLoadBalancer, recent, lastWeek map[string][]Bucket, now time.Time) PrewarmStatus {
	st := PrewarmStatus{Name: lb.Name, Type: lb.Type, Phase: PhaseAfter}
	for _, b := range recent {
		if len(b) > 0 {
			st.DataKnown = true
		}
	}
	st.Ramp = DetectRamp(recent[rampMetric(lb.Type)], pw.MaxRamp, pw.RampMinCount)
	if st.Ramp.Detected {
		st.Needed = true
		st.Reasons = append(st.Reasons, "traffic ramp faster than the load balancer scales: "+st.Ramp.Why)
	}
	st.Rejected = sum(recent["RejectedConnectionCount"])
	st.ELB5XX = sum(recent["HTTPCode_ELB_5XX_Count"])
	st.Spillover = sum(recent["SpilloverCount"])
	st.SurgeQueueMax, _ = peak(recent["SurgeQueueLength"])
	st.PeakLCU, _ = peak(recent["PeakLCUs"])
	if st.Rejected > 0 {
		st.Needed = true
		st.Reasons = append(st.Reasons, fmt.Sprintf("%g connections rejected in the last hour (RejectedConnectionCount)", st.Rejected))
	}
	if st.SurgeQueueMax >= surgeNear*surgeQueueMax {
		st.Needed = true
		st.Reasons = append(st.Reasons, fmt.Sprintf("surge queue reached %g of %d", st.SurgeQueueMax, surgeQueueMax))
	}
	if st.Spillover > 0 {
		st.Needed = true
		st.Reasons = append(st.Reasons, fmt.Sprintf("%g requests spilled over (SpilloverCount) in the last hour", st.Spillover))
	}
	if st.ELB5XX > 0 && st.Needed {
		st.Reasons = append(st.Reasons, fmt.Sprintf("%g load-balancer 5XX responses in the last hour", st.ELB5XX))
	}
	// Forecast: last week's peak for the window, else the last hour's.
	base, ok := PeakDims(lb.Type, lastWeek)
	st.Basis = "last_week"
	if !ok {
		base, ok = PeakDims(lb.Type, recent)
		st.Basis = "recent_hour"
	}
	if !ok {
		st.Basis = "none"
	}
	st.Baseline = base
	mult := 1.0
	if ev, ph, found := nextEvent(pw.Events, lb.Name, pw.LeadTime.D(), now); found {
		st.Event, st.EventStart, st.Phase = ev.Name, ev.Start.Time, ph
		mult = ev.Multiplier
		if ev.Multiplier > pw.MaxRamp {
			st.Needed = true
			st.Reasons = append(st.Reasons, fmt.Sprintf("scheduled event %q at %s expects ×%g traffic, more than the ×%g a load balancer absorbs in 5 minutes",
				ev.Name, ev.Start.UTC().Format(time.RFC3339), ev.Multiplier, pw.MaxRamp))
		}
	}
	st.Forecast = base.Scale(mult)
	if lb.Type != "classic" && ok {
		st.Sizing = SizeLCU(lb.Type, st.Forecast, pw.Headroom, lb.MaxCapacityUnits)
		st.Sizing.Steps = append([]string{fmt.Sprintf("forecast = %s peak × %g", st.Basis, mult)}, st.Sizing.Steps...)
		if st.Needed {
			st.Recommended = st.Sizing.Units
		}
	}
	if lb.Type == "classic" && st.Needed {
		st.Reasons = append(st.Reasons, "Classic load balancers have no capacity reservation; pre-warming them goes through AWS Support")
	}
	return st
}

// reserve reads the reservation and, with apply, moves it: up to the
// recommendation from the lead time until the event ends, back (reset)
// after it — within the ceiling, AWS's rules (PlanReservation) and the
// daily decrease limit. A change is read back once; its state is followed
// at each refresh (pending → provisioned or failed), never waited on.
func (w *Watcher) reserve(ctx context.Context, pw config.Prewarm, lb config.PrewarmLoadBalancer, st *PrewarmStatus, now time.Time, quota ReservationRules) error {
	if lb.Type == "network" {
		tls, err := w.tlsListener(ctx, lb.ARN)
		if err != nil {
			_, st.StepErr = Describe(err)
			return fmt.Errorf("load balancer %s: %w", lb.Name, err)
		}
		if tls != "" {
			st.Refused = fmt.Sprintf("AWS does not support LCU reservations on Network Load Balancers with TLS listeners (%s): no reservation is made", tls)
			st.Recommended = 0
		}
	}
	cur, err := w.describeReservation(ctx, lb.ARN)
	if err != nil {
		_, st.StepErr = Describe(err)
		return fmt.Errorf("load balancer %s: %w", lb.Name, err)
	}
	mem := w.lbState[lb.Name]
	if mem == nil {
		mem = &lbMemory{}
		w.lbState[lb.Name] = mem
	}
	w.track(mem, cur, now)
	st.setReservation(cur)
	if !pw.Apply || lb.MaxCapacityUnits <= 0 || st.Refused != "" {
		why := "apply is off: recommendation only"
		if st.Refused != "" {
			why = st.Refused
		}
		st.Step = ReservationStep{Op: "none", Units: cur.units, Why: why}
		return nil
	}
	var recent []time.Time
	for _, t := range mem.decreases {
		if now.Sub(t) < 24*time.Hour {
			recent = append(recent, t)
		}
	}
	mem.decreases = recent
	left := pw.MaxDecreasesPerDay - len(recent)
	if cur.decreasesKnown && cur.decreasesLeft < left {
		left = cur.decreasesLeft
	}
	want := 0
	if st.Needed && st.Event != "" && (st.Phase == PhaseLead || st.Phase == PhaseDuring) {
		want = min(st.Recommended, lb.MaxCapacityUnits)
	}
	if want == 0 && cur.units == 0 {
		mem.setUnits = 0
	}
	pendingFor := time.Duration(0)
	if !mem.pendingSince.IsZero() {
		pendingFor = now.Sub(mem.pendingSince)
	}
	st.Step = PlanReservation(want, ReservationNow{Units: cur.units, State: cur.state, Reason: cur.reason, PendingFor: pendingFor,
		Failures: mem.failures, MedicSet: mem.setUnits > 0 && mem.setUnits == cur.units},
		ReservationRules{DecreasesLeft: left, MaxRetries: pw.MaxRetries, ProvisionTimeout: pw.ProvisionTimeout.D(),
			RegionQuota: quota.RegionQuota, RegionQuotaKnown: quota.RegionQuotaKnown, RegionQuotaName: quota.RegionQuotaName})
	if st.Step.Op == "none" {
		return nil
	}
	in := &elbv2.ModifyCapacityReservationInput{LoadBalancerArn: aws.String(lb.ARN)}
	if st.Step.Op == "reset" {
		in.ResetCapacityReservation = aws.Bool(true)
	} else {
		in.MinimumLoadBalancerCapacity = &elbtypes.MinimumLoadBalancerCapacity{CapacityUnits: aws.Int32(int32(st.Step.Units))}
	}
	err = w.call.do(ctx, "elbv2:ModifyCapacityReservation", func(ctx context.Context) error {
		_, err := w.c.reservation.ModifyCapacityReservation(ctx, in)
		return err
	})
	if err != nil {
		_, st.StepErr = Describe(err)
		level.Warn(w.logger).Log(logkeys.Msg, "capacity reservation change failed", logkeys.LoadBalancer, lb.Name, logkeys.Operation, st.Step.Op, logkeys.Err, st.StepErr)
		return fmt.Errorf("load balancer %s: %w", lb.Name, err)
	}
	if st.Step.Op == "reset" || st.Step.Op == "decrease" {
		mem.decreases = append(mem.decreases, now)
	}
	mem.setUnits = st.Step.Units
	st.StepDone = true
	level.Info(w.logger).Log(logkeys.Msg, "capacity reservation changed", logkeys.LoadBalancer, lb.Name, logkeys.Operation, st.Step.Op,
		logkeys.Count, st.Step.Units, logkeys.DryRun, w.dryRun)
	// Read back once: the state is followed at the next refreshes. A
	// failed state read at once may still be the previous request's: the
	// outcome of this one is counted from the next refresh on.
	mem.pendingSince, mem.awaiting = time.Time{}, false
	if c, err := w.describeReservation(ctx, lb.ARN); err == nil {
		if c.state != "failed" {
			w.track(mem, c, now)
		}
		st.setReservation(c)
	}
	mem.awaiting = true
	return nil
}

// reservedLCUQuotas are AWS's quotas on reserved LCUs per Region, by load
// balancer type. The ALB code is on AWS's page "Quotas for your
// Application Load Balancers"; the NLB code comes from public listings
// only (unverified: if wrong, the quota is simply unknown and not checked).
var reservedLCUQuotas = map[string][2]string{
	"application": {"elasticloadbalancing/L-8A66D0E6", "Reserved Application Load Balancer Capacity Units (LCU) per Region"},
	"network":     {"elasticloadbalancing/L-723DCCB6", "Reserved Network Load Balancer Capacity Units (LCU) per Region"},
}

// regionLCUQuota reads the Region's reserved-LCU quota for lbType from
// what Service Quotas said this refresh (applied value, else AWS's
// default); unknown when it said nothing.
func regionLCUQuota(g *gathered, lbType string) ReservationRules {
	q, ok := reservedLCUQuotas[lbType]
	if !ok {
		return ReservationRules{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	v, found := g.sqApplied[q[0]]
	if !found {
		v, found = g.sqDefault[q[0]]
	}
	return ReservationRules{RegionQuota: int(v), RegionQuotaKnown: found, RegionQuotaName: q[1]}
}

// track follows a reservation's state in medic's memory: when it became
// pending, and how many of medic's requests failed in a row.
func (w *Watcher) track(mem *lbMemory, cur reservation, now time.Time) {
	switch cur.state {
	case "pending", "rebalancing":
		if mem.pendingSince.IsZero() {
			mem.pendingSince = now
		}
	case "failed":
		if mem.awaiting || mem.failures == 0 {
			mem.failures++
		}
		mem.awaiting = false
		mem.pendingSince = time.Time{}
	default:
		mem.pendingSince = time.Time{}
		mem.failures = 0
		mem.awaiting = false
	}
}

// setReservation records what DescribeCapacityReservation says: only a
// provisioned reservation counts as applied.
func (st *PrewarmStatus) setReservation(cur reservation) {
	st.Requested, st.AppliedKnown, st.ReservationState, st.ReservationReason, st.DecreasesLeft = cur.units, true, cur.state, cur.reason, cur.decreasesLeft
	st.Applied = 0
	if cur.state == "provisioned" || cur.state == "none" {
		st.Applied = cur.units
	}
}

// tlsListener names a TLS listener of the load balancer ("" for none).
func (w *Watcher) tlsListener(ctx context.Context, arn string) (string, error) {
	found := ""
	p := elbv2.NewDescribeListenersPaginator(w.c.elbv2, &elbv2.DescribeListenersInput{LoadBalancerArn: aws.String(arn)})
	err := eachPage(ctx, w.call, "elbv2:DescribeListeners", p.HasMorePages,
		func(ctx context.Context) (*elbv2.DescribeListenersOutput, error) { return p.NextPage(ctx) },
		func(out *elbv2.DescribeListenersOutput) {
			for _, l := range out.Listeners {
				if l.Protocol == elbtypes.ProtocolEnumTls && found == "" {
					found = fmt.Sprintf("TLS listener on port %d", aws.ToInt32(l.Port))
				}
			}
		})
	return found, err
}

type reservation struct {
	units          int
	state          string // provisioned, pending, rebalancing, failed, none
	reason         string
	decreasesLeft  int
	decreasesKnown bool
}

func (w *Watcher) describeReservation(ctx context.Context, arn string) (reservation, error) {
	var out *elbv2.DescribeCapacityReservationOutput
	err := w.call.do(ctx, "elbv2:DescribeCapacityReservation", func(ctx context.Context) (err error) {
		out, err = w.c.reservation.DescribeCapacityReservation(ctx, &elbv2.DescribeCapacityReservationInput{LoadBalancerArn: aws.String(arn)})
		return err
	})
	if err != nil {
		return reservation{}, err
	}
	r := reservation{state: "none"}
	if out.MinimumLoadBalancerCapacity != nil {
		r.units = int(aws.ToInt32(out.MinimumLoadBalancerCapacity.CapacityUnits))
	}
	if out.DecreaseRequestsRemaining != nil {
		r.decreasesLeft, r.decreasesKnown = int(*out.DecreaseRequestsRemaining), true
	}
	// The worst zonal state is the reservation's state.
	rank := map[string]int{"none": 0, "provisioned": 1, "rebalancing": 2, "pending": 3, "failed": 4}
	for _, z := range out.CapacityReservationState {
		if z.State == nil {
			continue
		}
		s := string(z.State.Code)
		if rank[s] > rank[r.state] {
			r.state, r.reason = s, aws.ToString(z.State.Reason)
		}
	}
	return r, nil
}

func (w *Watcher) notifyPrewarm(lb config.PrewarmLoadBalancer, st PrewarmStatus, now time.Time) {
	ev := append([]string(nil), st.Reasons...)
	ev = append(ev, st.Sizing.Steps...)
	if st.PeakLCU > 0 {
		ev = append(ev, fmt.Sprintf("PeakLCUs in the last hour: %g", st.PeakLCU))
	}
	state := ""
	if st.Needed {
		state = fmt.Sprintf("needed:%d", st.Recommended)
	}
	if st.Refused != "" {
		ev = append(ev, st.Refused)
	}
	action := fmt.Sprintf("recommended a reservation of %d LCU; apply is off", st.Recommended)
	switch {
	case lb.Type == "classic":
		action = "nothing: Classic load balancers have no capacity reservation"
	case st.Step.NeedsPerson:
		state += ":person"
		action = "needs a person: " + st.Step.Why
	case st.Refused != "":
		action = "nothing: " + st.Refused
	case st.Step.Op != "" && st.Step.Op != "none":
		action = "will change the reservation from the lead time: " + st.Step.Why
	}
	w.emit("prewarm/"+lb.Name, state, alerts.Event{Kind: alerts.PrewarmNeeded, Severity: alerts.Warning, Time: now, Subject: lb.Name,
		Summary:  fmt.Sprintf("load balancer %s needs pre-warming (%d LCU recommended)", lb.Name, st.Recommended),
		Evidence: ev, Action: action, NeedsAction: lb.Type == "classic" || st.Step.NeedsPerson || (!st.StepDone && st.Recommended > 0 && st.Step.Op == "none" && st.Phase == PhaseLead && st.Applied < st.Recommended),
		State:  fmt.Sprintf("reservation %d LCU requested, %d provisioned (%s)", st.Requested, st.Applied, st.ReservationState),
		Labels: map[string]string{"load_balancer": lb.Name}})
	if st.StepDone || st.StepErr != "" && st.Step.Op != "" && st.Step.Op != "none" {
		verb := st.Step.Why
		if w.dryRun {
			verb = "dry run, would " + verb
		}
		sum := fmt.Sprintf("load balancer %s: %s", lb.Name, verb)
		sev := alerts.Info
		if st.StepErr != "" {
			sum = fmt.Sprintf("load balancer %s: could not %s: %s (retried next refresh)", lb.Name, st.Step.Why, st.StepErr)
			sev = alerts.Warning
		}
		w.notifier.Notify(alerts.Event{Kind: alerts.PrewarmApplied, Severity: sev, Time: now, Subject: lb.Name, Summary: sum,
			Evidence: ev, Action: st.Step.Why, State: fmt.Sprintf("reservation %d LCU (%s)", st.Applied, st.ReservationState),
			Labels: map[string]string{"load_balancer": lb.Name, "operation": st.Step.Op}})
	}
}

// dryRunReservation is the dry-run actuator for capacity reservations: it
// changes nothing, and remembers what it would have set so that later
// reads (and so the next refresh's plan) see it, marked "dry_run".
type dryRunReservation struct {
	reservationAPI
	units *sync.Map // ARN → int32 it would have set
}

func (d dryRunReservation) ModifyCapacityReservation(_ context.Context, in *elbv2.ModifyCapacityReservationInput, _ ...func(*elbv2.Options)) (*elbv2.ModifyCapacityReservationOutput, error) {
	arn := aws.ToString(in.LoadBalancerArn)
	if aws.ToBool(in.ResetCapacityReservation) {
		d.units.Store(arn, int32(0))
	} else if in.MinimumLoadBalancerCapacity != nil {
		d.units.Store(arn, aws.ToInt32(in.MinimumLoadBalancerCapacity.CapacityUnits))
	}
	return &elbv2.ModifyCapacityReservationOutput{}, nil
}

func (d dryRunReservation) DescribeCapacityReservation(ctx context.Context, in *elbv2.DescribeCapacityReservationInput, o ...func(*elbv2.Options)) (*elbv2.DescribeCapacityReservationOutput, error) {
	out, err := d.reservationAPI.DescribeCapacityReservation(ctx, in, o...)
	if err != nil {
		return nil, err
	}
	if v, ok := d.units.Load(aws.ToString(in.LoadBalancerArn)); ok {
		out.MinimumLoadBalancerCapacity = &elbtypes.MinimumLoadBalancerCapacity{CapacityUnits: aws.Int32(v.(int32))}
		out.CapacityReservationState = []elbtypes.ZonalCapacityReservationState{{State: &elbtypes.CapacityReservationStatus{Code: "provisioned", Reason: aws.String("dry_run")}}}
	}
	return out, nil
}

func (m lbMetric) periodOr300() int32 {
	if m.period == 0 {
		return 300
	}
	return m.period
}
