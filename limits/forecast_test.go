package limits

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const day = 24 * time.Hour

// sampled samples f every 5 minutes over span before now.
func sampled(now time.Time, span time.Duration, f func(t time.Time) float64) []Point {
	var p []Point
	for d := span; d >= 0; d -= 5 * time.Minute {
		t := now.Add(-d)
		p = append(p, Point{T: t, V: f(t)})
	}
	return p
}

// cycle is a daily cycle around base(t) with amplitude amp, peaking at
// 14:00 UTC.
func cycle(base func(t time.Time) float64, amp float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		h := float64(t.Hour()) + float64(t.Minute())/60
		return base(t) + amp*math.Cos(2*math.Pi*(h-14)/24)
	}
}

// firstCrossing walks f forward from now in 5-minute steps and returns
// when it first reaches limit (the true crossing), up to a year.
func firstCrossing(f func(time.Time) float64, now time.Time, limit float64) time.Duration {
	for d := time.Duration(0); d < 365*day; d += 5 * time.Minute {
		if f(now.Add(d)) >= limit {
			return d
		}
	}
	return -1
}

func TestTimeToExhaustionShapes(t *testing.T) {
	now := t0
	hist := 8 * day
	g := DefaultGates
	daysSince := func(t time.Time) float64 { return t.Sub(now).Hours() / 24 }
	growing := cycle(func(t time.Time) float64 { return 400 + 10*daysSince(t) }, 150) // peaks 550 now, +10/day
	noisy := rand.New(rand.NewPCG(1, 2))
	noiseOnFlat := func(time.Time) float64 { return 500 + 60*noisy.Float64() }
	noisy2 := rand.New(rand.NewPCG(3, 4))
	growingNoisy := func(t time.Time) float64 { return growing(t) + 8*noisy2.NormFloat64() }
	step := func(t time.Time) float64 {
		if now.Sub(t) < 10*time.Minute {
			return 116 // +16 vCPUs in the last 10 minutes
		}
		return 100
	}
	midStep := func(t time.Time) float64 {
		if now.Sub(t) < 4*day {
			return 300
		}
		return 200
	}
	withGap := func(pts []Point) []Point { // nothing for days 3 and 4 back
		var out []Point
		for _, p := range pts {
			if a := now.Sub(p.T); a < 2*day || a >= 4*day {
				out = append(out, p)
			}
		}
		return out
	}
	for _, tc := range []struct {
		desc      string
		pts       []Point
		current   float64
		limit     float64
		known     bool
		growing   bool
		wantIn    time.Duration // true crossing; 0: not checked
		wantTrend bool
	}{
		{desc: "daily cycle 500±300 against 1000, flat peaks: no forecast",
			pts: sampled(now, hist, cycle(func(time.Time) float64 { return 500 }, 300)), current: 500, limit: 1000, known: true},
		{desc: "growing peaks: forecast within 10% of the true crossing",
			pts: sampled(now, hist, growing), current: growing(now), limit: 1000, known: true, growing: true, wantTrend: true,
			wantIn: firstCrossing(growing, now, 1000)},
		{desc: "growing peaks, a near limit (5 days): within 10%",
			pts: sampled(now, hist, growing), current: growing(now), limit: 600, known: true, growing: true, wantTrend: true,
			wantIn: firstCrossing(growing, now, 600)},
		{desc: "growing peaks with noise: still within 10%",
			pts: sampled(now, hist, growingNoisy), current: growing(now), limit: 1000, known: true, growing: true, wantTrend: true,
			wantIn: firstCrossing(growing, now, 1000)},
		{desc: "a 16-vCPU scale-out in the last 10 minutes is a step: no forecast",
			pts: sampled(now, hist, step), current: 116, limit: 200, known: true},
		{desc: "a step four days ago, flat since: no forecast",
			pts: sampled(now, hist, midStep), current: 300, limit: 400, known: true},
		{desc: "noise on flat usage: no forecast",
			pts: sampled(now, hist, noiseOnFlat), current: 530, limit: 1000, known: true},
		{desc: "a two-day gap in history: the other windows still forecast",
			pts: withGap(sampled(now, hist, growing)), current: growing(now), limit: 1000, known: true, growing: true, wantTrend: true,
			wantIn: firstCrossing(growing, now, 1000)},
		{desc: "after a restart with one day of history: not enough, unknown",
			pts: sampled(now, day-time.Minute, growing), current: growing(now), limit: 1000},
		{desc: "current usage unknown (a gap now) is unknown, not zero",
			pts: sampled(now, hist, growing), current: 0, limit: 1000},
		{desc: "falling peaks: not growing",
			pts: sampled(now, hist, cycle(func(t time.Time) float64 { return 600 - 10*daysSince(t) }, 100)), current: 500, limit: 1000, known: true},
		{desc: "limit 0, nothing used: not in use, no forecast",
			pts: sampled(now, hist, func(time.Time) float64 { return 0 }), current: 0, limit: 0, known: true},
		{desc: "limit 0, flat usage above it: reported by the state, no forecast",
			pts: sampled(now, hist, func(time.Time) float64 { return 4 }), current: 4, limit: 0, known: true},
		{desc: "limit 0, usage growing toward (past) it: forecast, now",
			pts: sampled(now, hist, func(t time.Time) float64 { return 8 + 2*daysSince(t) }), current: 8, limit: 0, known: true, growing: true, wantTrend: true},
		{desc: "at a positive limit, flat: exhausted now but no trend",
			pts: sampled(now, hist, func(time.Time) float64 { return 50 }), current: 50, limit: 50, known: true, growing: true},
	} {
		known := tc.desc != "current usage unknown (a gap now) is unknown, not zero"
		f := TimeToExhaustion(tc.pts, tc.current, known, tc.limit, true, now, g)
		if f.Known != tc.known || f.Growing != tc.growing || f.Trend != tc.wantTrend {
			t.Errorf("%s: got known=%v growing=%v trend=%v (%s), want %v %v %v", tc.desc, f.Known, f.Growing, f.Trend, f.Why, tc.known, tc.growing, tc.wantTrend)
			continue
		}
		if tc.wantIn > 0 {
			t.Logf("%s: forecast %s (%s–%s), true crossing %s, R² %.3f over %d peaks", tc.desc, f.In.Round(time.Hour), f.Early.Round(time.Hour),
				f.Late.Round(time.Hour), tc.wantIn.Round(time.Hour), f.RSquared, f.Peaks)
			if d := math.Abs(f.In.Hours() - tc.wantIn.Hours()); d > 0.1*tc.wantIn.Hours() {
				t.Errorf("%s: In = %s, true crossing in %s (off by %.0f%%; %s)", tc.desc, f.In.Round(time.Hour), tc.wantIn.Round(time.Hour), 100*d/tc.wantIn.Hours(), f.Why)
			}
			if !(f.Early <= f.In && f.In <= f.Late) {
				t.Errorf("%s: interval [%s, %s] does not hold %s", tc.desc, f.Early, f.Late, f.In)
			}
			if math.IsNaN(f.RSquared) || f.RSquared < g.MinRSquared || f.Peaks < g.MinPeaks {
				t.Errorf("%s: fit quality not exported: R² %v, %d peaks", tc.desc, f.RSquared, f.Peaks)
			}
		}
	}
}

func TestWindowPeaks(t *testing.T) {
	pts := []Point{
		{t0.Add(-30 * time.Hour), 5}, {t0.Add(-26 * time.Hour), 9}, // window 1
		{t0.Add(-2 * time.Hour), 3}, {t0.Add(-time.Hour), 7}, {t0, 4}, // window 0
		{t0.Add(time.Hour), 100},     // the future: ignored
		{t0.Add(-80 * time.Hour), 1}, // window 3; window 2 empty (a gap, not zero)
	}
	got := WindowPeaks(pts, t0, 24*time.Hour, 7*24*time.Hour)
	want := []Point{{t0.Add(-80 * time.Hour), 1}, {t0.Add(-26 * time.Hour), 9}, {t0.Add(-time.Hour), 7}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].T.Equal(want[i].T) || got[i].V != want[i].V {
			t.Errorf("peak %d: got %v, want %v", i, got[i], want[i])
		}
	}
}
