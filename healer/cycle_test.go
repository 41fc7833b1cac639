package healer

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/testkit"
	"github.com/medic-sre/medic/probes"
)

// scripted is an Actuator whose answer the test sets; it counts calls per
// instance. A hand-written stand-in: these tests are about the healer's
// memory, not AWS (act_test.go covers the real actuator on moto).
type scripted struct {
	mu     sync.Mutex
	result ActionResult
	calls  map[string]int
}

func newScripted(r ActionResult) *scripted { return &scripted{result: r, calls: map[string]int{}} }

func (s *scripted) MarkUnhealthy(_ context.Context, inst discovery.Instance, _ string) Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[inst.ID]++
	o := Outcome{Result: s.result, Attempts: 1}
	if s.result == ResultFailed {
		o.Err = context.DeadlineExceeded
	}
	return o
}

func (s *scripted) set(r ActionResult) { s.mu.Lock(); s.result = r; s.mu.Unlock() }

func (s *scripted) count(id string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls[id] }

// badWorld is a healer acting through a scripted actuator answering r, and
// a fleet of six where i-3 has just failed unhealthy_after probes.
func badWorld(t *testing.T, r ActionResult) (*scripted, *Healer, *testkit.Clock, *testkit.SyncBuffer, *world) {
	t.Helper()
	act := newScripted(r)
	h, _, clk, logs := newTestHealer(t, act)
	w := newWorld("web", 6, clk.Now())
	w.probe("i-3", clk.Now(), "FFF")
	return act, h, clk, logs, w
}

// resultStandby stands for what a leader-only wrapper answers on a replica
// that does not lead: any result other than the real ones is a report.
const resultStandby ActionResult = "standby"

func TestCycleStandbyOrDryRunIsAReportNotState(t *testing.T) {
	act, h, clk, logs, w := badWorld(t, resultStandby)
	ctx := context.Background()
	for i := range 3 {
		r := h.Cycle(ctx, w.input(clk.Now(), "c"))
		if got := len(r.Outcomes); (i == 0) != (got == 1) {
			t.Fatalf("cycle %d: outcomes = %+v, want the standby report once", i, r.Outcomes)
		}
		if r.ActionsLastHour != 0 {
			t.Fatalf("cycle %d: a standby's report spent budget: %d", i, r.ActionsLastHour)
		}
		clk.Advance(time.Second)
	}
	if n := strings.Count(logs.String(), `msg="marking bad instance Unhealthy"`); n != 1 {
		t.Errorf("logged the would-be mark %d times, want once", n)
	}
	// This replica leads now: it decides afresh and marks, once.
	act.set(ResultMarked)
	r := h.Cycle(ctx, w.input(clk.Now(), "c"))
	if r.Outcomes["i-3"].Result != ResultMarked || r.ActionsLastHour != 1 {
		t.Fatalf("after taking the lead: outcomes = %+v, actions = %d, want i-3 marked", r.Outcomes, r.ActionsLastHour)
	}
	clk.Advance(time.Second)
	h.Cycle(ctx, w.input(clk.Now(), "c"))
	if got := act.count("i-3"); got != 4 {
		t.Errorf("MarkUnhealthy(i-3) called %d times, want 4 (3 as standby, 1 as leader, none after)", got)
	}
}

func TestCycleRetryBackoffGrows(t *testing.T) {
	act, h, clk, _, w := badWorld(t, ResultFailed)
	ctx := context.Background()
	steps := []struct {
		desc    string
		advance time.Duration
		calls   int
	}{
		{"first try fails", 0, 1},
		{"1s later: within 2s", time.Second, 1},
		{"2s after the failure: retried, fails again", time.Second, 2},
		{"4s after the 2nd failure, an instant before: waits", 4*time.Second - time.Nanosecond, 2},
		{"4s after the 2nd failure: retried", time.Nanosecond, 3},
		{"8s later: retried", 8 * time.Second, 4},
		{"16s later: retried", 16 * time.Second, 5},
		{"30s later (capped): retried", 30 * time.Second, 6},
		{"30s later again (capped): retried", 30 * time.Second, 7},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		w.probe("i-3", clk.Now(), "FFF")
		h.Cycle(ctx, w.input(clk.Now(), "c"))
		if got := act.count("i-3"); got != s.calls {
			t.Fatalf("%s: %d calls, want %d", s.desc, got, s.calls)
		}
	}
	act.set(ResultMarked)
	clk.Advance(RetryMax)
	w.probe("i-3", clk.Now(), "FFF")
	if r := h.Cycle(ctx, w.input(clk.Now(), "c")); r.Outcomes["i-3"].Result != ResultMarked {
		t.Fatalf("once AWS answers: outcomes = %+v, want marked", r.Outcomes)
	}
}

func TestCycleStopsWhenReplacementsFail(t *testing.T) {
	_, h, clk, logs, w := badWorld(t, ResultMarked)
	ctx := context.Background()
	group := func(in CycleInput) CycleInput {
		in.Snapshot.Groups[0].LaunchTemplate, in.Snapshot.Groups[0].LaunchTemplateVersion = "web-lt", "7"
		in.Snapshot.Groups[0].Desired = 6 // i-3 terminating is not part of it
		return in
	}
	if r := h.Cycle(ctx, group(w.input(clk.Now(), "c1"))); r.Outcomes["i-3"].Result != ResultMarked {
		t.Fatalf("outcomes = %+v, want i-3 marked", r.Outcomes)
	}
	// The group replaces i-3 with i-7, which comes up broken.
	clk.Advance(time.Minute)
	w.instances[2].HealthStatus = "Unhealthy"
	w.instances[2].LifecycleState = "Terminating"
	i7 := inService("i-7", "web-asg", clk.Now())
	i7.InServiceSince, i7.ImageID, i7.LaunchTemplate, i7.LaunchTemplateVersion = clk.Now(), "ami-0bad", "web-lt", "7"
	w.instances = append(w.instances, i7)
	h.Cycle(ctx, group(w.input(clk.Now(), "c2")))
	clk.Advance(5*time.Minute + 3*time.Second) // past its 5m grace
	w.probe("i-7", clk.Now(), "FFF")
	w.probe("i-1", clk.Now(), "FFF") // and another instance goes bad
	r := h.Cycle(ctx, group(w.input(clk.Now(), "c3")))
	if len(r.Outcomes) != 0 {
		t.Fatalf("marked while replacements fail: %+v", r.Outcomes)
	}
	var stop *Refusal
	for i, ref := range r.Decision.Refusals {
		if ref.Reason == ReplacementsFailing {
			stop = &r.Decision.Refusals[i]
		}
	}
	if stop == nil || !stop.NeedsAction || !strings.Contains(stop.Detail, "launches from web-lt version 7") ||
		len(stop.Evidence) != 1 || !strings.Contains(stop.Evidence[0], "i-7 (us-east-1a, image ami-0bad") {
		t.Fatalf("refusals = %+v, want replacements_failing naming the launch template, with i-7's image as evidence", r.Decision.Refusals)
	}
	if strings.Count(logs.String(), "marking stopped in group") != 1 {
		t.Errorf("want one log line for the stop:\n%s", logs.String())
	}
	// Still stopped a cycle later; one episode.
	clk.Advance(time.Second)
	h.Cycle(ctx, group(w.input(clk.Now(), "c4")))
	if got := testutil.ToFloat64(h.m.refusals.WithLabelValues("web", string(ReplacementsFailing))); got != 1 {
		t.Errorf("replacements_failing episodes = %v, want 1", got)
	}
	// A person pauses the group (tag), then removes the tag: marking resumes.
	in := group(w.input(clk.Now(), "c5"))
	in.Snapshot.Groups[0].Tags = map[string]string{PauseTag: "true"}
	h.Cycle(ctx, in)
	clk.Advance(time.Second)
	// Unpaused, with i-7 still bad: medic starts afresh and marks both.
	r = h.Cycle(ctx, group(w.input(clk.Now(), "c6")))
	if r.Outcomes["i-1"].Result != ResultMarked || r.Outcomes["i-7"].Result != ResultMarked {
		t.Fatalf("after the pause was lifted: outcomes = %+v refusals = %+v, want i-1 and i-7 marked", r.Outcomes, r.Decision.Refusals)
	}
}

func TestCycleStopResumesWhenAReplacementRecovers(t *testing.T) {
	_, h, clk, logs, w := badWorld(t, ResultMarked)
	ctx := context.Background()
	h.Cycle(ctx, w.input(clk.Now(), "c1"))
	clk.Advance(time.Minute)
	w.instances = append(w.instances, inService("i-7", "web-asg", clk.Now()))
	clk.Advance(6 * time.Minute)
	w.probe("i-7", clk.Now(), "FFF")
	r := h.Cycle(ctx, w.input(clk.Now(), "c2"))
	if len(r.Decision.Refusals) == 0 || r.Decision.Refusals[0].Reason != ReplacementsFailing {
		t.Fatalf("refusals = %+v, want replacements_failing", r.Decision.Refusals)
	}
	clk.Advance(2 * time.Second)
	w.probe("i-7", clk.Now(), "FFFPP")
	r = h.Cycle(ctx, w.input(clk.Now(), "c3"))
	for _, ref := range r.Decision.Refusals {
		if ref.Reason == ReplacementsFailing {
			t.Fatalf("still stopped after i-7 recovered: %+v", ref)
		}
	}
	if !strings.Contains(logs.String(), "marking resumed in group: replacement i-7 is healthy") {
		t.Errorf("no resume line:\n%s", logs.String())
	}
}

func TestCycleOnObservedResults(t *testing.T) {
	h, _, clk, _ := newTestHealer(t, newScripted(ResultMarked))
	ctx := context.Background()
	w := newWorld("web", 6, clk.Now())
	probe := config.Probe{Interval: config.Duration(time.Second), Timeout: config.Duration(500 * time.Millisecond)}
	in := func() CycleInput {
		in := w.input(clk.Now(), "c")
		in.History, in.Probe = nil, probe
		return in
	}
	h.Cycle(ctx, in()) // takes the policy
	observe := func(id string, ok bool) bool {
		return h.Observe("web", probes.Target{Key: "web/" + id, Service: "web", InstanceID: id, Settings: &probe},
			probes.Result{Start: clk.Now(), Success: ok, Reason: map[bool]string{false: "timeout"}[ok]})
	}
	for i := range 3 {
		clk.Advance(time.Second)
		for _, inst := range w.instances {
			observe(inst.ID, inst.ID != "i-2")
		}
		r := h.Cycle(ctx, in())
		if marked := r.Outcomes["i-2"].Result == ResultMarked; marked != (i == 2) {
			t.Fatalf("after %d failures: outcomes = %+v", i+1, r.Outcomes)
		}
	}
	// Without results for longer than 2 intervals + timeout: unknown, never healthy.
	clk.Advance(3 * time.Second)
	for _, v := range h.Cycle(ctx, in()).Verdicts {
		if v.State != Unknown {
			t.Fatalf("%s judged %s on stale results, want unknown", v.Instance.ID, v.State)
		}
	}
	// An instance that leaves the snapshot is forgotten.
	w.instances = w.instances[1:]
	h.Cycle(ctx, in())
	o := h.observedFor("web")
	o.mu.Lock()
	_, kept := o.dets["i-1"]
	n := len(o.dets)
	o.mu.Unlock()
	if kept || n != 5 {
		t.Errorf("records kept: i-1 %t, %d in all, want i-1 gone and 5", kept, n)
	}
}

func TestObserveWakes(t *testing.T) {
	p := ParamsFor(config.Policy{}, config.Probe{Interval: config.Duration(time.Second)})
	long := ParamsFor(config.Policy{UnhealthyAfter: 10}, config.Probe{Interval: config.Duration(time.Second)})
	tests := []struct {
		desc    string
		params  DetectorParams
		pattern string // P pass, F fail, _ a skipped slot
		wakes   string // per result: w wakes, . does not
	}{
		{"the first result wakes, steady passes do not", p, "PPPPP", "w...."},
		{"the first failure and each from unhealthy_after on", p, "PPFFFFF", "w.w.www"},
		{"the first pass after a short failing run, not healthy_after", p, "PFFPPP", "ww.w.."},
		{"after a bad run: the first pass and healthy_after passes", p, "PFFFPPP", "ww.www."},
		{"a missed slot wakes, and healthy_after fresh results", p, "PP_PPP", "w.ww."},
		{"the ratio rule's threshold crossed (9 of 15), unhealthy_after 10", long,
			"PPPPPPPPPPPPPPPFFFFFFFFF", "w..............w.......w"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d := &Detector{}
			var got strings.Builder
			for _, r := range results(t0, tc.pattern) {
				if d.Add(r, tc.params) {
					got.WriteByte('w')
				} else {
					got.WriteByte('.')
				}
			}
			if want := tc.wakes; got.String() != want {
				t.Errorf("wakes = %s, want %s", got.String(), want)
			}
		})
	}
}

func TestDetectorIsSmall(t *testing.T) {
	if size := unsafe.Sizeof(Detector{}); size > 768 {
		t.Errorf("Detector is %d bytes, want well under 1 KiB", size)
	}
}

func TestCycleSpreadThinRefusesOnceAndSaysWhy(t *testing.T) {
	h, _, clk, logs := newTestHealer(t, newScripted(ResultMarked))
	ctx := context.Background()
	w := newWorld("web", 6, clk.Now())
	// Four of six lose a probe here and there (medic's own network): none
	// stands out.
	for _, id := range []string{"i-1", "i-2", "i-4", "i-5"} {
		w.probe(id, clk.Now(), "PPPFPPPPFPPPPPFPPPPF")
	}
	for range 3 {
		r := h.Cycle(ctx, w.input(clk.Now(), "c"))
		if len(r.Outcomes) != 0 || len(r.Decision.Refusals) != 1 || r.Decision.Refusals[0].Reason != SpreadThin {
			t.Fatalf("outcomes = %+v refusals = %+v, want nothing marked and spread_thin", r.Outcomes, r.Decision.Refusals)
		}
		clk.Advance(time.Second)
	}
	if got := testutil.ToFloat64(h.m.refusing.WithLabelValues("web", string(SpreadThin))); got != 1 {
		t.Errorf("medic_guard_refusing{reason=spread_thin} = %v, want 1", got)
	}
	if n := strings.Count(logs.String(), "guard starts refusing: failures are spread thinly: 4 of 6 probed instances"); n != 1 {
		t.Errorf("want one start line, got %d:\n%s", n, logs.String())
	}
	// The losses stop: the refusal ends, logged once.
	for _, id := range []string{"i-1", "i-2", "i-4", "i-5"} {
		w.probe(id, clk.Now(), "PPPPPPPPPPPPPPPPPPPP")
	}
	h.Cycle(ctx, w.input(clk.Now(), "c"))
	if n := strings.Count(logs.String(), `msg="guard no longer refuses" reason=spread_thin`); n != 1 {
		t.Errorf("want one end line, got %d", n)
	}
}

func TestCycleAReplacementThatServedThenBrokeIsNoFailedReplacement(t *testing.T) {
	_, h, clk, _, w := badWorld(t, ResultMarked)
	ctx := context.Background()
	h.Cycle(ctx, w.input(clk.Now(), "c1")) // marks i-3
	clk.Advance(time.Minute)
	w.instances = append(w.instances, inService("i-7", "web-asg", clk.Now()))
	clk.Advance(6 * time.Minute)
	w.probe("i-7", clk.Now(), "PPP")
	h.Cycle(ctx, w.input(clk.Now(), "c2")) // i-7 serves
	clk.Advance(10 * time.Second)
	w.probe("i-7", clk.Now(), "PPPFFF")
	r := h.Cycle(ctx, w.input(clk.Now(), "c3"))
	if r.Outcomes["i-7"].Result != ResultMarked {
		t.Fatalf("outcomes = %+v refusals = %+v, want i-7 marked: it served, then broke on its own", r.Outcomes, r.Decision.Refusals)
	}
}

func TestObserveEndpointWakesOnChange(t *testing.T) {
	h, _, _, _ := newTestHealer(t, newScripted(ResultMarked))
	ep := probes.Target{Key: "web/endpoint", Service: "web"}
	steps := []struct {
		desc string
		ok   bool
		wake bool
	}{
		{"first result", true, true},
		{"still passing", true, false},
		{"fails", false, true},
		{"still failing", false, false},
		{"passes again", true, true},
	}
	for _, s := range steps {
		if got := h.Observe("web", ep, probes.Result{Start: t0, Success: s.ok}); got != s.wake {
			t.Errorf("%s: wake = %t, want %t", s.desc, got, s.wake)
		}
	}
}
