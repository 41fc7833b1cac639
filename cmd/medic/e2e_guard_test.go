package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// assertFirstRefusalSays fails unless the first log line with the refusal
// reason says want.
func assertFirstRefusalSays(t *testing.T, m *medic, reason, want string) {
	t.Helper()
	if lines := m.logsWith("reason", reason); len(lines) == 0 || !strings.Contains(fmt.Sprint(lines[0]["msg"]), want) {
		t.Errorf("log lines with reason %s: %v, want the first to say %q", reason, lines, want)
	}
}

// holdsThenMarks breaks one instance while the group's own state holds
// medic back (the refusal reason wantReason, its log line naming why), then
// lifts it with release and expects the instance marked, once.
func holdsThenMarks(t *testing.T, w *world, hold func() error, wantReason, wantWhy string, release func() error) {
	t.Helper()
	if err := hold(); err != nil {
		t.Fatal(err)
	}
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	victim := insts[len(insts)-1].ID
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	m.waitJudged(svc, "bad", 1, 15*time.Second)
	m.waitMetric(15*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", wantReason)
	m.waitProbes(svc, 2*len(insts), 15*time.Second) // more cycles with the instance bad
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Fatalf("SetInstanceHealth calls = %d while %s holds, want 0", n, wantReason)
	}
	w.assertOnlyUnhealthy()
	assertFirstRefusalSays(t, m, wantReason, wantWhy)

	if err := release(); err != nil {
		t.Fatal(err)
	}
	w.waitUnhealthy(victim, 20*time.Second)
	m.waitMetric(10*time.Second, eq(0), "medic_guard_refusing", "service", svc, "reason", wantReason)
	m.waitProbes(svc, 2*len(insts), 15*time.Second)
	w.assertOnlyUnhealthy(victim)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
	if len(m.logsWith("msg", "guard no longer refuses", "reason", wantReason)) != 1 {
		t.Errorf("want one 'guard no longer refuses' line for %s", wantReason)
	}
}

// The group's ReplaceUnhealthy process is suspended: a mark would not be
// acted on, so medic marks nothing and names the process; when the process
// is resumed, it marks.
func TestE2ESuspendedReplaceUnhealthyMarksNothingUntilResumed(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	procs := &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(w.group), ScalingProcesses: []string{"ReplaceUnhealthy"}}
	holdsThenMarks(t, w,
		func() error { _, err := w.asg.SuspendProcesses(w.ctx, procs); return err },
		"process_suspended", "suspended ReplaceUnhealthy",
		func() error {
			_, err := w.asg.ResumeProcesses(w.ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: procs.AutoScalingGroupName, ScalingProcesses: procs.ScalingProcesses})
			return err
		})
}

// The group carries the tag medic:pause: medic marks nothing in it until
// the tag is removed.
func TestE2EPauseTagMarksNothingUntilRemoved(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	tag := astypes.Tag{ResourceId: aws.String(w.group), ResourceType: aws.String("auto-scaling-group"),
		Key: aws.String("medic:pause"), Value: aws.String("true"), PropagateAtLaunch: aws.Bool(false)}
	holdsThenMarks(t, w,
		func() error {
			_, err := w.asg.CreateOrUpdateTags(w.ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{tag}})
			return err
		},
		"paused", `carries the tag medic:pause="true"`,
		func() error {
			_, err := w.asg.DeleteTags(w.ctx, &autoscaling.DeleteTagsInput{Tags: []astypes.Tag{tag}})
			return err
		})
}

// An instance that fails 2 of every 3 probes, never 3 in a row, while its
// peers pass, is marked on the failure ratio.
func TestE2EIntermittentInstanceIsMarked(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	victim := insts[0].ID
	if err := w.app(victim).Pattern("FFP", http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	// 9 of the last 15 probes at 1s: the ratio rule needs 15 results.
	w.waitUnhealthy(victim, 30*time.Second)
	m.waitProbes(svc, 2*len(insts), 15*time.Second)
	w.assertOnlyUnhealthy(victim)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
	if lines := m.logsWith("msg", "instance judged bad", "instance_id", victim); len(lines) == 0 ||
		!strings.Contains(lines[0]["reason"].(string), "of the last 15 probes failed") {
		t.Errorf("the bad verdict does not cite the ratio: %v", lines)
	}
}

// Every instance loses ~30% of its probes at random while the endpoint
// passes (medic's vantage point, a shared dependency): nobody stands out,
// nothing is marked, and medic says why.
func TestE2ESpreadThinLossMarksNothing(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	for _, in := range insts {
		if err := w.app(in.ID).Flaky(0.3, http.StatusServiceUnavailable); err != nil {
			t.Fatal(err)
		}
	}
	m.waitMetric(30*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "spread_thin")
	m.waitProbes(svc, 20*len(insts), 40*time.Second) // 20 more probes each
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
	assertFirstRefusalSays(t, m, "spread_thin", "none stands out")
}

// 3 of 6 break at the same moment at max_unhealthy 34% (2 of 6): none is
// marked — the suspects count against the budget before they turn bad.
func TestE2EThreeOfSixBreakingAtOnceMarksNone(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(w.config(cfgOpts{MaxUnhealthy: "34%"}))
	insts := w.instances()
	for _, in := range insts[:3] {
		if err := w.app(in.ID).Status(http.StatusInternalServerError); err != nil {
			t.Fatal(err)
		}
	}
	m.waitMetric(15*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "max_unhealthy")
	m.waitProbes(svc, 3*len(insts), 15*time.Second)
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
}

// 2 of 6 are marked and the group holds them Unhealthy (replacements are
// slow: the emulator never replaces them); their probes pass again; a 3rd
// fails: the budget is spent until the replacements serve.
func TestE2EBudgetInFlightRefusesAThird(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(w.config(cfgOpts{MaxUnhealthy: "34%"}))
	insts := w.instances()
	// One per zone, so that zone correlation has no say.
	var first, rest []string
	seen := map[string]bool{}
	for _, in := range insts {
		if !seen[in.AZ] {
			seen[in.AZ] = true
			first = append(first, in.ID)
		} else {
			rest = append(rest, in.ID)
		}
	}
	for _, id := range first {
		if err := w.app(id).Status(http.StatusInternalServerError); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range first {
		w.waitUnhealthy(id, 20*time.Second)
		if err := w.app(id).OK(); err != nil {
			t.Fatal(err)
		}
	}
	third := rest[0]
	if err := w.app(third).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	m.waitMetric(15*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "max_unhealthy")
	m.waitProbes(svc, 3*len(insts), 15*time.Second)
	w.assertOnlyUnhealthy(first...)
	if n := w.proxy.Count("SetInstanceHealth"); n != 2 {
		t.Errorf("SetInstanceHealth calls = %d, want 2", n)
	}
	assertFirstRefusalSays(t, m, "max_unhealthy", "2 held Unhealthy")
}

// Every replacement comes up broken the same way (a bad image or launch
// template): medic marks the first bad instance, the group replaces it,
// the replacement is bad after its grace — medic stops marking in the
// group and asks a person, instead of marking replacement after
// replacement.
func TestE2EStopsWhenTheReplacementFailsToo(t *testing.T) {
	const grace = 3 * time.Second
	w := newWorld(t, fleetOpts{PerAZ: 3, Grace: grace})
	m := w.steady(w.config(cfgOpts{}))
	victim := w.instances()[0].ID
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	w.waitUnhealthy(victim, 20*time.Second)
	replaced, err := w.fleet.PlayASG(w.ctx)
	if err != nil || len(replaced) != 1 {
		t.Fatalf("playing the group: replaced %v, %v", replaced, err)
	}
	// The newest member is the replacement: break its app as its image would.
	var ids []string
	for _, in := range w.instances() {
		ids = append(ids, in.ID)
	}
	lt := w.launchTimes(ids...)
	var fresh string
	for id, at := range lt {
		if fresh == "" || at.After(lt[fresh]) {
			fresh = id
		}
	}
	if err := w.app(fresh).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	m.waitMetric(grace+20*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "replacements_failing")
	m.waitProbes(svc, 3*len(ids), 15*time.Second)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1 (the first bad instance only)", n)
	}
	if h := w.health()[fresh]; h != "Healthy" {
		t.Errorf("the failing replacement %s is %s in the emulator, want Healthy (not marked)", fresh, h)
	}
	assertFirstRefusalSays(t, m, "replacements_failing", "replacing does not help")
}

// An instance back from Standby gets its grace from its return to
// InService, as Auto Scaling counts it: failing at once, it is marked only
// after the group's grace period from the return.
func TestE2EGraceCountsFromTheReturnFromStandby(t *testing.T) {
	const grace = 6 * time.Second
	w := newWorld(t, fleetOpts{PerAZ: 2, Grace: grace})
	m := w.steady(w.config(cfgOpts{}))
	rec := w.recordMarks()
	victim := w.instances()[0].ID
	if _, err := w.asg.EnterStandby(w.ctx, &autoscaling.EnterStandbyInput{AutoScalingGroupName: aws.String(w.group),
		InstanceIds: []string{victim}, ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	m.waitJudged(svc, "not_in_service", 1, 10*time.Second)
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if _, err := w.asg.ExitStandby(w.ctx, &autoscaling.ExitStandbyInput{AutoScalingGroupName: aws.String(w.group),
		InstanceIds: []string{victim}}); err != nil {
		t.Fatal(err)
	}
	w.waitUnhealthy(victim, grace+20*time.Second)
	markAt, ok := rec.first()
	if !ok {
		t.Fatal("the emulator shows the instance Unhealthy, but no SetInstanceHealth passed the proxy")
	}
	t.Logf("back in service → marked: %s (grace %s)", markAt.Sub(back).Round(time.Millisecond), grace)
	if markAt.Sub(back) < grace {
		t.Errorf("marked %s after its return from Standby, inside the group's grace of %s", markAt.Sub(back), grace)
	}
	w.assertOnlyUnhealthy(victim)
}
