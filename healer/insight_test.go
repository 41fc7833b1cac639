package healer

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/probes"
)

// latencyWorld is a six-instance world whose cycles each add one passing
// probe per instance, lasting slow for the ids in slowIDs and 1 ms for the
// others, under a latency policy quick enough for a test.
func latencyWorld(t *testing.T, slow time.Duration, slowIDs ...string) (*scripted, *Healer, func() Report, *world) {
	t.Helper()
	act := newScripted(ResultMarked)
	h, _, clk, _ := newTestHealer(t, act)
	w := newWorld("web", 6, clk.Now())
	isSlow := map[string]bool{}
	for _, id := range slowIDs {
		isSlow[id] = true
	}
	cycle := func() Report {
		now := clk.Now()
		for _, inst := range w.instances {
			d := time.Millisecond
			if isSlow[inst.ID] {
				d = slow
			}
			w.history[inst.ID] = append(w.history[inst.ID], probes.Result{Start: now.Add(-time.Second), Duration: d, Success: true, StatusCode: 200})
		}
		in := w.input(now, "c")
		in.Policy.LatencyOutliers = config.LatencyOutliers{Enabled: true, Window: config.Duration(2 * time.Minute),
			Quantile: 0.5, MinSamples: 5, MinPeers: 2, RelativeMargin: 3, AbsoluteMargin: config.Duration(100 * time.Millisecond),
			DegradedFor: config.Duration(10 * time.Second)}
		in.Probe = config.Probe{Interval: config.Duration(time.Second), Timeout: config.Duration(800 * time.Millisecond)}
		rep := h.Cycle(context.Background(), in)
		clk.Advance(time.Second)
		return rep
	}
	return act, h, cycle, w
}

func TestCycleMarksALatencyOutlierAfterDegradedFor(t *testing.T) {
	act, _, cycle, _ := latencyWorld(t, 600*time.Millisecond, "i-3")
	var rep Report
	var degradedAt, markedAt = -1, -1
	for i := range 30 {
		rep = cycle()
		if degradedAt < 0 && len(rep.Insight.Outliers) > 0 {
			degradedAt = i
		}
		if markedAt < 0 && act.count("i-3") > 0 {
			markedAt = i
			break
		}
	}
	if degradedAt < 0 || markedAt < 0 {
		t.Fatalf("i-3 never marked (degraded at cycle %d); latency: %+v", degradedAt, rep.Insight.Latency)
	}
	if markedAt-degradedAt < 10 {
		t.Errorf("marked %d cycles (1 s each) after degrading, want at least degraded_for 10s", markedAt-degradedAt)
	}
	var v Verdict
	for _, x := range rep.Verdicts {
		if x.Instance.ID == "i-3" {
			v = x
		}
	}
	if v.Detector != DetectorLatencyOutlier || !strings.Contains(v.Reason, "latency outlier") || !strings.Contains(v.Reason, "600ms") {
		t.Errorf("verdict = %s %q by %q, want a latency outlier reason with the numbers", v.State, v.Reason, v.Detector)
	}
	for _, id := range []string{"i-1", "i-2", "i-4", "i-5", "i-6"} {
		if act.count(id) != 0 {
			t.Errorf("%s marked, only i-3 is slow", id)
		}
	}
	if got := rep.Insight.Scores; len(got) != 1 || got[0].Detector != DetectorLatencyOutlier || got[0].Marks != 1 || got[0].Pending != 1 {
		t.Errorf("scores = %+v, want one latency_outlier mark pending", got)
	}
}

func TestCycleAllSlowIsAServiceFindingNotAMark(t *testing.T) {
	act, h, cycle, _ := latencyWorld(t, 600*time.Millisecond, "i-1", "i-2", "i-3", "i-4", "i-5", "i-6")
	var rep Report
	for range 30 {
		rep = cycle()
	}
	if rep.Insight.Latency.Finding != FindingServiceSlow {
		t.Fatalf("finding = %s (%s), want service_slow", rep.Insight.Latency.Finding, rep.Insight.Latency.Reason)
	}
	for _, inst := range []string{"i-1", "i-2", "i-3", "i-4", "i-5", "i-6"} {
		if act.count(inst) != 0 {
			t.Errorf("%s marked in a slow service", inst)
		}
	}
	if got := testutil.ToFloat64(h.ins.finding.WithLabelValues("web", string(FindingServiceSlow))); got != 1 {
		t.Errorf("medic_latency_finding{finding=service_slow} = %g, want 1", got)
	}
}

func TestCycleEndpointFailingWhileInstancesPassIsTheLoadBalancers(t *testing.T) {
	act, h, clk, logs, w := badWorld(t, ResultMarked)
	w.probe("i-3", clk.Now(), "PPP")
	in := w.input(clk.Now(), "c")
	in.Endpoint = EndpointState{Configured: true, Healthy: false, Reason: "status 503"}
	for range 3 {
		rep := h.Cycle(context.Background(), in)
		if rep.Insight.Vantage.Verdict != VantageLBOrRouting || len(rep.Decision.Mark) != 0 {
			t.Fatalf("vantage = %+v, marks %d; want lb_or_routing_problem and no mark", rep.Insight.Vantage, len(rep.Decision.Mark))
		}
	}
	if n := strings.Count(logs.String(), "vantage: "); n != 1 {
		t.Errorf("logged the vantage verdict %d times, want once", n)
	}
	if len(act.calls) != 0 {
		t.Errorf("marked %v", act.calls)
	}
}

// quotaFacts is a PreflightSource with fixed facts: the group launches
// t3.micro (2 vCPUs) and the On-Demand Standard quota has left vCPUs.
// It counts the reads.
type quotaFacts struct {
	left  float64
	reads atomic.Int32
}

func (q *quotaFacts) PreflightInput(context.Context, string, string) (PreflightInput, error) {
	q.reads.Add(1)
	return PreflightInput{Types: []LaunchType{{InstanceType: "t3.micro", VCPUs: 2, QuotaClass: "standard"}},
		VCPU: map[string]VCPUHeadroom{"standard": {Name: VCPUQuotaNames["standard"], Left: q.left, Known: true}}}, nil
}

func TestCyclePreflightRefusesWhenNoReplacementCanLaunch(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		left   float64
		marked bool
	}{
		{"one vCPU left: a 2-vCPU replacement cannot launch", 1, false},
		{"exactly two left: it can", 2, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, _, clk, _, w := badWorld(t, ResultMarked)
			act := newScripted(ResultMarked)
			facts := &quotaFacts{left: tc.left}
			h := New(Options{Actuator: act, Now: clk.Now, Preflight: facts})
			rep := h.Cycle(context.Background(), w.input(clk.Now(), "c"))
			if got := act.count("i-3") > 0; got != tc.marked {
				t.Fatalf("marked = %t, want %t; refusals %+v", got, tc.marked, rep.Decision.Refusals)
			}
			if tc.marked {
				return
			}
			var r Refusal
			for _, x := range rep.Decision.Refusals {
				if x.Reason == PreflightRefused {
					r = x
				}
			}
			if !strings.Contains(r.Detail, "the On-Demand Standard vCPU quota has 1 vCPU left; a replacement needs 2 vCPUs (t3.micro)") ||
				len(r.Instances) != 1 || r.Instances[0] != "i-3" {
				t.Errorf("refusal = %+v, want the quota named", r)
			}
			// Refused again at the next cycles: the facts are re-read only
			// once PreflightReuse has passed.
			clk.Advance(PreflightReuse - time.Second)
			h.Cycle(context.Background(), w.input(clk.Now(), "c"))
			if n := facts.reads.Load(); n != 1 {
				t.Errorf("facts read %d times within PreflightReuse, want 1", n)
			}
			clk.Advance(time.Second)
			rep = h.Cycle(context.Background(), w.input(clk.Now(), "c"))
			if n := facts.reads.Load(); n != 2 || act.count("i-3") != 0 || len(rep.Insight.Preflight) != 1 {
				t.Errorf("after PreflightReuse: %d reads (want 2), i-3 marked %d times, preflight %+v", n, act.count("i-3"), rep.Insight.Preflight)
			}
		})
	}
}
