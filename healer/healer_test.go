package healer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/probes"
)

// world is a service's fleet and probe history as a test sets it up.
type world struct {
	service   string
	instances []discovery.Instance
	history   map[string][]probes.Result
}

// newWorld has n InService instances web-asg i-1..i-n launched long ago,
// alternating between two AZs, each with a passing history.
func newWorld(service string, n int, now time.Time) *world {
	w := &world{service: service, history: map[string][]probes.Result{}}
	for i := 1; i <= n; i++ {
		inst := inService(fmt.Sprintf("i-%d", i), "web-asg", now.Add(-time.Hour))
		if i%2 == 0 {
			inst.AZ = "us-east-1b"
		}
		w.instances = append(w.instances, inst)
		w.probe(inst.ID, now, "PPP")
	}
	return w
}

// probe replaces an instance's history with pattern, ending just before now.
func (w *world) probe(id string, now time.Time, pattern string) {
	w.history[id] = results(now.Add(-time.Duration(len(pattern))*time.Second), pattern)
}

func (w *world) input(now time.Time, rid string) CycleInput {
	return CycleInput{
		Service: w.service,
		Snapshot: discovery.Snapshot{
			Service:   w.service,
			Groups:    []discovery.Group{{Name: "web-asg", GracePeriod: 5 * time.Minute, Min: 1, Max: 10, Desired: len(w.instances)}},
			Instances: append([]discovery.Instance(nil), w.instances...),
			At:        now,
		},
		History:   w.history,
		Endpoint:  EndpointState{Configured: true, Healthy: true},
		Policy:    defaultPolicy(),
		RequestID: rid,
	}
}

func newTestHealer(t *testing.T, act Actuator) (*Healer, *prometheus.Registry, *testkit.Clock, *testkit.SyncBuffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	clk := testkit.NewClock(t0)
	logs := &testkit.SyncBuffer{}
	h := New(Options{Actuator: act, Logger: log.NewLogfmtLogger(logs), Registerer: reg, Now: clk.Now})
	return h, reg, clk, logs
}

func TestCycleMarksOnceNeverTwice(t *testing.T) {
	f := newFakeASG("i-1", "i-2", "i-3", "i-4", "i-5", "i-6", "i-7")
	h, reg, clk, logs := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	ctx := context.Background()
	w := newWorld("web", 6, clk.Now())
	w.probe("i-3", clk.Now(), "PFFF")

	r := h.Cycle(ctx, w.input(clk.Now(), "c1"))
	if o := r.Outcomes["i-3"]; o.Result != ResultMarked || o.Attempts != 1 || len(r.Outcomes) != 1 {
		t.Fatalf("cycle 1 outcomes = %+v, want i-3 marked", r.Outcomes)
	}
	if f.healthOf("i-3") != "Unhealthy" {
		t.Fatal("i-3 not Unhealthy in the fake")
	}

	// Discovery has not refreshed yet: the snapshot still says Healthy.
	for i := 2; i <= 4; i++ {
		clk.Advance(time.Second)
		r = h.Cycle(ctx, w.input(clk.Now(), fmt.Sprintf("c%d", i)))
		if len(r.Outcomes) != 0 || len(r.Decision.Mark) != 0 {
			t.Fatalf("cycle %d acted again: %+v", i, r.Outcomes)
		}
		for _, v := range r.Verdicts {
			if v.Instance.ID == "i-3" && (v.State != Bad || v.Instance.HealthStatus != "Unhealthy") {
				t.Errorf("cycle %d: i-3 reported %s/%s, want bad/Unhealthy", i, v.State, v.Instance.HealthStatus)
			}
		}
	}
	// Discovery catches up, then the group replaces i-3 with i-7.
	w.instances[2].HealthStatus = "Unhealthy"
	h.Cycle(ctx, w.input(clk.Now(), "c5"))
	w.instances[2].LifecycleState = "Terminating"
	h.Cycle(ctx, w.input(clk.Now(), "c6"))
	w.instances = append(w.instances[:2], w.instances[3:]...)
	w.instances = append(w.instances, inService("i-7", "web-asg", clk.Now()))
	r = h.Cycle(ctx, w.input(clk.Now(), "c7"))
	if len(r.Outcomes) != 0 {
		t.Fatalf("acted during replacement: %+v", r.Outcomes)
	}
	if got := f.callsByID["i-3"]; got != 1 {
		t.Errorf("SetInstanceHealth(i-3) called %d times, want 1", got)
	}

	// The newcomer fails past its grace period: a new instance, a new mark.
	clk.Advance(6 * time.Minute)
	w.probe("i-7", clk.Now(), "FFF")
	r = h.Cycle(ctx, w.input(clk.Now(), "c8"))
	if o := r.Outcomes["i-7"]; o.Result != ResultMarked {
		t.Fatalf("cycle 8 outcomes = %+v, want i-7 marked", r.Outcomes)
	}
	if r.ActionsLastHour != 2 {
		t.Errorf("ActionsLastHour = %d, want 2", r.ActionsLastHour)
	}

	want := `
# HELP medic_heal_actions_last_hour Marks in the sliding hour (rate-limit budget used).
# TYPE medic_heal_actions_last_hour gauge
medic_heal_actions_last_hour{service="web"} 2
# HELP medic_heal_actions_total Marking attempts by outcome.
# TYPE medic_heal_actions_total counter
medic_heal_actions_total{result="already_unhealthy",service="web"} 0
medic_heal_actions_total{result="dry_run",service="web"} 0
medic_heal_actions_total{result="failed",service="web"} 0
medic_heal_actions_total{result="gone",service="web"} 0
medic_heal_actions_total{result="marked",service="web"} 2
# HELP medic_instances Instances by judged state.
# TYPE medic_instances gauge
medic_instances{az="us-east-1a",service="web",state="bad"} 1
medic_instances{az="us-east-1a",service="web",state="grace"} 0
medic_instances{az="us-east-1a",service="web",state="healthy"} 2
medic_instances{az="us-east-1a",service="web",state="not_in_service"} 0
medic_instances{az="us-east-1a",service="web",state="suspect"} 0
medic_instances{az="us-east-1a",service="web",state="unknown"} 0
medic_instances{az="us-east-1b",service="web",state="bad"} 0
medic_instances{az="us-east-1b",service="web",state="grace"} 0
medic_instances{az="us-east-1b",service="web",state="healthy"} 3
medic_instances{az="us-east-1b",service="web",state="not_in_service"} 0
medic_instances{az="us-east-1b",service="web",state="suspect"} 0
medic_instances{az="us-east-1b",service="web",state="unknown"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"medic_heal_actions_total", "medic_heal_actions_last_hour", "medic_instances"); err != nil {
		t.Error(err)
	}
	// Every move is explained: the mark with its reason and request id.
	for _, s := range []string{
		`msg="marking bad instance Unhealthy" state=bad reason="3 consecutive failed probes (status 500, status 500, status 500) since`,
		"request_id=c1 instance_id=i-3 asg=web-asg az=us-east-1a",
		`msg="marking done" result=marked attempt=1`,
	} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("logs lack %q:\n%s", s, logs.String())
		}
	}
}

func TestCycleDryRunCallsNothing(t *testing.T) {
	h, reg, clk, _ := newTestHealer(t, DryRun(log.NewNopLogger()))
	w := newWorld("web", 6, clk.Now())
	w.probe("i-3", clk.Now(), "FFF")
	for i := range 3 {
		r := h.Cycle(context.Background(), w.input(clk.Now(), "c"))
		if i == 0 && r.Outcomes["i-3"].Result != ResultDryRun {
			t.Fatalf("outcomes = %+v, want i-3 dry_run", r.Outcomes)
		}
		if i > 0 && len(r.Outcomes) != 0 {
			t.Fatalf("cycle %d repeated the dry run: %+v", i, r.Outcomes)
		}
		for _, v := range r.Verdicts {
			if v.Instance.HealthStatus != "Healthy" {
				t.Errorf("cycle %d: %s reported %s after a dry run", i, v.Instance.ID, v.Instance.HealthStatus)
			}
		}
		clk.Advance(time.Second)
	}
	if got := testutil.ToFloat64(h.m.actions.WithLabelValues("web", "dry_run")); got != 1 {
		t.Errorf("dry_run actions = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.m.actions.WithLabelValues("web", "marked")); got != 0 {
		t.Errorf("marked actions = %v, want 0", got)
	}
	if got := testutil.ToFloat64(h.m.lastHour.WithLabelValues("web")); got != 1 {
		t.Errorf("actions last hour = %v, want 1 (dry-run marks use the budget)", got)
	}
	if n, err := testutil.GatherAndCount(reg, "medic_heal_actions_total"); err != nil || n != 5 {
		t.Errorf("medic_heal_actions_total series = %d (%v), want 5", n, err)
	}
}

func TestCycleRefusalEpisodes(t *testing.T) {
	f := newFakeASG("i-1", "i-2", "i-3", "i-4", "i-5", "i-6")
	h, reg, clk, logs := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	ctx := context.Background()
	w := newWorld("web", 6, clk.Now())
	for _, id := range []string{"i-1", "i-2", "i-3"} {
		w.probe(id, clk.Now(), "FFF")
	}
	// Three bad of six (34% allows 2): refused for five cycles, one episode.
	for range 5 {
		r := h.Cycle(ctx, w.input(clk.Now(), "c"))
		if len(r.Decision.Refusals) != 1 || r.Decision.Refusals[0].Reason != MaxUnhealthy {
			t.Fatalf("refusals = %+v, want max_unhealthy", r.Decision.Refusals)
		}
		clk.Advance(time.Second)
	}
	if f.callCount() != 0 {
		t.Fatalf("marked despite the refusal: %d calls", f.callCount())
	}
	refusals := func(reason RefusalReason) float64 {
		return testutil.ToFloat64(h.m.refusals.WithLabelValues("web", string(reason)))
	}
	refusing := func(reason RefusalReason) float64 {
		return testutil.ToFloat64(h.m.refusing.WithLabelValues("web", string(reason)))
	}
	if refusals(MaxUnhealthy) != 1 || refusing(MaxUnhealthy) != 1 {
		t.Errorf("max_unhealthy refusals_total = %v refusing = %v, want 1 and 1", refusals(MaxUnhealthy), refusing(MaxUnhealthy))
	}
	if n := strings.Count(logs.String(), "guard refuses to mark"); n != 3 {
		t.Errorf("logged %d refusal lines, want 3 (one per instance, once):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `msg="guard refuses to mark: 3 of 6 InService instances in web-asg are bad, above max_unhealthy 34% (2)" reason=max_unhealthy instance_id=i-1`) {
		t.Errorf("refusal line missing:\n%s", logs.String())
	}

	// One recovers: two bad of six is allowed; both are marked and the
	// refusal clears, logged once.
	w.probe("i-3", clk.Now(), "FFFPP")
	r := h.Cycle(ctx, w.input(clk.Now(), "c"))
	if len(r.Outcomes) != 2 {
		t.Fatalf("outcomes = %+v, want i-1 and i-2 marked", r.Outcomes)
	}
	h.Cycle(ctx, w.input(clk.Now(), "c"))
	if refusing(MaxUnhealthy) != 0 || refusals(MaxUnhealthy) != 1 {
		t.Errorf("after recovery refusing = %v total = %v, want 0 and 1", refusing(MaxUnhealthy), refusals(MaxUnhealthy))
	}
	if n := strings.Count(logs.String(), "guard no longer refuses"); n != 1 {
		t.Errorf("logged %d clear lines, want 1", n)
	}

	// A second episode counts again.
	w.probe("i-4", clk.Now(), "FFF")
	w.probe("i-5", clk.Now(), "FFF")
	h.Cycle(ctx, w.input(clk.Now(), "c"))
	if refusals(MaxUnhealthy) != 2 {
		t.Errorf("second episode: refusals_total = %v, want 2", refusals(MaxUnhealthy))
	}
	want := `
# HELP medic_guard_refusing 1 while the guard is refusing to mark for that reason.
# TYPE medic_guard_refusing gauge
medic_guard_refusing{reason="az_correlated",service="web"} 0
medic_guard_refusing{reason="last_healthy",service="web"} 0
medic_guard_refusing{reason="max_unhealthy",service="web"} 1
medic_guard_refusing{reason="rate_limit",service="web"} 0
medic_guard_refusing{reason="service_wide_failure",service="web"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "medic_guard_refusing"); err != nil {
		t.Error(err)
	}
}

func TestCycleRateLimitAcrossCycles(t *testing.T) {
	f := newFakeASG("i-1", "i-2", "i-3", "i-4", "i-5", "i-6")
	h, _, clk, _ := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	ctx := context.Background()
	w := newWorld("web", 6, clk.Now())
	w.probe("i-1", clk.Now(), "FFFF") // fails first
	w.probe("i-2", clk.Now(), "FFF")
	policy := func(in CycleInput) CycleInput {
		in.Policy.MaxActionsPerHour = 1
		return in
	}
	r := h.Cycle(ctx, policy(w.input(clk.Now(), "c1")))
	if len(r.Outcomes) != 1 || r.Outcomes["i-1"].Result != ResultMarked {
		t.Fatalf("cycle 1 outcomes = %+v, want i-1 marked (oldest failure first)", r.Outcomes)
	}
	if len(r.Decision.Refusals) != 1 || r.Decision.Refusals[0].Reason != RateLimit || r.Decision.Refusals[0].Instances[0] != "i-2" {
		t.Fatalf("cycle 1 refusals = %+v, want rate_limit for i-2", r.Decision.Refusals)
	}
	clk.Advance(59 * time.Minute)
	if r = h.Cycle(ctx, policy(w.input(clk.Now(), "c2"))); len(r.Outcomes) != 0 {
		t.Fatalf("59 minutes later: outcomes = %+v, want none", r.Outcomes)
	}
	clk.Advance(2 * time.Minute)
	if r = h.Cycle(ctx, policy(w.input(clk.Now(), "c3"))); r.Outcomes["i-2"].Result != ResultMarked {
		t.Fatalf("61 minutes later: outcomes = %+v, want i-2 marked", r.Outcomes)
	}
	if got := testutil.ToFloat64(h.m.refusals.WithLabelValues("web", string(RateLimit))); got != 1 {
		t.Errorf("rate_limit refusals_total = %v, want 1", got)
	}
}

func TestCycleFailedMarkCoolsDown(t *testing.T) {
	f := newFakeASG("i-1", "i-2", "i-3", "i-4", "i-5", "i-6")
	f.failNext = []error{apiError(403, "AccessDenied", "no")}
	h, _, clk, _ := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	w := newWorld("web", 6, clk.Now())
	w.probe("i-1", clk.Now(), "FFF")
	r := h.Cycle(context.Background(), w.input(clk.Now(), "c1"))
	if r.Outcomes["i-1"].Result != ResultFailed {
		t.Fatalf("outcomes = %+v, want i-1 failed", r.Outcomes)
	}
	clk.Advance(FailedCooldown - time.Second)
	if r = h.Cycle(context.Background(), w.input(clk.Now(), "c2")); len(r.Outcomes) != 0 {
		t.Fatalf("retried within the cooldown: %+v", r.Outcomes)
	}
	clk.Advance(time.Second)
	if r = h.Cycle(context.Background(), w.input(clk.Now(), "c3")); r.Outcomes["i-1"].Result != ResultMarked {
		t.Fatalf("after the cooldown: outcomes = %+v, want i-1 marked", r.Outcomes)
	}
	if got := testutil.ToFloat64(h.m.actions.WithLabelValues("web", "failed")); got != 1 {
		t.Errorf("failed actions = %v, want 1", got)
	}
}

func TestCycleServiceWideMarksNothing(t *testing.T) {
	f := newFakeASG("i-1", "i-2", "i-3")
	h, _, clk, logs := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	w := newWorld("web", 3, clk.Now())
	for _, id := range []string{"i-1", "i-2", "i-3"} {
		w.probe(id, clk.Now(), "TTT")
	}
	in := w.input(clk.Now(), "c1")
	in.Endpoint = EndpointState{Configured: true, Reason: "timeout"}
	r := h.Cycle(context.Background(), in)
	if f.callCount() != 0 || len(r.Decision.Refusals) != 1 || r.Decision.Refusals[0].Reason != ServiceWideFailure {
		t.Fatalf("calls = %d refusals = %+v, want none and service_wide_failure", f.callCount(), r.Decision.Refusals)
	}
	if !strings.Contains(logs.String(), "likely medic's network or a shared dependency") {
		t.Errorf("service-wide refusal not explained:\n%s", logs.String())
	}
}

func TestCycleMetricsFollowTheFleet(t *testing.T) {
	h, reg, clk, _ := newTestHealer(t, DryRun(nil))
	w := newWorld("web", 2, clk.Now()) // i-1 in 1a, i-2 in 1b
	h.Cycle(context.Background(), w.input(clk.Now(), "c1"))
	if n, _ := testutil.GatherAndCount(reg, "medic_instances"); n != 12 {
		t.Fatalf("medic_instances series = %d, want 12 (2 AZs × 6 states)", n)
	}
	w.instances = w.instances[:1] // the AZ 1b instance leaves
	h.Cycle(context.Background(), w.input(clk.Now(), "c2"))
	if n, _ := testutil.GatherAndCount(reg, "medic_instances"); n != 6 {
		t.Errorf("medic_instances series = %d, want 6 after an AZ emptied", n)
	}
	h.Forget("web")
	for _, name := range []string{"medic_instances", "medic_heal_actions_total", "medic_guard_refusals_total", "medic_guard_refusing", "medic_heal_actions_last_hour"} {
		if n, _ := testutil.GatherAndCount(reg, name); n != 0 {
			t.Errorf("after Forget %s has %d series, want 0", name, n)
		}
	}
}

func TestCycleConcurrentServices(t *testing.T) {
	f := newFakeASG()
	h, _, clk, _ := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	var wg sync.WaitGroup
	for s := range 4 {
		svc := fmt.Sprintf("svc-%d", s)
		w := newWorld(svc, 6, clk.Now())
		for i := range w.instances {
			w.instances[i].ID = svc + "-" + w.instances[i].ID
		}
		f.mu.Lock()
		for _, inst := range w.instances {
			f.health[inst.ID] = "Healthy"
		}
		f.mu.Unlock()
		hist := map[string][]probes.Result{}
		for i, inst := range w.instances {
			hist[inst.ID] = results(t0, map[bool]string{true: "FFF", false: "PPP"}[i == 0])
		}
		w.history = hist
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range 20 {
				h.Cycle(context.Background(), w.input(clk.Now(), fmt.Sprint(c)))
				if c == 10 && s == 0 {
					h.Forget(svc)
				}
			}
		}()
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range 4 {
		id := fmt.Sprintf("svc-%d-i-1", s)
		// Forget drops svc-0's memory, but the actuator's re-read finds the
		// instance Unhealthy already: one call each.
		want := 1
		if f.callsByID[id] != want {
			t.Errorf("%s marked %d times, want %d", id, f.callsByID[id], want)
		}
	}
}

func TestCycleFrozenActsOnNothing(t *testing.T) {
	f := newFakeASG("i-1", "i-2", "i-3", "i-4", "i-5", "i-6")
	h, _, clk, logs := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	w := newWorld("web", 6, clk.Now())
	w.probe("i-1", clk.Now(), "FFF")
	for range 3 {
		in := w.input(clk.Now(), "c1")
		in.Frozen, in.FrozenReason = true, "the fleet has not been read from AWS recently"
		r := h.Cycle(context.Background(), in)
		if !r.Frozen || len(r.Outcomes) != 0 || len(r.Decision.Mark) != 1 || r.RequestID != "c1" {
			t.Fatalf("frozen report = %+v, want frozen, no outcomes, i-1 allowed by the guard", r)
		}
	}
	if f.callCount() != 0 {
		t.Fatalf("frozen cycle called AWS %d times", f.callCount())
	}
	if n := strings.Count(logs.String(), "frozen: judging but not acting: the fleet has not been read from AWS recently"); n != 1 {
		t.Errorf("logged freezing %d times, want once", n)
	}
	r := h.Cycle(context.Background(), w.input(clk.Now(), "c2"))
	if r.Frozen || r.Outcomes["i-1"].Result != ResultMarked {
		t.Fatalf("after thawing: %+v, want i-1 marked", r.Outcomes)
	}
	if !strings.Contains(logs.String(), "no longer frozen") {
		t.Error("thaw not logged")
	}
}
