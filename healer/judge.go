// Package healer decides which instances of a service are broken, whether
// marking them Unhealthy is safe for the service, and does it — explaining
// every decision. Judge and Guard are pure functions of their inputs (the
// clock is an input); the Actuator is the only part that talks to AWS, and
// Healer runs the three once per cycle, remembering what it did.
package healer

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/probes"
)

// State is an instance's judged state. The values are the `state` label of
// medic_instances.
type State string

const (
	// Healthy: InService, out of grace, and its recent probes pass.
	Healthy State = "healthy"
	// Suspect: failing, but not (yet) for unhealthy_after probes in a row;
	// or recovering from a bad run with fewer than healthy_after passes since.
	Suspect State = "suspect"
	// Bad: its last unhealthy_after (or more) probes all failed.
	Bad State = "bad"
	// Grace: launched less than the grace period ago; not judged on probes.
	Grace State = "grace"
	// NotInService: its lifecycle state is anything but InService.
	NotInService State = "not_in_service"
	// Unknown: InService and out of grace, but no probe result yet.
	Unknown State = "unknown"
)

// States lists every State, in the order status pages show them.
var States = []State{Healthy, Suspect, Bad, Grace, NotInService, Unknown}

// maxEvidence bounds how many failure reasons a verdict's Reason quotes.
const maxEvidence = 5

// falseAlarm is the chance the judge accepts, per rule and per probe, of
// calling an instance bad on its peers' background failures alone. The
// evidence an instance needs grows with the background until chance alone
// would produce it this rarely.
const falseAlarm = 1e-9

// peerMargin is how far above the peers' median failure ratio an instance's
// own ratio must be for the ratio rule: it must stand out.
const peerMargin = 0.2

// JudgeInput is everything Judge looks at.
type JudgeInput struct {
	Snapshot discovery.Snapshot
	// History holds each instance's probe results by instance id, oldest
	// first. When non-nil it is replayed into fresh Detectors and
	// Detectors is ignored.
	History map[string][]probes.Result
	// Detectors hold each instance's record as Observe kept it, by
	// instance id. Judge only reads them.
	Detectors map[string]*Detector
	Policy    config.Policy
	// Probe is the service's instance probe: its interval and timeout say
	// when a result is too old to count. Zero interval: no freshness check.
	Probe config.Probe
	Now   time.Time
	// NoReasons leaves Verdict.Reason empty: the same decisions without the
	// sentences, for the fleet simulation.
	NoReasons bool
}

// Verdict is Judge's opinion of one instance.
type Verdict struct {
	Instance discovery.Instance
	State    State
	// Reason is a sentence with the evidence, for logs, alerts and the
	// status page.
	Reason string
	// Since is when the evidence for State began: the first failure of the
	// failing run (Bad, failing Suspect), the oldest failure quoted (Bad by
	// ratio), the first pass of the recovery (recovering Suspect), the
	// first pass of the passing run (Healthy), the start of grace (Grace).
	// Zero when unknown (NotInService, Unknown).
	Since time.Time
	// Probes and Failures are the instance's latest outcomes held (up to
	// 64) and how many of them failed: the long window peers are compared on.
	Probes, Failures int
	// Background is the upper bound on the failure rate of the instance's
	// peers that its evidence was weighed against (0: the peers do not
	// fail, or the instance's own record could not make it bad anyway).
	Background float64
	// Detector names the rule that judged the instance Bad (empty unless
	// Bad): consecutive_failures, failure_ratio or latency_outlier.
	Detector DetectorKind
}

// Judge gives every instance of the snapshot a verdict, sorted by instance id.
// It decides, in this order:
//
//   - lifecycle state other than InService (Pending, Pending:Wait,
//     Terminating:Wait, Standby, Detaching, Warmed:*, …) → NotInService;
//   - less than the grace period since the instance entered InService
//     (InServiceSince; LaunchTime when discovery did not say) → Grace (an
//     instance exactly the grace period in is out of grace). The grace
//     period is the group's HealthCheckGracePeriod when the policy says
//     "asg" (zero if the group is missing from the snapshot), else the
//     policy's duration. Both times zero means no grace;
//   - no probe results → Unknown;
//   - the newest result older than 2 intervals plus the timeout → Unknown:
//     stale results never count as healthy;
//   - streak rule: the trailing run of failures is at least k long → Bad,
//     where k = max(unhealthy_after, ceil(ln(1e-9) / ln(p))) and p is the
//     upper bound on the peers' background failure rate (k =
//     unhealthy_after when the peers do not fail);
//   - ratio rule: the last failure_window results are held, at least
//     failure_ratio of them failed, the instance has not passed
//     healthy_after in a row since, the chance of that many failures at
//     the background rate p is below 1e-9, and its ratio is at least 0.2
//     above the median of its peers' → Bad;
//   - a missed probe slot and fewer than healthy_after results since, all
//     passing → Unknown;
//   - hysteresis: after a run of unhealthy_after failures that lasted past
//     the end of the grace period, the instance stays Suspect
//     ("recovering") until it passes healthy_after probes in a row;
//   - a shorter trailing run of failures → Suspect;
//   - otherwise Healthy.
//
// The peers of an instance are the service's other instances with results,
// except those that themselves fail at least failure_ratio of their long
// window: they stand out, they are not background (when every instance
// fails that hard, each is judged on the plain rules, and the guard's
// service-wide rule refuses). Their background rate is taken over the last
// 64 results of each.
//
// Results taken during the grace period count: an instance that fails all
// through its grace period and still fails when it ends is Bad at once,
// without waiting unhealthy_after more probes. But failures during grace that
// stop before grace ends (a slow boot) never start hysteresis: the instance
// was never seen Bad, so it need not earn its way back.
func Judge(in JudgeInput) []Verdict {
	groups := make(map[string]discovery.Group, len(in.Snapshot.Groups))
	for _, g := range in.Snapshot.Groups {
		groups[g.Name] = g
	}
	p := ParamsFor(in.Policy, in.Probe)
	dets := in.Detectors
	if in.History != nil {
		dets = make(map[string]*Detector, len(in.History))
		for id, rs := range in.History {
			dets[id] = replay(rs, p)
		}
	}
	bg := newBackground(in.Snapshot.Instances, dets, p)
	j := judge{p: p, policy: in.Policy, bg: bg, now: in.Now, terse: in.NoReasons}
	out := make([]Verdict, 0, len(in.Snapshot.Instances))
	for _, inst := range in.Snapshot.Instances {
		out = append(out, j.one(inst, graceFor(inst, groups, in.Policy.GracePeriod), dets[inst.ID]))
	}
	byID := func(a, b Verdict) int { return strings.Compare(a.Instance.ID, b.Instance.ID) }
	if !slices.IsSortedFunc(out, byID) {
		slices.SortStableFunc(out, byID)
	}
	return out
}

type grace struct {
	d       time.Duration
	fromASG bool
}

// source says where the grace period comes from: "asg web-asg" or "policy".
func (g grace) source(group string) string {
	if g.fromASG {
		return "asg " + group
	}
	return "policy"
}

func graceFor(inst discovery.Instance, groups map[string]discovery.Group, gp config.GracePeriod) grace {
	if gp.FromASG {
		return grace{d: groups[inst.Group].GracePeriod, fromASG: true}
	}
	return grace{d: gp.Duration}
}

// graceStart is when an instance's grace counts from, and which time it is:
// its entry into InService, else (discovery did not say) its launch.
func graceStart(inst discovery.Instance) (time.Time, string) {
	if !inst.InServiceSince.IsZero() {
		return inst.InServiceSince, "in service since"
	}
	return inst.LaunchTime, "launched"
}

// background is the service's pooled outcomes, from which each instance's
// peers' rate is taken by leaving its own out.
type background struct {
	fails, n int
	// ratios are the window failure ratios of the instances with a full
	// window, sorted: the peers' median is taken from them.
	ratios []float64
	// standout: instances left out of the pool.
	standout map[string]bool
}

func newBackground(insts []discovery.Instance, dets map[string]*Detector, p DetectorParams) background {
	var b background
	for _, inst := range insts {
		d := dets[inst.ID]
		if d == nil || d.n == 0 {
			continue
		}
		n, f := d.Outcomes()
		if float64(f) >= p.FailureRatio*float64(n) && f > 0 {
			if b.standout == nil {
				b.standout = map[string]bool{}
			}
			b.standout[inst.ID] = true
		} else {
			b.fails += f
			b.n += n
		}
		if int(d.n) >= p.FailureWindow {
			b.ratios = append(b.ratios, float64(d.windowFails(p.FailureWindow))/float64(p.FailureWindow))
		}
	}
	sort.Float64s(b.ratios)
	return b
}

// peerRate is the upper bound (Wilson score, z = 2) on the failure rate of
// id's peers; 0 when they have no failures.
func (b background) peerRate(id string, d *Detector) float64 {
	f, n := b.fails, b.n
	if !b.standout[id] {
		dn, df := d.Outcomes()
		f, n = f-df, n-dn
	}
	if f <= 0 || n <= 0 {
		return 0
	}
	return wilsonUpper(f, n)
}

// peerMedian is the median window ratio of the instances other than one
// whose own ratio is own (own < 0: it has no full window).
func (b background) peerMedian(own float64) float64 {
	rs := b.ratios
	if own >= 0 {
		i := sort.SearchFloat64s(rs, own)
		if i < len(rs) && rs[i] == own {
			rs = append(append(make([]float64, 0, len(rs)-1), rs[:i]...), rs[i+1:]...)
		}
	}
	switch n := len(rs); {
	case n == 0:
		return 0
	case n%2 == 1:
		return rs[n/2]
	default:
		return (rs[n/2-1] + rs[n/2]) / 2
	}
}

func wilsonUpper(f, n int) float64 {
	const z = 2.0
	ph, nf := float64(f)/float64(n), float64(n)
	return min((ph+z*z/(2*nf)+z*math.Sqrt(ph*(1-ph)/nf+z*z/(4*nf*nf)))/(1+z*z/nf), 1)
}

// streakNeeded is k: the failures in a row that chance at background rate
// p produces less often than falseAlarm, and never fewer than unhealthyAfter.
func streakNeeded(p float64, unhealthyAfter int) int {
	switch {
	case p <= 0:
		return unhealthyAfter
	case p >= 1:
		return math.MaxInt32
	}
	return max(unhealthyAfter, int(math.Ceil(math.Log(falseAlarm)/math.Log(p))))
}

// binomialTail is P(X ≥ k) for X ~ Binomial(n, p).
func binomialTail(k, n int, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n || p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	// The term for X = k, then each next one by the ratio of terms.
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x) + 1); return v }
	term := math.Exp(lg(n) - lg(k) - lg(n-k) + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	sum := 0.0
	for x := k; x <= n; x++ {
		sum += term
		term *= float64(n-x) / float64(x+1) * p / (1 - p)
	}
	return min(sum, 1)
}

type judge struct {
	p      DetectorParams
	policy config.Policy
	bg     background
	now    time.Time
	terse  bool
}

func (j judge) one(inst discovery.Instance, gr grace, d *Detector) Verdict {
	v := Verdict{Instance: inst}
	if !inst.InService() {
		v.State = NotInService
		state := inst.LifecycleState
		if state == "" {
			state = "not reported"
		}
		if !j.terse {
			v.Reason = fmt.Sprintf("lifecycle state %s, not InService", state)
		}
		return v
	}
	var graceEnd time.Time
	if from, what := graceStart(inst); !from.IsZero() {
		graceEnd = from.Add(gr.d)
		if j.now.Before(graceEnd) {
			v.State = Grace
			v.Since = from
			if !j.terse {
				v.Reason = fmt.Sprintf("in grace period until %s (%s %s, grace %s from %s)",
					clock(graceEnd), what, clock(from), gr.d, gr.source(inst.Group))
			}
			return v
		}
	}
	if d == nil || d.last.IsZero() {
		v.State = Unknown
		if !j.terse {
			v.Reason = "no probe results yet"
		}
		return v
	}
	v.Probes, v.Failures = d.Outcomes()
	if j.p.Interval > 0 && j.now.Sub(d.last) > j.p.staleAfter() {
		v.State = Unknown
		if !j.terse {
			v.Reason = fmt.Sprintf("the newest probe result is from %s, older than %s (2 intervals and the timeout): stale results do not count",
				clock(d.last), j.p.staleAfter())
		}
		return v
	}
	fails, passes := int(d.fails), int(d.passes)
	// The peers' background only matters to an instance that may be bad,
	// and to the sentence of a failing one.
	pbg, k := 0.0, j.p.UnhealthyAfter
	if d.mayBeBad(j.p) || (fails > 0 && !j.terse) {
		pbg = j.bg.peerRate(inst.ID, d)
		k = streakNeeded(pbg, j.p.UnhealthyAfter)
	}
	v.Background = pbg

	if fails >= k {
		v.State, v.Detector = Bad, DetectorConsecutiveFailures
		v.Since = d.runStart
		if !j.terse {
			v.Reason = fmt.Sprintf("%s since %s", describeFailures(fails, d.lastFailures(fails)), clock(d.runStart)) +
				j.needed(k, pbg) + lbView(inst.LBHealth, true)
		}
		return v
	}
	if bad, wf, med := j.ratioBad(inst.ID, d, pbg); bad {
		v.State, v.Detector = Bad, DetectorFailureRatio
		ev := d.lastFailures(maxEvidence)
		v.Since = ev[0].Start
		if !j.terse {
			v.Reason = fmt.Sprintf("%d of the last %d probes failed (failure_ratio %g; latest: %s), against a median of %.0f%% on its peers",
				wf, j.p.FailureWindow, j.p.FailureRatio, reasons(ev), 100*med) + j.needed(0, pbg) + lbView(inst.LBHealth, true)
		}
		return v
	}
	if d.gapSeen && int(d.fresh) < j.p.HealthyAfter && fails == 0 {
		v.State = Unknown
		if !j.terse {
			v.Reason = fmt.Sprintf("probe slots were missed before %s; %d of %d fresh results since, all passing",
				clock(d.gapAt), d.fresh, j.p.HealthyAfter)
		}
		return v
	}
	latched := !d.badEnd.IsZero() && !d.badEnd.Before(graceEnd)
	switch {
	case latched && fails > 0:
		v.State = Suspect
		v.Since = d.runStart
		if !j.terse {
			v.Reason = fmt.Sprintf("failing again since %s: %s, below %s; still recovering from %s ending %s",
				clock(d.runStart), describeFailures(fails, d.lastFailures(fails)), j.threshold(k), j.badRun(d), clock(d.badLast)) +
				lbView(inst.LBHealth, true)
		}
	case latched:
		v.State = Suspect
		v.Since = d.runStart
		if !j.terse {
			v.Reason = fmt.Sprintf("recovering: %d of %d passing probes needed since %s, after %s ending %s",
				passes, j.p.HealthyAfter, clock(d.runStart), j.badRun(d), clock(d.badLast)) + lbView(inst.LBHealth, false)
		}
	case fails > 0:
		v.State = Suspect
		v.Since = d.runStart
		if !j.terse {
			v.Reason = fmt.Sprintf("%s since %s, below %s", describeFailures(fails, d.lastFailures(fails)),
				clock(d.runStart), j.threshold(k)) + lbView(inst.LBHealth, true)
		}
	default:
		v.State = Healthy
		v.Since = d.runStart
		if !j.terse {
			v.Reason = fmt.Sprintf("%s since %s", plural(passes, "passing probe"), clock(d.runStart))
		}
	}
	return v
}

// ratioBad applies the ratio rule; it returns the window's failures and the
// peers' median ratio for the reason.
func (j judge) ratioBad(id string, d *Detector, pbg float64) (bad bool, wf int, med float64) {
	w := j.p.FailureWindow
	if int(d.n) < w || int(d.passes) >= j.p.HealthyAfter {
		return false, 0, 0
	}
	wf = d.windowFails(w)
	if wf < j.p.minWindowFails() {
		return false, wf, 0
	}
	own := float64(wf) / float64(w)
	med = j.bg.peerMedian(own)
	if own < med+peerMargin || binomialTail(wf, w, pbg) >= falseAlarm {
		return false, wf, med
	}
	return true, wf, med
}

// threshold says what a failing run is below: "unhealthy_after 3", or the
// streak the background asks for.
func (j judge) threshold(k int) string {
	if k == j.p.UnhealthyAfter {
		return fmt.Sprintf("unhealthy_after %d", k)
	}
	return fmt.Sprintf("the %d in a row its peers' failures call for (unhealthy_after %d)", k, j.p.UnhealthyAfter)
}

// needed notes the background the evidence was weighed against, when any.
func (j judge) needed(k int, pbg float64) string {
	if pbg <= 0 {
		return ""
	}
	if k > j.p.UnhealthyAfter {
		return fmt.Sprintf("; its peers fail up to %.1f%% of their probes, so %d in a row were needed", 100*pbg, k)
	}
	return fmt.Sprintf("; its peers fail up to %.1f%% of their probes", 100*pbg)
}

// badRun describes the latest bad run, quoting the failures of it still held.
func (j judge) badRun(d *Detector) string {
	var run []probes.Result
	for _, r := range d.lastFailures(maxEvidence) {
		if !r.Start.Before(d.badStart) && r.Start.Before(d.badEnd) {
			run = append(run, r)
		}
	}
	return describeFailures(int(d.badLen), run)
}

// lbView is what a Bad or Suspect verdict's reason adds of the load
// balancer's view of the instance, for the people reading it; it never
// changes the verdict. "" when no target group reports the instance. One
// phrase when every target group agrees ("; the load balancer sees it
// unhealthy (Target.ResponseCodeMismatch)"; with failing probes, "; the load
// balancer still sees it healthy"), else one per target group ("; the load
// balancer sees it unhealthy in web-tg (Target.Timeout), healthy in
// admin-tg").
func lbView(hs []discovery.TargetHealth, failing bool) string {
	if len(hs) == 0 {
		return ""
	}
	agree := true
	for _, h := range hs[1:] {
		if h.State != hs[0].State || h.Reason != hs[0].Reason {
			agree = false
			break
		}
	}
	if agree {
		if hs[0].State == lbHealthy && failing {
			return "; the load balancer still sees it healthy"
		}
		return "; the load balancer sees it " + withReason(hs[0].State, hs[0].Reason)
	}
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = withReason(h.State+" in "+h.TargetGroup, h.Reason)
	}
	return "; the load balancer sees it " + strings.Join(parts, ", ")
}

// lbHealthy is the State of a target its load balancer finds healthy.
const lbHealthy = "healthy"

func withReason(s, reason string) string {
	if reason == "" {
		return s
	}
	return s + " (" + reason + ")"
}

// describeFailures says "3 consecutive failed probes (status 500, status
// 500, timeout)" of a run of n failures whose latest are quoted (at most
// maxEvidence of them).
func describeFailures(n int, quoted []probes.Result) string {
	if len(quoted) > maxEvidence {
		quoted = quoted[len(quoted)-maxEvidence:]
	}
	prefix := ""
	if n > len(quoted) && len(quoted) > 0 {
		prefix = fmt.Sprintf("last %d: ", len(quoted))
	}
	noun := "consecutive failed probes"
	if n == 1 {
		noun = "failed probe"
	}
	if len(quoted) == 0 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %s (%s%s)", n, noun, prefix, reasons(quoted))
}

// reasons lists the results' failure reasons, comma separated.
func reasons(rs []probes.Result) string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, failureReason(r))
	}
	return strings.Join(out, ", ")
}

func failureReason(r probes.Result) string {
	switch {
	case r.Reason != "":
		return r.Reason
	case r.StatusCode != 0:
		return fmt.Sprintf("status %d", r.StatusCode)
	default:
		return "failed"
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// clock formats t as a UTC time of day ("12:00:01Z"), the form reasons use.
func clock(t time.Time) string { return t.UTC().Format("15:04:05Z") }
