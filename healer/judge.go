// Package healer decides which instances of a service are broken, whether
// marking them Unhealthy is safe for the service, and does it — explaining
// every decision. Judge and Guard are pure functions of their inputs (the
// clock is an input); the Actuator is the only part that talks to AWS, and
// Healer runs the three once per cycle, remembering what it did.
package healer

import (
	"fmt"
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

// Lifecycle and health values as Auto Scaling reports them.
const (
	lifecycleInService = "InService"
	healthHealthy      = "Healthy"
	healthUnhealthy    = "Unhealthy"
)

// maxEvidence bounds how many failure reasons a verdict's Reason quotes.
const maxEvidence = 5

// JudgeInput is everything Judge looks at.
type JudgeInput struct {
	Snapshot discovery.Snapshot
	// History holds each instance's probe results by instance id, oldest first.
	History map[string][]probes.Result
	Policy  config.Policy
	Now     time.Time
}

// Verdict is Judge's opinion of one instance.
type Verdict struct {
	Instance discovery.Instance
	State    State
	// Reason is a sentence with the evidence, for logs, alerts and the
	// status page.
	Reason string
	// Since is when the evidence for State began: the first failure of the
	// failing run (Bad, failing Suspect), the first pass of the recovery
	// (recovering Suspect), the first pass of the passing run (Healthy),
	// the launch time (Grace). Zero when unknown (NotInService, Unknown).
	Since time.Time
}

// Judge gives every instance of the snapshot a verdict, sorted by instance id.
// It decides, in this order:
//
//   - lifecycle state other than InService → NotInService;
//   - launched less than the grace period ago → Grace (an instance launched
//     exactly the grace period ago is out of grace). The grace period is the
//     group's HealthCheckGracePeriod when the policy says "asg" (zero if the
//     group is missing from the snapshot), else the policy's duration. A zero
//     LaunchTime means no grace;
//   - no probe results → Unknown;
//   - the trailing run of failures is at least UnhealthyAfter long → Bad;
//   - hysteresis: after a run of UnhealthyAfter failures that lasted past the
//     end of the grace period, the instance stays Suspect ("recovering")
//     until it passes HealthyAfter probes in a row;
//   - a shorter trailing run of failures → Suspect;
//   - otherwise Healthy.
//
// Results taken during the grace period count: an instance that fails all
// through its grace period and still fails when it ends is Bad at once,
// without waiting UnhealthyAfter more probes. But failures during grace that
// stop before grace ends (a slow boot) never start hysteresis: the instance
// was never seen Bad, so it need not earn its way back.
func Judge(in JudgeInput) []Verdict {
	groups := make(map[string]discovery.Group, len(in.Snapshot.Groups))
	for _, g := range in.Snapshot.Groups {
		groups[g.Name] = g
	}
	out := make([]Verdict, 0, len(in.Snapshot.Instances))
	for _, inst := range in.Snapshot.Instances {
		out = append(out, judgeOne(inst, graceFor(inst, groups, in.Policy.GracePeriod), in.History[inst.ID], in.Policy, in.Now))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Instance.ID < out[j].Instance.ID })
	return out
}

type grace struct {
	d      time.Duration
	source string // "asg web-asg" or "policy"
}

func graceFor(inst discovery.Instance, groups map[string]discovery.Group, gp config.GracePeriod) grace {
	if gp.FromASG {
		return grace{d: groups[inst.Group].GracePeriod, source: "asg " + inst.Group}
	}
	return grace{d: gp.Duration, source: "policy"}
}

func judgeOne(inst discovery.Instance, gr grace, rs []probes.Result, p config.Policy, now time.Time) Verdict {
	v := Verdict{Instance: inst}
	if inst.LifecycleState != lifecycleInService {
		v.State = NotInService
		state := inst.LifecycleState
		if state == "" {
			state = "not reported"
		}
		v.Reason = fmt.Sprintf("lifecycle state %s, not InService", state)
		return v
	}
	var graceEnd time.Time
	if !inst.LaunchTime.IsZero() {
		graceEnd = inst.LaunchTime.Add(gr.d)
		if now.Before(graceEnd) {
			v.State = Grace
			v.Since = inst.LaunchTime
			v.Reason = fmt.Sprintf("in grace period until %s (launched %s, grace %s from %s)",
				clock(graceEnd), clock(inst.LaunchTime), gr.d, gr.source)
			return v
		}
	}
	if len(rs) == 0 {
		v.State = Unknown
		v.Reason = "no probe results yet"
		return v
	}

	unhealthyAfter := max(p.UnhealthyAfter, 1)
	healthyAfter := max(p.HealthyAfter, 1)

	// Walk the results as a state machine: count the current runs of
	// failures and passes, and latch "was bad" when a run of unhealthyAfter
	// failures is seen out of grace; healthyAfter passes in a row unlatch it.
	var (
		failStart, passStart   int
		consecFail, consecPass int
		latched                bool
		badRun                 []probes.Result // the run that latched most recently
	)
	for i, r := range rs {
		if !r.Success {
			if consecFail == 0 {
				failStart = i
			}
			consecFail++
			consecPass = 0
			continue
		}
		// A pass out of grace ending a long enough failing run: the
		// instance has been visibly Bad until now.
		if consecFail >= unhealthyAfter && !r.Start.Before(graceEnd) {
			latched = true
			badRun = rs[failStart:i]
		}
		if consecPass == 0 {
			passStart = i
		}
		consecFail = 0
		consecPass++
		if consecPass >= healthyAfter {
			latched = false
		}
	}

	switch {
	case consecFail >= unhealthyAfter:
		run := rs[failStart:]
		v.State = Bad
		v.Since = run[0].Start
		v.Reason = fmt.Sprintf("%s since %s", describeFailures(run), clock(run[0].Start)) + lbView(inst.LBHealth, true)
	case latched && consecFail > 0:
		run := rs[failStart:]
		v.State = Suspect
		v.Since = run[0].Start
		v.Reason = fmt.Sprintf("failing again since %s: %s, below unhealthy_after %d; still recovering from %s ending %s",
			clock(run[0].Start), describeFailures(run), unhealthyAfter, describeFailures(badRun), clock(badRun[len(badRun)-1].Start)) +
			lbView(inst.LBHealth, true)
	case latched:
		v.State = Suspect
		v.Since = rs[passStart].Start
		v.Reason = fmt.Sprintf("recovering: %d of %d passing probes needed since %s, after %s ending %s",
			consecPass, healthyAfter, clock(rs[passStart].Start), describeFailures(badRun), clock(badRun[len(badRun)-1].Start)) +
			lbView(inst.LBHealth, false)
	case consecFail > 0:
		run := rs[failStart:]
		v.State = Suspect
		v.Since = run[0].Start
		v.Reason = fmt.Sprintf("%s since %s, below unhealthy_after %d",
			describeFailures(run), clock(run[0].Start), unhealthyAfter) + lbView(inst.LBHealth, true)
	default:
		v.State = Healthy
		v.Since = rs[passStart].Start
		v.Reason = fmt.Sprintf("%s since %s", plural(consecPass, "passing probe"), clock(rs[passStart].Start))
	}
	return v
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
// 500, timeout)", quoting at most the last maxEvidence reasons.
func describeFailures(run []probes.Result) string {
	quoted := run
	prefix := ""
	if len(run) > maxEvidence {
		quoted = run[len(run)-maxEvidence:]
		prefix = fmt.Sprintf("last %d: ", maxEvidence)
	}
	reasons := make([]string, 0, len(quoted))
	for _, r := range quoted {
		reasons = append(reasons, failureReason(r))
	}
	noun := "consecutive failed probes"
	if len(run) == 1 {
		noun = "failed probe"
	}
	return fmt.Sprintf("%d %s (%s%s)", len(run), noun, prefix, strings.Join(reasons, ", "))
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
