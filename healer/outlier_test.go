package healer

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/probes"
)

// latNow is the clock of the latency tests.
var latNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// latWin is a window of probes every 2 s up to latNow, oldest first.
func latWin(ds ...time.Duration) *LatencyWindow {
	w := &LatencyWindow{}
	for i, d := range ds {
		w.Add(latNow.Add(-time.Duration(len(ds)-1-i)*2*time.Second), d)
	}
	return w
}

// latSame is a window of n probes of d each.
func latSame(n int, d time.Duration) *LatencyWindow {
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = d
	}
	return latWin(ds...)
}

// latFleet is n instances i-0 … i-(n-1) with windows of 20 probes of d.
func latFleet(n int, d time.Duration) map[string]*LatencyWindow {
	m := map[string]*LatencyWindow{}
	for i := range n {
		m[fmt.Sprintf("i-%d", i)] = latSame(20, d)
	}
	return m
}

func with(m map[string]*LatencyWindow, id string, w *LatencyWindow) map[string]*LatencyWindow {
	m[id] = w
	return m
}

const ms = time.Millisecond

func TestLatencyWindow(t *testing.T) {
	w := &LatencyWindow{}
	if d, n := w.Quantile(0.5, time.Time{}); d != 0 || n != 0 {
		t.Fatalf("empty window: %s, %d", d, n)
	}
	// 70 samples: 1..70 ms, one per second ending at latNow; the ring keeps 7..70.
	for i := 1; i <= 70; i++ {
		w.Add(latNow.Add(time.Duration(i-70)*time.Second), time.Duration(i)*ms)
	}
	w.AddResult(probes.Result{Start: latNow, Duration: time.Hour, Success: false}) // skipped
	tests := []struct {
		desc  string
		q     float64
		since time.Time
		want  time.Duration
		n     int
	}{
		{"median of the 64 kept", 0.5, time.Time{}, 38500 * time.Microsecond, 64},
		{"min", 0, time.Time{}, 7 * ms, 64},
		{"max", 1, time.Time{}, 70 * ms, 64},
		{"last 10 seconds: 60..70", 0.5, latNow.Add(-10 * time.Second), 65 * ms, 11},
		{"nothing in the future", 0.5, latNow.Add(time.Second), 0, 0},
	}
	for _, tt := range tests {
		got, n := w.Quantile(tt.q, tt.since)
		if got != tt.want || n != tt.n {
			t.Errorf("%s: got %s over %d, want %s over %d", tt.desc, got, n, tt.want, tt.n)
		}
	}
	if w.Len() != LatencyWindowSize {
		t.Errorf("Len %d, want %d", w.Len(), LatencyWindowSize)
	}
}

func TestDetectLatencyOutliers(t *testing.T) {
	def := DefaultOutlierPolicy()
	oneSlowProbe := make([]time.Duration, 20)
	for i := range oneSlowProbe {
		oneSlowProbe[i] = ms
	}
	oneSlowProbe[7] = time.Second
	tests := []struct {
		desc     string
		windows  map[string]*LatencyWindow
		policy   func(*OutlierPolicy)
		timeout  time.Duration
		finding  LatencyFinding
		outliers []string
		status   map[string]LatencyStatus // spot checks
	}{
		{desc: "one 600ms instance among five 1ms peers is the outlier",
			windows: with(latFleet(5, ms), "slow", latSame(20, 600*ms)), timeout: 800 * ms,
			finding: FindingOutliers, outliers: []string{"slow"}, status: map[string]LatencyStatus{"i-0": LatencyNormal}},
		{desc: "two peers only: the minimum, judged",
			windows: with(latFleet(2, ms), "slow", latSame(20, 600*ms)), timeout: 800 * ms,
			finding: FindingOutliers, outliers: []string{"slow"}},
		{desc: "one peer only: too few peers, nobody judged",
			windows: with(latFleet(1, ms), "slow", latSame(20, 600*ms)), timeout: 800 * ms,
			finding: FindingInsufficient, status: map[string]LatencyStatus{"slow": LatencyTooFewPeers, "i-0": LatencyTooFewPeers}},
		{desc: "all slow: the service is slow, no outlier",
			windows: latFleet(6, 600*ms), timeout: 800 * ms,
			finding: FindingServiceSlow, status: map[string]LatencyStatus{"i-0": LatencyNormal}},
		{desc: "all slow and one slower still: still the service, not the instance",
			windows: with(latFleet(5, 600*ms), "slower", latSame(20, 2*time.Second)), timeout: 3 * time.Second,
			policy:  func(p *OutlierPolicy) { p.SlowService = 500 * ms },
			finding: FindingServiceSlow, status: map[string]LatencyStatus{"slower": LatencyNotJudged}},
		{desc: "slow fleet but no probe timeout and no slow_service: no service check, nothing stands out",
			windows: latFleet(6, 600*ms), finding: FindingNone},
		{desc: "half the fleet stands out: widespread, no outlier",
			windows: with(with(with(latFleet(3, ms), "s1", latSame(20, 300*ms)), "s2", latSame(20, 300*ms)), "s3", latSame(20, 300*ms)),
			timeout: 800 * ms, finding: FindingWidespread, status: map[string]LatencyStatus{"s1": LatencyNotJudged}},
		{desc: "two of five stand out: a minority, both outliers",
			windows: with(with(latFleet(3, ms), "s1", latSame(20, 300*ms)), "s2", latSame(20, 300*ms)),
			timeout: 800 * ms, finding: FindingOutliers, outliers: []string{"s1", "s2"}},
		{desc: "one slow probe in a window does not move the median",
			windows: with(latFleet(5, ms), "spiky", latWin(oneSlowProbe...)), timeout: 800 * ms,
			finding: FindingNone, status: map[string]LatencyStatus{"spiky": LatencyNormal}},
		{desc: "exactly at both margins (150ms = 3 × 50ms, +100ms): outlier",
			windows: with(latFleet(4, 50*ms), "edge", latSame(20, 150*ms)), timeout: 800 * ms,
			finding: FindingOutliers, outliers: []string{"edge"}},
		{desc: "just under the relative margin (149.999ms): normal",
			windows: with(latFleet(4, 50*ms), "edge", latSame(20, 149999*time.Microsecond)), timeout: 800 * ms,
			finding: FindingNone},
		{desc: "relative margin met, just under the absolute (99.999ms over 1ms peers... 100.999ms total): normal",
			windows: with(latFleet(4, ms), "edge", latSame(20, 100999*time.Microsecond)), timeout: 800 * ms,
			finding: FindingNone},
		{desc: "exactly at the absolute margin over 1ms peers (101ms): outlier",
			windows: with(latFleet(4, ms), "edge", latSame(20, 101*ms)), timeout: 800 * ms,
			finding: FindingOutliers, outliers: []string{"edge"}},
		{desc: "absolute margin met, relative not (250ms over 100ms peers): normal",
			windows: with(latFleet(4, 100*ms), "edge", latSame(20, 250*ms)), timeout: 800 * ms,
			finding: FindingNone},
		{desc: "too few samples: the slow one has 9, not judged; the rest are fine",
			windows: with(latFleet(5, ms), "slow", latSame(9, 600*ms)), timeout: 800 * ms,
			finding: FindingNone, status: map[string]LatencyStatus{"slow": LatencyTooFewSamples}},
		{desc: "exactly min_samples (10): judged",
			windows: with(latFleet(5, ms), "slow", latSame(10, 600*ms)), timeout: 800 * ms,
			finding: FindingOutliers, outliers: []string{"slow"}},
		{desc: "old samples fall out of the window",
			windows: with(latFleet(5, ms), "slow", latSame(20, 600*ms)), timeout: 800 * ms,
			policy:  func(p *OutlierPolicy) { p.Window = 10 * time.Second },
			finding: FindingInsufficient, status: map[string]LatencyStatus{"slow": LatencyTooFewSamples}},
		{desc: "too few samples everywhere: insufficient",
			windows: map[string]*LatencyWindow{"a": latSame(3, ms), "b": latSame(3, ms), "c": nil},
			finding: FindingInsufficient, status: map[string]LatencyStatus{"c": LatencyTooFewSamples}},
		{desc: "no instances", windows: nil, finding: FindingInsufficient},
		{desc: "min_peers 0 counts as 1: a lone instance is never judged",
			windows: map[string]*LatencyWindow{"slow": latSame(20, 600*ms)}, timeout: 800 * ms,
			policy:  func(p *OutlierPolicy) { p.MinPeers = 0 },
			finding: FindingInsufficient, status: map[string]LatencyStatus{"slow": LatencyTooFewPeers}},
		{desc: "disabled", windows: with(latFleet(5, ms), "slow", latSame(20, 600*ms)),
			policy: func(p *OutlierPolicy) { p.Enabled = false }, finding: FindingDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			p := def
			if tt.policy != nil {
				tt.policy(&p)
			}
			rep := DetectLatencyOutliers(DetectInput{Windows: tt.windows, Policy: p, ProbeTimeout: tt.timeout, Now: latNow})
			if rep.Finding != tt.finding {
				t.Errorf("finding %s, want %s (%s)", rep.Finding, tt.finding, rep.Reason)
			}
			if got := rep.Outliers(); !reflect.DeepEqual(got, tt.outliers) {
				t.Errorf("outliers %v, want %v", got, tt.outliers)
			}
			byID := map[string]LatencyStanding{}
			for _, s := range rep.Standings {
				byID[s.InstanceID] = s
			}
			for id, want := range tt.status {
				if got := byID[id]; got.Status != want {
					t.Errorf("%s: status %s, want %s (%s)", id, got.Status, want, got.Reason)
				}
			}
			if rep.Reason == "" {
				t.Error("empty report reason")
			}
		})
	}
}

func TestLatencyStandingReason(t *testing.T) {
	rep := DetectLatencyOutliers(DetectInput{Windows: with(latFleet(5, ms), "slow", latSame(20, 600*ms)),
		Policy: DefaultOutlierPolicy(), ProbeTimeout: 800 * ms, Now: latNow})
	s := rep.Standings[len(rep.Standings)-1]
	want := "median latency 600ms over 20 probes, 600.0× its 5 peers' 1ms (margins 3× and +100ms): above both margins"
	if s.InstanceID != "slow" || s.Reason != want || s.PeerCount != 5 || s.Peers != ms {
		t.Errorf("got %+v\nwant reason %q", s, want)
	}
}

func TestOutlierTracker(t *testing.T) {
	const d = 3 * time.Minute
	out := func(ids ...string) LatencyReport {
		var r LatencyReport
		for _, id := range ids {
			r.Standings = append(r.Standings, LatencyStanding{InstanceID: id, Status: LatencyOutlier, Reason: "slow"})
		}
		return r
	}
	normal := func(id string) LatencyStanding { return LatencyStanding{InstanceID: id, Status: LatencyNormal} }
	type step struct {
		at   time.Duration // after latNow
		rep  LatencyReport
		want string // "id:since-offset:bad", comma separated
	}
	tests := []struct {
		desc  string
		steps []step
	}{
		{"degraded, then bad exactly degraded_for later", []step{
			{0, out("a"), "a:0s:false"},
			{time.Minute, out("a"), "a:0s:false"},
			{d - time.Second, out("a"), "a:0s:false"},
			{d, out("a"), "a:0s:true"},
			{d + time.Minute, out("a"), "a:0s:true"},
		}},
		{"one normal cycle ends the episode; the clock restarts", []step{
			{0, out("a"), "a:0s:false"},
			{2 * time.Minute, LatencyReport{Standings: []LatencyStanding{normal("a")}}, ""},
			{3 * time.Minute, out("a"), "a:3m0s:false"},
			{6 * time.Minute, out("a"), "a:3m0s:true"},
		}},
		{"absent from a cycle (too few samples, gone) ends it too", []step{
			{0, out("a", "b"), "a:0s:false,b:0s:false"},
			{time.Minute, out("b"), "b:0s:false"},
			{d, out("a", "b"), "a:3m0s:false,b:0s:true"},
		}},
		{"not judged (service slow) is no evidence", []step{
			{0, out("a"), "a:0s:false"},
			{time.Minute, LatencyReport{Standings: []LatencyStanding{{InstanceID: "a", Status: LatencyNotJudged}}}, ""},
			{d, out("a"), "a:3m0s:false"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			tr := NewOutlierTracker()
			for i, s := range tt.steps {
				got := tr.Update(s.rep, d, latNow.Add(s.at))
				var parts []string
				for _, st := range got {
					parts = append(parts, fmt.Sprintf("%s:%s:%t", st.InstanceID, st.Since.Sub(latNow), st.Bad))
					if !st.Degraded || st.Reason == "" {
						t.Errorf("step %d: %+v not degraded or without reason", i, st)
					}
				}
				if g := strings.Join(parts, ","); g != s.want {
					t.Errorf("step %d at +%s: got %q, want %q", i, s.at, g, s.want)
				}
				if !reflect.DeepEqual(tr.States(), got) {
					t.Errorf("step %d: States() differs from Update's result", i)
				}
			}
		})
	}
}

func TestApplyLatency(t *testing.T) {
	vs := []Verdict{
		{Instance: discovery.Instance{ID: "a"}, State: Healthy, Reason: "passing"},
		{Instance: discovery.Instance{ID: "b"}, State: Suspect, Reason: "1 failed probe"},
		{Instance: discovery.Instance{ID: "c"}, State: Healthy, Reason: "passing"},
	}
	states := []OutlierState{
		{InstanceID: "a", Degraded: true, Bad: true, Since: latNow, Reason: "latency outlier"},
		{InstanceID: "b", Degraded: true, Bad: true, Since: latNow, Reason: "latency outlier"},
		{InstanceID: "c", Degraded: true, Since: latNow, Reason: "degraded"},
	}
	got := ApplyLatency(vs, states)
	tests := []struct {
		desc   string
		i      int
		state  State
		reason string
	}{
		{"healthy and latency-bad becomes bad", 0, Bad, "latency outlier"},
		{"suspect stays suspect: failures speak louder", 1, Suspect, "1 failed probe"},
		{"degraded but not yet bad stays healthy", 2, Healthy, "passing"},
	}
	for _, tt := range tests {
		if g := got[tt.i]; g.State != tt.state || g.Reason != tt.reason {
			t.Errorf("%s: got %s %q", tt.desc, g.State, g.Reason)
		}
	}
	if vs[0].State != Healthy {
		t.Error("ApplyLatency modified its input")
	}
}

func TestLatencyBook(t *testing.T) {
	b := NewLatencyBook()
	ok := func(d time.Duration) probes.Result { return probes.Result{Start: latNow, Duration: d, Success: true} }
	b.Observe("web", "i-1", ok(ms))
	b.Observe("web", "i-1", probes.Result{Start: latNow, Duration: time.Second}) // failed: skipped
	b.Observe("web", "i-2", ok(2*ms))
	b.Observe("web", "", ok(ms)) // the endpoint: no instance, skipped
	b.Observe("api", "i-9", ok(ms))

	got := b.Windows("web", []string{"i-1", "i-3"})
	tests := []struct {
		desc string
		id   string
		n    int
	}{
		{"i-1: its one successful probe", "i-1", 1},
		{"i-3: no probe yet, an empty window", "i-3", 0},
	}
	for _, tt := range tests {
		if w, ok := got[tt.id]; !ok || w.Len() != tt.n {
			t.Errorf("%s: %v", tt.desc, w)
		}
	}
	got["i-1"].Add(latNow, ms) // a copy: the book is unchanged
	if again := b.Windows("web", []string{"i-1", "i-2"}); again["i-1"].Len() != 1 || again["i-2"].Len() != 0 {
		t.Errorf("after the first Windows call i-2 should be forgotten and i-1 unchanged: %d, %d", again["i-1"].Len(), again["i-2"].Len())
	}
	b.Forget("api")
	if w := b.Windows("api", []string{"i-9"}); w["i-9"].Len() != 0 {
		t.Error("api survives Forget")
	}
}

func TestQuantileName(t *testing.T) {
	for q, want := range map[float64]string{0.5: "median", 0.9: "p90", 0.99: "p99", 0.75: "p75"} {
		if got := quantileName(q); got != want {
			t.Errorf("%g: %q, want %q", q, got, want)
		}
	}
}

// TestLatencyPipeline runs the pieces as the heal cycle will, probe by probe
// and cycle by cycle: LatencyBook fed like Observe, DetectLatencyOutliers,
// OutlierTracker, ApplyLatency. One instance answering in 600 ms among five
// at about 1 ms turns Bad (and only it) degraded_for after it first stands
// out; a fleet all at 600 ms marks nothing and reports a slow service.
func TestLatencyPipeline(t *testing.T) {
	p := DefaultOutlierPolicy()
	ids := []string{"i-0", "i-1", "i-2", "i-3", "i-4", "i-5"}
	tests := []struct {
		desc      string
		latency   func(id string) time.Duration
		finding   LatencyFinding
		bad       string        // the instance expected Bad at the end, "" for none
		firstSeen time.Duration // when it first stands out (probes every 2 s from 0)
	}{
		{"one slow instance is marked, alone", func(id string) time.Duration {
			if id == "i-3" {
				return 600 * ms
			}
			return ms
		}, FindingOutliers, "i-3", 18 * time.Second},
		{"every instance slow: nothing marked, a slow service", func(string) time.Duration { return 600 * ms }, FindingServiceSlow, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			book, tr := NewLatencyBook(), NewOutlierTracker()
			var rep LatencyReport
			var states []OutlierState
			var since time.Time
			end := latNow.Add(p.DegradedFor + time.Minute)
			for now := latNow; !now.After(end); now = now.Add(2 * time.Second) {
				for _, id := range ids {
					book.Observe("web", id, probes.Result{Start: now, Duration: tt.latency(id), Success: true})
				}
				rep = DetectLatencyOutliers(DetectInput{Windows: book.Windows("web", ids), Policy: p, ProbeTimeout: 800 * ms, Now: now})
				states = tr.Update(rep, p.DegradedFor, now)
				if len(states) > 0 && since.IsZero() {
					since = states[0].Since
				}
			}
			if rep.Finding != tt.finding {
				t.Errorf("finding %s, want %s (%s)", rep.Finding, tt.finding, rep.Reason)
			}
			var vs []Verdict
			for _, id := range ids {
				vs = append(vs, Verdict{Instance: discovery.Instance{ID: id}, State: Healthy})
			}
			var bad []string
			for _, v := range ApplyLatency(vs, states) {
				if v.State == Bad {
					bad = append(bad, v.Instance.ID)
					if !v.Since.Equal(since) || !strings.Contains(v.Reason, "latency outlier since") {
						t.Errorf("%s: since %s, reason %q", v.Instance.ID, v.Since, v.Reason)
					}
				}
			}
			if got := strings.Join(bad, ","); got != tt.bad {
				t.Errorf("bad %q, want %q", got, tt.bad)
			}
			if tt.bad != "" && since.Sub(latNow) != tt.firstSeen {
				t.Errorf("first stood out %s after the first probe, want %s (min_samples %d at 2 s)", since.Sub(latNow), tt.firstSeen, p.MinSamples)
			}
		})
	}
}
