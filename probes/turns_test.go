package probes

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// simRun drives a Scheduler's own decisions (top, take) on a simulated
// clock, with no workers and no network: every step of dt the clock moves
// on and at most capacity(step) probes start, each ending at once. It
// returns each target's probe times and checks that every slot that has
// passed was either probed or counted as skipped.
func simRun(t *testing.T, targets []Target, dt time.Duration, steps int, capacity func(step int) int) map[string][]time.Time {
	t.Helper()
	clock := time.Unix(1_700_000_000, 0)
	s := NewScheduler(Options{Now: func() time.Time { return clock }})
	s.Update(targets)
	first := map[*entry]time.Time{}
	for _, e := range s.entries {
		first[e] = e.base
	}
	probed := map[string][]time.Time{}
	total := 0
	for step := range steps {
		clock = clock.Add(dt)
		for range capacity(step) {
			e, wait := s.top(clock)
			if e == nil {
				if wait == 0 {
					continue // passed maxSkips overlapped slots
				}
				break
			}
			j := s.take(e, clock)
			j.e.busy = false
			probed[j.t.Key] = append(probed[j.t.Key], clock)
			total++
		}
	}
	slots := 0
	for e, b := range first {
		slots += int(e.base.Sub(b) / e.interval)
	}
	skipped := int(testutil.ToFloat64(s.m.skipped.WithLabelValues("svc", "concurrency")))
	if total+skipped != slots {
		t.Errorf("%d probes + %d skipped slots, want the %d slots that passed", total, skipped, slots)
	}
	return probed
}

// gapStats returns the mean and the largest gap between one target's
// probes, over the targets whose Key starts with prefix, ignoring the
// probes before warmup.
func gapStats(probed map[string][]time.Time, prefix string, warmup time.Time) (mean, most time.Duration, n int) {
	var sum time.Duration
	for k, ts := range probed {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		i := slices.IndexFunc(ts, func(t time.Time) bool { return !t.Before(warmup) })
		if i < 0 {
			continue
		}
		for k := i + 1; k < len(ts); k++ {
			g := ts[k].Sub(ts[k-1])
			sum += g
			most = max(most, g)
			n++
		}
	}
	if n > 0 {
		mean = sum / time.Duration(n)
	}
	return mean, most, n
}

func simTargets(n int, prefix string, interval time.Duration) []Target {
	out := make([]Target, n)
	for i := range out {
		out[i] = staticTarget(fmt.Sprintf("%s%d", prefix, i), "127.0.0.1:1", "/", interval, interval)
	}
	return out
}

// TestSchedulerTakesTurnsOverCapacity: when medic can start fewer probes
// a second than its targets' schedules ask for, every target is still
// probed in turn — the longest-waiting first — so no target's gap between
// probes grows far past the mean (no starvation), and when there is room
// every target keeps its interval. Simulated clock: the figures are the
// scheduler's decisions, not the machine's speed.
func TestSchedulerTakesTurnsOverCapacity(t *testing.T) {
	const iv = 100 * time.Millisecond
	const dt = time.Millisecond
	const steps = 20000 // 20 s
	for _, tc := range []struct {
		desc     string
		targets  []Target
		capacity func(step int) int // probes that may start in a step of dt
		// the mean gap between a target's probes (0: not checked), within
		// 10%, and the bound of the largest
		mean, most time.Duration
		// the mean gap of the targets whose Key has this prefix, within 10%
		groups map[string]time.Duration
	}{
		{
			desc:     "room to spare: every target at its interval",
			targets:  simTargets(1000, "t", iv), // 10,000 probes/s asked
			capacity: func(int) int { return 20 },
			mean:     iv, most: iv + 2*maxJitter,
		},
		{
			desc:     "just over capacity (1.1x)",
			targets:  simTargets(1100, "t", iv), // 11,000/s asked, 10,000 possible
			capacity: func(int) int { return 10 },
			mean:     110 * time.Millisecond, most: 110*time.Millisecond + iv + 2*maxJitter,
		},
		{
			desc:     "far over capacity (2.5x)",
			targets:  simTargets(1000, "t", iv),
			capacity: func(int) int { return 4 },
			mean:     250 * time.Millisecond, most: 250*time.Millisecond + iv + 2*maxJitter,
		},
		{
			desc:     "over capacity in bursts: 30 ms stalls every 50 ms",
			targets:  simTargets(1000, "t", iv),
			capacity: func(step int) int { return map[bool]int{true: 0, false: 10}[step%50 < 30] },
			mean:     250 * time.Millisecond, most: 250*time.Millisecond + iv + 2*maxJitter + 30*time.Millisecond,
		},
		{
			// 5,000 + 1,250 probes/s asked, 4,000 possible: the slow
			// targets keep their 400 ms, the fast ones share the rest
			// (500 / 2,750 a second: 182 ms)
			desc:     "over capacity, two intervals",
			targets:  append(simTargets(500, "fast", iv), simTargets(500, "slow", 4*iv)...),
			capacity: func(int) int { return 4 },
			most:     4*iv + iv + 2*maxJitter,
			groups:   map[string]time.Duration{"fast": 500 * time.Second / 2750, "slow": 4 * iv},
		},
		{
			desc:     "stalled for 3 s, then room to catch up",
			targets:  simTargets(1000, "t", iv),
			capacity: func(step int) int { return map[bool]int{true: 0, false: 20}[step >= 8000 && step < 11000] },
			// the 3 s, then 50 ms to start 1,000 probes at 20 a ms
			most: 3*time.Second + 50*time.Millisecond + iv + 2*maxJitter,
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			probed := simRun(t, tc.targets, dt, steps, tc.capacity)
			if len(probed) != len(tc.targets) {
				t.Fatalf("%d targets probed, want all %d", len(probed), len(tc.targets))
			}
			start := time.Unix(1_700_000_000, 0).Add(2 * time.Second)
			mean, most, n := gapStats(probed, "", start)
			t.Logf("%d gaps: mean %v, largest %v", n, mean, most)
			for prefix, want := range tc.groups {
				if m, _, _ := gapStats(probed, prefix, start); m < want*9/10 || m > want*11/10 {
					t.Errorf("mean gap of the %s targets %v, want %v within 10%%", prefix, m, want)
				}
			}
			if d := mean - tc.mean; tc.mean > 0 && (d < -tc.mean/10 || d > tc.mean/10) {
				t.Errorf("mean gap %v, want %v within 10%%", mean, tc.mean)
			}
			if most > tc.most {
				t.Errorf("largest gap %v, want at most %v", most, tc.most)
			}
		})
	}
}

// TestSchedulerTakeLate: a target taken late probes its latest due slot
// and counts the slots before it as skipped; its next slot is its grid's
// first after that one.
func TestSchedulerTakeLate(t *testing.T) {
	const iv = time.Second
	for _, tc := range []struct {
		desc        string
		late        time.Duration // past the target's slot when taken
		wantSkipped int
	}{
		{"on time", 0, 0},
		{"late, under an interval", 900 * time.Millisecond, 0},
		{"one interval late", iv, 1},
		{"2.5 intervals late", 2500 * time.Millisecond, 2},
		{"an hour late", time.Hour, 3600},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			clock := time.Unix(1_700_000_000, 0)
			s := NewScheduler(Options{Now: func() time.Time { return clock }})
			s.Update(simTargets(1, "t", iv))
			e := s.entries["t0"]
			slot, base := e.next, e.base
			clock = slot.Add(tc.late)
			got, _ := s.top(clock)
			if got != e {
				t.Fatalf("top returned %v, want the due target", got)
			}
			j := s.take(e, clock)
			wantSlot := slot.Add(time.Duration(tc.wantSkipped) * iv)
			if !j.slot.Equal(wantSlot) {
				t.Errorf("probe of the slot %v, want %v", j.slot.Sub(slot), wantSlot.Sub(slot))
			}
			if l := clock.Sub(j.slot); l < 0 || l >= iv {
				t.Errorf("lateness %v, want in [0, %v)", l, iv)
			}
			if n := testutil.ToFloat64(s.m.skipped.WithLabelValues("svc", "concurrency")); int(n) != tc.wantSkipped {
				t.Errorf("%v slots skipped, want %d", n, tc.wantSkipped)
			}
			if h := s.self.health(clock); h.Skipped != tc.wantSkipped {
				t.Errorf("self-health counts %d skipped, want %d", h.Skipped, tc.wantSkipped)
			}
			if want := base.Add(time.Duration(tc.wantSkipped+1) * iv); !e.base.Equal(want) || !e.busy {
				t.Errorf("next slot %v (busy %v), want %v, busy", e.base.Sub(base), e.busy, want.Sub(base))
			}
		})
	}
}
