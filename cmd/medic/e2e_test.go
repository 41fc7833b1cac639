package main

// End-to-end tests of the real medic binary against moto_server, a loopback
// fleet and a fault proxy (see e2e_harness_test.go). Each asserts the
// instance health that the emulator records. Run them with
//
//	go test -race -count=1 -run TestE2E ./cmd/medic/

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/medic-sre/medic/internal/emulator"
)

const svc = "web" // the service name every test's config uses

// assertOnlyUnhealthy fails unless exactly the given instances are
// Unhealthy in the emulator.
func (w *world) assertOnlyUnhealthy(ids ...string) {
	w.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for id, h := range w.health() {
		if want[id] != (h == "Unhealthy") {
			w.t.Errorf("%s is %s in the emulator; want Unhealthy only for %v", id, h, ids)
		}
	}
}

// steady starts medic with cfg text and waits until it judges every
// instance healthy.
func (w *world) steady(cfg string, extra ...string) *medic {
	w.t.Helper()
	m := w.startMedic(w.writeConfig("medic.yml", cfg), extra...)
	m.waitReady()
	m.waitJudged(svc, "healthy", len(w.instances()), 30*time.Second)
	return m
}

// assertLogContext checks that every log line carries the controller's
// region and environment, and every healer or actuator line a request id.
func assertLogContext(t *testing.T, m *medic) {
	t.Helper()
	lines := m.logs()
	if len(lines) == 0 {
		t.Fatal("medic logged nothing")
	}
	bad := 0
	for _, l := range lines {
		var missing []string
		if l["region"] != "us-east-1" {
			missing = append(missing, "region")
		}
		if l["environment"] != "e2e" {
			missing = append(missing, "environment")
		}
		if c := l["component"]; c == "healer" || c == "actuator" {
			if id, _ := l["request_id"].(string); id == "" {
				missing = append(missing, "request_id")
			}
		}
		if len(missing) > 0 {
			bad++
			if bad <= 5 {
				t.Errorf("log line without %v: %s", missing, l["_raw"])
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d log lines in all lack context", bad)
	}
}

// 1. An instance answering 500 is marked Unhealthy within
// unhealthy_after × interval + 1s of the fault, and it alone.
func TestE2EMarksInstanceAnswering500(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(w.config(cfgOpts{BodyMustMatch: "^ok"}))
	insts := w.instances()
	rec := w.recordMarks()

	victim := insts[1].ID
	faultAt := time.Now()
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	seen := w.waitUnhealthy(victim, 15*time.Second)
	markAt, ok := rec.first()
	if !ok {
		t.Fatal("the emulator shows the instance Unhealthy, but no SetInstanceHealth passed the proxy")
	}
	bound := 3*probeInterval + time.Second
	latency := markAt.Sub(faultAt)
	t.Logf("fault → SetInstanceHealth at the proxy: %s (bound %s); fault → seen Unhealthy by polling: %s",
		latency.Round(time.Millisecond), bound, seen.Sub(faultAt).Round(time.Millisecond))
	if latency > bound {
		t.Errorf("marked %s after the fault, want within unhealthy_after × interval + 1s = %s", latency, bound)
	}

	// It alone, and once: give medic more cycles to do anything else.
	m.waitProbes(svc, 2*len(insts), 15*time.Second)
	w.assertOnlyUnhealthy(victim)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
	mt := m.metrics()
	if v := mt.val("medic_heal_actions_total", "service", svc, "result", "marked"); v != 1 {
		t.Errorf(`medic_heal_actions_total{result="marked"} = %v, want 1`, v)
	}
	if len(m.logsWith("msg", "marking done", "instance_id", victim, "result", "marked")) != 1 {
		t.Errorf("want one 'marking done' log line for %s", victim)
	}
	assertLogContext(t, m)
}

// breakAndExpectMark breaks one instance with fault and asserts medic marks
// it, and only it, once.
func breakAndExpectMark(t *testing.T, cfg cfgOpts, fault func(a *emulator.AppServer) error) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfg))
	insts := w.instances()
	victim := insts[len(insts)-1].ID
	faultAt := time.Now()
	if err := fault(w.app(victim)); err != nil {
		t.Fatal(err)
	}
	seen := w.waitUnhealthy(victim, 20*time.Second)
	t.Logf("fault → seen Unhealthy: %s", seen.Sub(faultAt).Round(time.Millisecond))
	m.waitProbes(svc, 2*len(insts), 15*time.Second)
	w.assertOnlyUnhealthy(victim)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
}

// 2. An instance that accepts connections and never answers is marked.
func TestE2EMarksInstanceThatHangs(t *testing.T) {
	breakAndExpectMark(t, cfgOpts{}, (*emulator.AppServer).Hang)
}

// 3. An instance whose health body stops matching body_must_match is marked.
func TestE2EMarksInstanceWhoseBodyStopsMatching(t *testing.T) {
	breakAndExpectMark(t, cfgOpts{BodyMustMatch: "^ok$"}, func(a *emulator.AppServer) error {
		return a.Body("degraded: database unreachable")
	})
}

// 4. An instance that fails twice and recovers (unhealthy_after 3) is not
// marked.
func TestE2EFlapBelowUnhealthyAfterIsNotMarked(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{UnhealthyAfter: 3}))
	insts := w.instances()
	victim := insts[0].ID
	app := w.app(victim)

	// Exactly two failed probes: the app counts the probes it answers; a
	// probe counted after the switch back reads the new mode.
	before := app.Requests()
	if err := app.Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "two probes answered 500", func() (bool, string) {
		return app.Requests() >= before+2, fmt.Sprintf("%d probes since the fault", app.Requests()-before)
	})
	if err := app.OK(); err != nil {
		t.Fatal(err)
	}
	if n := app.Requests() - before; n != 2 {
		t.Fatalf("%d probes reached the app while it failed, want exactly 2 (the poll was too slow)", n)
	}
	if len(m.logsWith("msg", "instance judged suspect", "instance_id", victim)) == 0 {
		// The judgement of the second failure may still be on its way.
		eventually(t, 5*time.Second, victim+" judged suspect", func() (bool, string) {
			return len(m.logsWith("msg", "instance judged suspect", "instance_id", victim)) > 0, "no such log line"
		})
	}
	// Recovered: passes again, judged healthy, and a few more cycles pass.
	eventually(t, 10*time.Second, "three passing probes", func() (bool, string) {
		return app.Requests() >= before+5, fmt.Sprintf("%d probes since the fault", app.Requests()-before)
	})
	m.waitJudged(svc, "healthy", len(insts), 10*time.Second)
	m.waitProbes(svc, len(insts), 10*time.Second)

	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
	if v := m.metrics().val("medic_heal_actions_total", "service", svc); v != 0 {
		t.Errorf("medic_heal_actions_total = %v, want 0", v)
	}
}

// 5. Every instance and the service endpoint failing together: nothing is
// marked, and the guard's reason shows in metrics and logs.
func TestE2EServiceWideFailureMarksNothing(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	w.lb.setStatus(http.StatusServiceUnavailable)
	for _, in := range insts {
		if err := w.app(in.ID).Status(http.StatusInternalServerError); err != nil {
			t.Fatal(err)
		}
	}
	m.waitMetric(15*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "service_wide_failure")
	m.waitJudged(svc, "bad", len(insts), 10*time.Second)
	// Several more cycles with everything bad.
	m.waitProbes(svc, 2*len(insts), 15*time.Second)

	mt := m.metrics()
	if v := mt.val("medic_guard_refusals_total", "service", svc, "reason", "service_wide_failure"); v < 1 {
		t.Errorf(`medic_guard_refusals_total{reason="service_wide_failure"} = %v, want ≥ 1`, v)
	}
	if v := mt.val("medic_service_endpoint_success", "service", svc); v != 0 {
		t.Errorf("medic_service_endpoint_success = %v, want 0", v)
	}
	if v := mt.val("medic_heal_actions_total", "service", svc); v != 0 {
		t.Errorf("medic_heal_actions_total = %v, want 0", v)
	}
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
	refused := m.logsWith("reason", "service_wide_failure")
	if len(refused) == 0 {
		t.Errorf("no log line gives the reason service_wide_failure")
	} else if msg := fmt.Sprint(refused[0]["msg"]); !strings.Contains(msg, "endpoint fails too") {
		t.Errorf("refusal log line %q does not say the endpoint fails too", msg)
	}
}

// 6. More bad instances than max_unhealthy: nothing is marked.
//
// Two of four bad is above 34% (1 of 4). For the guard to see both bad in
// one cycle (rather than mark the first while the second is still
// suspect), both fail from launch through the group's grace period and
// share a launch time: they turn bad together when grace ends.
func TestE2EMoreBadThanMaxUnhealthyMarksNothing(t *testing.T) {
	const grace = 8 * time.Second
	w := newWorld(t, fleetOpts{PerAZ: 2, Grace: grace})
	insts := w.instances()
	ids := make([]string, len(insts))
	for i, in := range insts {
		ids[i] = in.ID
	}
	lt := w.launchTimes(ids...)
	// The two instances of one AZ were launched by one RunInstances call.
	var pair []string
	for _, az := range []string{"us-east-1a", "us-east-1b"} {
		var same []string
		for _, in := range insts {
			if in.AZ == az {
				same = append(same, in.ID)
			}
		}
		if d := lt[same[0]].Sub(lt[same[1]]); d.Abs() < 10*time.Millisecond {
			pair = same
			break
		}
	}
	if pair == nil {
		t.Fatalf("no two instances share a launch time: %v", lt)
	}
	graceEnd := lt[pair[0]].Add(grace)
	for _, id := range pair {
		if err := w.app(id).Status(http.StatusInternalServerError); err != nil {
			t.Fatal(err)
		}
	}
	m := w.startMedic(w.writeConfig("medic.yml", w.config(cfgOpts{MaxUnhealthy: "34%"})))
	m.waitReady()
	if left := time.Until(graceEnd); left < 2*time.Second {
		t.Fatalf("medic was ready only %s before the grace period ended: the set-up is too slow for this test", left)
	}
	m.waitMetric(grace+10*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "max_unhealthy")
	m.waitProbes(svc, 2*len(insts), 15*time.Second)

	mt := m.metrics()
	if v := mt.val("medic_guard_refusals_total", "service", svc, "reason", "max_unhealthy"); v < 1 {
		t.Errorf(`medic_guard_refusals_total{reason="max_unhealthy"} = %v, want ≥ 1`, v)
	}
	if v := mt.val("medic_instances", "service", svc, "state", "bad"); v != 2 {
		t.Errorf(`medic_instances{state="bad"} = %v, want 2`, v)
	}
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
	if len(m.logsWith("reason", "max_unhealthy")) == 0 {
		t.Errorf("no log line gives the reason max_unhealthy")
	}
}

// 7. A new instance failing inside its grace period is marked only after
// the grace period. The newcomer replaces an instance the test terminates
// (as the group would); the terminated instance's series leave /metrics.
func TestE2ENewInstanceIsMarkedOnlyAfterGrace(t *testing.T) {
	const grace = 5 * time.Second
	w := newWorld(t, fleetOpts{PerAZ: 2, Grace: grace})
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	rec := w.recordMarks()

	// The group replaces old: moto launches a newcomer into the group.
	old := insts[0].ID
	if _, err := w.asg.TerminateInstanceInAutoScalingGroup(w.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(old), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}); err != nil {
		t.Fatal(err)
	}
	started, _, err := w.fleet.SyncApps(w.ctx)
	if err != nil || len(started) != 1 {
		t.Fatalf("SyncApps started %v (%v), want the one newcomer", started, err)
	}
	newcomer := started[0]
	w.assertLoopback(w.instances())
	if err := w.app(newcomer).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	launch := w.launchTimes(newcomer)[newcomer]
	graceEnd := launch.Add(grace)
	t.Logf("newcomer %s launched %s, grace ends %s (in %s)", newcomer, launch.Format(time.StampMilli),
		graceEnd.Format(time.StampMilli), time.Until(graceEnd).Round(time.Millisecond))

	// Inside the grace period: medic sees the newcomer, probes it (and it
	// fails), but does not mark it.
	eventually(t, grace, newcomer+" judged in grace", func() (bool, string) {
		return len(m.logsWith("msg", "instance judged grace", "instance_id", newcomer)) > 0, "no such log line"
	})
	for time.Now().Before(graceEnd.Add(-100 * time.Millisecond)) {
		if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
			t.Fatalf("SetInstanceHealth called %s before the grace period ended", time.Until(graceEnd))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w.app(newcomer).Requests() == 0 {
		t.Errorf("medic did not probe the newcomer during its grace period")
	}
	if h := w.health()[newcomer]; h != "Healthy" {
		t.Errorf("%s is %s before its grace period ended", newcomer, h)
	}

	// After it: marked, soon.
	w.waitUnhealthy(newcomer, 15*time.Second)
	markAt, _ := rec.first()
	t.Logf("marked %s after the grace period ended", markAt.Sub(graceEnd).Round(time.Millisecond))
	if markAt.Before(graceEnd) {
		t.Errorf("marked at %s, before the grace period ended at %s", markAt.Format(time.StampMilli), graceEnd.Format(time.StampMilli))
	}
	if limit := 3*probeInterval + time.Second; markAt.Sub(graceEnd) > limit {
		t.Errorf("marked %s after the grace period ended, want within %s", markAt.Sub(graceEnd), limit)
	}
	w.assertOnlyUnhealthy(newcomer)

	// The departed instance's series are gone.
	eventually(t, 10*time.Second, "no series for "+old, func() (bool, string) {
		raw := m.metrics().raw
		return !strings.Contains(raw, old), "still in /metrics: " + firstLineWith(raw, old)
	})
	if !strings.Contains(m.metrics().raw, `instance_id="`+newcomer+`"`) {
		t.Errorf("no series for the newcomer %s", newcomer)
	}
}

func firstLineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// writeQueryError answers an AWS query-protocol call (autoscaling) with
// an error, as AWS would.
func writeQueryError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", "00000000-0000-0000-0000-0000000e2e00")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>00000000-0000-0000-0000-0000000e2e00</RequestId></ErrorResponse>`, code, message)
}

// 8. An instance terminated between decision and action: no crash, no
// retry storm, recorded as skipped (result "gone").
//
// The proxy holds medic's SetInstanceHealth while the test terminates the
// instance in the emulator, then answers as AWS does for an instance no
// longer in a group (ValidationError "No managed instance found"). This is
// a local fake for that one answer: moto 5.2.1 fails the call with HTTP 500
// (an unhandled StopIteration), which AWS never answers for this case.
func TestE2EInstanceGoneBeforeActionIsSkipped(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	victim := insts[0].ID

	var calls atomic.Int32
	w.proxy.OnAction("SetInstanceHealth", func(rw http.ResponseWriter, r *http.Request) bool {
		if calls.Add(1) > 1 {
			return false // any later call goes to the emulator as is
		}
		_, err := w.asg.TerminateInstanceInAutoScalingGroup(w.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
			InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(false),
		})
		if err != nil {
			t.Errorf("terminate %s: %v", victim, err)
		}
		writeQueryError(rw, http.StatusBadRequest, "ValidationError",
			"Instance Id not found - No managed instance found for instance ID: "+victim)
		return true
	})
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	m.waitMetric(20*time.Second, eq(1), "medic_heal_actions_total", "service", svc, "result", "gone")

	// The group's replacement gets its app, as PlayASG would do.
	started, _, err := w.fleet.SyncApps(w.ctx)
	if err != nil || len(started) != 1 {
		t.Fatalf("SyncApps started %v (%v), want the replacement", started, err)
	}
	w.assertLoopback(w.instances())
	m.waitJudged(svc, "healthy", len(insts), 20*time.Second)
	m.waitProbes(svc, 2*len(insts), 15*time.Second)

	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1 (no retries for a gone instance)", n)
	}
	mt := m.metrics()
	for _, r := range []string{"marked", "failed", "already_unhealthy"} {
		if v := mt.val("medic_heal_actions_total", "service", svc, "result", r); v != 0 {
			t.Errorf(`medic_heal_actions_total{result=%q} = %v, want 0`, r, v)
		}
	}
	if code, _, err := m.get("/-/healthy"); code != http.StatusOK {
		t.Errorf("/-/healthy: %d %v", code, err)
	}
	if len(m.logsWith("msg", "instance is gone, nothing to mark", "instance_id", victim)) != 1 {
		t.Errorf("want one 'instance is gone' log line for %s", victim)
	}
	w.assertOnlyUnhealthy()
}

// 9. The emulator throttling half of all calls: every intended mark still
// happens, exactly once.
//
// The proxy throttles every second call, medic's from its first. As that
// pattern may spare SetInstanceHealth by chance, the proxy also throttles
// the first SetInstanceHealth of each instance that gets past it, so each
// mark meets throttling at least once.
func TestE2EThrottledEmulatorStillMarksExactlyOnce(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	w.proxy.ThrottleFraction(0.5)
	var (
		mu        sync.Mutex
		throttled = map[string]int{} // by instance id: answered Throttling by the hook
		reached   = map[string]int{} // by instance id: forwarded to the emulator
	)
	w.proxy.OnAction("SetInstanceHealth", func(rw http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		v, _ := url.ParseQuery(string(b))
		id := v.Get("InstanceId")
		mu.Lock()
		defer mu.Unlock()
		if throttled[id] == 0 {
			throttled[id]++
			writeQueryError(rw, http.StatusBadRequest, "Throttling", "Rate exceeded")
			return true
		}
		reached[id]++
		return false
	})
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	victims := []string{insts[0].ID, insts[len(insts)-1].ID}
	if insts[0].AZ == insts[len(insts)-1].AZ {
		t.Fatalf("victims %v are in one AZ", victims)
	}
	for _, id := range victims {
		if err := w.app(id).Status(http.StatusInternalServerError); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range victims {
		w.waitUnhealthy(id, 30*time.Second)
	}
	m.waitProbes(svc, 2*len(insts), 15*time.Second)

	w.assertOnlyUnhealthy(victims...)
	mt := m.metrics()
	mu.Lock()
	t.Logf("SetInstanceHealth: %d received by the proxy, %d got past its throttling pattern, of which %v answered Throttling and %v reached the emulator; %d calls throttled by the pattern in all; medic counts SetInstanceHealth %v throttled, %v successful",
		w.proxy.Count("SetInstanceHealth"), w.proxy.Forwarded("SetInstanceHealth"), throttled, reached, w.proxy.Throttled(),
		mt.val("medic_aws_api_calls_total", "operation", "SetInstanceHealth", "result", "throttled"),
		mt.val("medic_aws_api_calls_total", "operation", "SetInstanceHealth", "result", "success"))
	for _, id := range victims {
		if reached[id] != 1 {
			t.Errorf("SetInstanceHealth of %s reached the emulator %d times, want exactly 1", id, reached[id])
		}
	}
	if len(reached) != len(victims) {
		t.Errorf("SetInstanceHealth reached the emulator for %v, want only %v", reached, victims)
	}
	mu.Unlock()
	if v := mt.val("medic_heal_actions_total", "service", svc, "result", "marked"); v != 2 {
		t.Errorf(`medic_heal_actions_total{result="marked"} = %v, want 2`, v)
	}
	if v := mt.val("medic_heal_actions_total", "service", svc, "result", "failed"); v != 0 {
		t.Errorf(`medic_heal_actions_total{result="failed"} = %v, want 0`, v)
	}
	if v := mt.val("medic_aws_api_calls_total", "operation", "SetInstanceHealth", "result", "throttled"); v < 2 {
		t.Errorf(`medic_aws_api_calls_total{operation="SetInstanceHealth",result="throttled"} = %v, want ≥ 2`, v)
	}
	if w.proxy.Throttled() == 0 {
		t.Errorf("the proxy's pattern throttled nothing")
	}
}

// 10. The emulator unreachable: no marks, medic stays up, /-/ready says
// why, and it recovers by itself when the emulator returns.
func TestE2EEmulatorUnreachable(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{}))
	insts := w.instances()
	victim := insts[0].ID

	w.proxy.SetDown(true)
	downAt := time.Now()
	var why string
	eventually(t, 20*time.Second, "/-/ready 503 naming discovery", func() (bool, string) {
		code, body, err := m.get("/-/ready")
		why = strings.TrimSpace(body)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "discovery"),
			fmt.Sprintf("%d %q %v", code, body, err)
	})
	t.Logf("%s after the emulator went away, /-/ready says: %s", time.Since(downAt).Round(time.Millisecond), why)
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	m.waitJudged(svc, "bad", 1, 15*time.Second)
	m.waitProbes(svc, 2*len(insts), 15*time.Second)
	if code, _, err := m.get("/-/healthy"); code != http.StatusOK {
		t.Errorf("/-/healthy while the emulator is away: %d %v", code, err)
	}
	mt := m.metrics()
	if v := mt.val("medic_heal_actions_total", "service", svc); v != 0 {
		t.Errorf("medic_heal_actions_total = %v while the emulator is away, want 0", v)
	}
	if v := mt.val("medic_aws_api_calls_total", "operation", "SetInstanceHealth"); v != 0 {
		t.Errorf("SetInstanceHealth attempted %v times while the emulator is away", v)
	}
	if v := mt.val("medic_ready"); v != 0 {
		t.Errorf("medic_ready = %v, want 0", v)
	}
	frozen := false
	for _, l := range m.logsWith("component", "healer", "level", "warn") {
		if strings.HasPrefix(fmt.Sprint(l["msg"]), "frozen") {
			frozen = true
		}
	}
	if !frozen {
		t.Errorf("no healer log line says it is frozen")
	}
	_, body, _ := m.get("/-/ready")
	t.Logf("%s after the emulator went away, /-/ready says: %s", time.Since(downAt).Round(time.Millisecond), strings.TrimSpace(body))

	w.proxy.SetDown(false)
	upAt := time.Now()
	m.waitReady()
	t.Logf("ready again %s after the emulator returned", time.Since(upAt).Round(time.Millisecond))
	w.waitUnhealthy(victim, 20*time.Second)
	m.waitProbes(svc, len(insts), 15*time.Second)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
	w.assertOnlyUnhealthy(victim)
}

// 11. --dry-run: no mutating call reaches the emulator; the would-be mark
// is counted and logged.
func TestE2EDryRunCallsNothingMutating(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{}), "--dry-run")
	victim := w.instances()[0].ID
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	m.waitMetric(15*time.Second, ge(1), "medic_heal_actions_total", "service", svc, "result", "dry_run")
	m.waitProbes(svc, 8, 15*time.Second)

	if n := w.proxy.MutatingCalls(); n != 0 {
		t.Errorf("%d mutating calls reached the proxy in dry-run: %v", n, w.proxy.Counts())
	}
	mt := m.metrics()
	if v := mt.val("medic_heal_actions_total", "service", svc, "result", "dry_run"); v != 1 {
		t.Errorf(`medic_heal_actions_total{result="dry_run"} = %v, want 1 (once per instance)`, v)
	}
	if v := mt.val("medic_heal_actions_total", "service", svc, "result", "marked"); v != 0 {
		t.Errorf(`medic_heal_actions_total{result="marked"} = %v in dry-run`, v)
	}
	if len(m.logsWith("msg", "dry run: would mark instance Unhealthy", "instance_id", victim)) != 1 {
		t.Errorf("want one 'dry run: would mark' log line for %s", victim)
	}
	w.assertOnlyUnhealthy()
}

// invalidConfigs are the files under testdata/, one per kind of mistake,
// with the line and field (for YAML syntax: the message) each must name.
var invalidConfigs = []struct {
	desc, file string
	line       int
	field      string
}{
	{"bad YAML", "invalid-yaml.yml", 3, "syntax error"},
	{"unknown key", "invalid-unknown-key.yml", 9, "services[0].instance_probe.intervall: unknown field"},
	{"bad duration", "invalid-duration.yml", 9, "services[0].instance_probe.timeout: "},
	{"no services", "invalid-no-services.yml", 5, "services: "},
	{"bad regex", "invalid-regex.yml", 9, "services[0].instance_probe.body_must_match: bad regular expression"},
	{"port out of range", "invalid-port-range.yml", 8, "services[0].instance_probe.port: 80800 is out of range"},
	{"endpoint outside allowed_networks", "invalid-endpoint-network.yml", 7, "services[0].endpoint: address 192.0.2.10 is outside global.allowed_networks"},
}

// 12. Invalid configs: --config.check and start-up both fail naming
// file:line and field; a reload with each (SIGHUP and POST /-/reload)
// keeps the old config running; a valid reload then succeeds.
func TestE2EInvalidConfigs(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 1})
	env := append(os.Environ(), w.proxy.Env()...)

	for _, tc := range invalidConfigs {
		path := filepath.Join("testdata", tc.file)
		want := fmt.Sprintf("%s:%d: %s", path, tc.line, tc.field)
		code, out := runToEnd(t, env, "--config.check", "--config.file="+path)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("%s: --config.check exited %d, want non-zero and output naming %q; got:\n%s", tc.desc, code, want, out)
		}
		code, out = runToEnd(t, env, "--config.file="+path, "--web.listen-address=127.0.0.1:0")
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("%s: start-up exited %d, want non-zero and output naming %q; got:\n%s", tc.desc, code, want, out)
		}
	}
	valid := w.config(cfgOpts{MaxUnhealthy: "1"}) // one of the two may be marked
	cfgFile := w.writeConfig("medic.yml", valid)
	if code, out := runToEnd(t, env, "--config.check", "--config.file="+cfgFile); code != 0 {
		t.Fatalf("--config.check of the valid config exited %d:\n%s", code, out)
	}

	m := w.startMedic(cfgFile)
	m.waitReady()
	m.waitJudged(svc, "healthy", len(w.instances()), 30*time.Second)
	reloadOK := func() float64 { return m.metrics().val("medic_config_last_reload_successful") }
	refusedBy := func(trigger string) int {
		return len(m.logsWith("msg", "config reload refused; the running config stays", "trigger", trigger))
	}

	for _, tc := range invalidConfigs {
		text, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s:%d: %s", cfgFile, tc.line, tc.field)

		// SIGHUP: refused, logged with the problem, the metric drops to 0.
		before := refusedBy("SIGHUP")
		w.writeConfig("medic.yml", string(text))
		if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, tc.desc+": SIGHUP reload refused", func() (bool, string) {
			return refusedBy("SIGHUP") > before, "no refusal logged"
		})
		if l := m.logsWith("msg", "config reload refused; the running config stays", "trigger", "SIGHUP"); !strings.Contains(fmt.Sprint(l[len(l)-1]["err"]), want) {
			t.Errorf("%s: SIGHUP refusal logged %q, want it to name %q", tc.desc, l[len(l)-1]["err"], want)
		}
		if v := reloadOK(); v != 0 {
			t.Errorf("%s: medic_config_last_reload_successful = %v after a refused SIGHUP reload, want 0", tc.desc, v)
		}

		// POST /-/reload: 500 with the problems, as Prometheus answers.
		code, body, err := m.reload()
		if code != http.StatusInternalServerError || !strings.Contains(body, want) {
			t.Errorf("%s: POST /-/reload = %d %q (%v), want 500 naming %q", tc.desc, code, body, err, want)
		}
		if v := reloadOK(); v != 0 {
			t.Errorf("%s: medic_config_last_reload_successful = %v after a refused POST reload, want 0", tc.desc, v)
		}
	}

	// The old config still runs: its service is probed and judged, and the
	// instances still have their series.
	m.waitProbes(svc, 2*len(w.instances()), 15*time.Second)
	mt := m.metrics()
	for _, in := range w.instances() {
		if _, ok := mt.sum("medic_probe_success", "service", svc, "instance_id", in.ID); !ok {
			t.Errorf("no medic_probe_success series for %s after the refused reloads", in.ID)
		}
	}
	if code, body, _ := m.get("/-/ready"); code != http.StatusOK {
		t.Errorf("/-/ready after refused reloads: %d %q", code, body)
	}
	// And still heals: an instance answering 500 is marked.
	victim := w.instances()[0].ID
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	w.waitUnhealthy(victim, 15*time.Second)

	// A valid reload succeeds and sets the metric back to 1.
	w.writeConfig("medic.yml", valid)
	if code, body, err := m.reload(); code != http.StatusOK {
		t.Errorf("POST /-/reload of the valid config = %d %q (%v), want 200", code, body, err)
	}
	if v := reloadOK(); v != 1 {
		t.Errorf("medic_config_last_reload_successful = %v after a valid reload, want 1", v)
	}
}

// 13. SIGTERM and SIGINT each end medic with exit 0 within 5s.
func TestE2ESignalsStopCleanly(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 1})
	cfgFile := w.writeConfig("medic.yml", w.config(cfgOpts{}))
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		m := w.startMedic(cfgFile)
		m.waitReady()
		m.waitJudged(svc, "healthy", len(w.instances()), 30*time.Second)
		m.stop(sig)
		if len(m.logsWith("msg", "stopped")) != 1 {
			t.Errorf("%v: no 'stopped' log line", sig)
		}
	}
}
