package healer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A restarted healer seeded with an hour's worth of marks from AWS refuses
// like the healer that made them would have, and frees the budget when
// they leave the window.
func TestSeedCountsAgainstRateLimit(t *testing.T) {
	f := newFakeASG("i-1", "i-2", "i-3", "i-4", "i-5", "i-6")
	h, reg, clk, _ := newTestHealer(t, testActuator(f, log.NewNopLogger()))
	ctx := context.Background()
	policy := defaultPolicy()
	marks := make([]time.Time, policy.MaxActionsPerHour)
	for i := range marks {
		marks[i] = clk.Now().Add(-30*time.Minute + time.Duration(i)*time.Millisecond)
	}
	h.Seed("web", marks)

	want := `# HELP medic_heal_actions_last_hour Marks in the sliding hour (rate-limit budget used).
# TYPE medic_heal_actions_last_hour gauge
medic_heal_actions_last_hour{service="web"} 10
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "medic_heal_actions_last_hour"); err != nil {
		t.Error(err)
	}

	w := newWorld("web", 6, clk.Now())
	w.probe("i-2", clk.Now(), "FFF")
	r := h.Cycle(ctx, w.input(clk.Now(), "c1"))
	if len(r.Outcomes) != 0 || len(r.Decision.Refusals) != 1 || r.Decision.Refusals[0].Reason != RateLimit {
		t.Fatalf("seeded budget spent: outcomes %+v, refusals %+v; want a rate_limit refusal", r.Outcomes, r.Decision.Refusals)
	}
	if r.ActionsLastHour != 10 {
		t.Errorf("ActionsLastHour = %d, want 10", r.ActionsLastHour)
	}

	clk.Advance(29 * time.Minute) // the seeds are 59 minutes old
	w.probe("i-2", clk.Now(), "FFF")
	if r = h.Cycle(ctx, w.input(clk.Now(), "c2")); len(r.Outcomes) != 0 {
		t.Fatalf("seeds 59 minutes old: outcomes = %+v, want none", r.Outcomes)
	}
	clk.Advance(2 * time.Minute) // 61 minutes old
	w.probe("i-2", clk.Now(), "FFF")
	if r = h.Cycle(ctx, w.input(clk.Now(), "c3")); r.Outcomes["i-2"].Result != ResultMarked {
		t.Fatalf("seeds 61 minutes old: outcomes = %+v, want i-2 marked", r.Outcomes)
	}
	if r.ActionsLastHour != 1 {
		t.Errorf("ActionsLastHour = %d, want 1 (the new mark)", r.ActionsLastHour)
	}
}

func TestSeedMerges(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		desc  string
		own   []time.Time // the healer's own marks before Seed
		seeds [][]time.Time
		want  int // marks in the window after
	}{
		{desc: "nothing", want: 0},
		{desc: "no own marks", seeds: [][]time.Time{{at(-time.Minute), at(-2 * time.Minute)}}, want: 2},
		{desc: "the same mark half a second later is the own mark",
			own: []time.Time{at(-time.Minute)}, seeds: [][]time.Time{{at(-time.Minute + 500*time.Millisecond)}}, want: 1},
		{desc: "half a second earlier too",
			own: []time.Time{at(-time.Minute)}, seeds: [][]time.Time{{at(-time.Minute - 500*time.Millisecond)}}, want: 1},
		{desc: "exactly a second apart: another mark",
			own: []time.Time{at(-time.Minute)}, seeds: [][]time.Time{{at(-time.Minute + time.Second)}}, want: 2},
		{desc: "two seeds in the second of one own mark: one is another mark",
			own: []time.Time{at(-time.Minute)}, seeds: [][]time.Time{{at(-time.Minute), at(-time.Minute)}}, want: 2},
		{desc: "two marks in one cycle, both seeded",
			own:   []time.Time{at(-time.Minute), at(-time.Minute + time.Millisecond)},
			seeds: [][]time.Time{{at(-time.Minute + 200*time.Millisecond), at(-time.Minute + 300*time.Millisecond)}}, want: 2},
		{desc: "seeding twice adds nothing the second time",
			seeds: [][]time.Time{{at(-time.Minute), at(-10 * time.Minute)}, {at(-time.Minute), at(-10 * time.Minute)}}, want: 2},
		{desc: "exactly RateWindow old does not count", seeds: [][]time.Time{{at(-RateWindow)}}, want: 0},
		{desc: "just inside the window counts", seeds: [][]time.Time{{at(-RateWindow + time.Millisecond)}}, want: 1},
		{desc: "older marks are dropped", seeds: [][]time.Time{{at(-2 * RateWindow), at(-time.Minute)}}, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			h, _, _, _ := newTestHealer(t, DryRun(log.NewNopLogger()))
			st := h.state("web")
			st.actions = append(st.actions, tc.own...)
			st.mu.Unlock()
			for _, s := range tc.seeds {
				h.Seed("web", s)
			}
			st = h.state("web")
			got := len(st.actions)
			st.mu.Unlock()
			if got != tc.want {
				t.Errorf("marks remembered = %d, want %d", got, tc.want)
			}
			if g := testutil.ToFloat64(h.m.lastHour.WithLabelValues("web")); int(g) != tc.want {
				t.Errorf("medic_heal_actions_last_hour = %v, want %d", g, tc.want)
			}
		})
	}
}
