package limits

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// This file holds the exhaustion forecast: a pure function of the usage
// history, the limit, the clock and the gates, table-tested in
// forecast_test.go.
//
// A quota is exhausted by its peaks, not by its average: the forecast fits
// a line to the peak of each window (a day by default) and says when that
// line reaches the limit. Shapes that are not a trend give no forecast:
//
//   - too few windows with data (ForecastGates.MinPeaks);
//   - peaks that a straight line explains poorly (R² under MinRSquared),
//     as with flat peaks plus noise;
//   - peaks a single step explains at least as well as a line (a scale-out
//     or a migration: one jump, then flat);
//   - peaks that do not grow.

// ForecastGates are what a trend must pass before it forecasts anything.
type ForecastGates struct {
	// Window is the span whose peak is one point of the trend.
	Window time.Duration
	// Span is how far back peaks are fitted.
	Span time.Duration
	// MinPeaks is the fewest windows with data that make a trend.
	MinPeaks int
	// MinRSquared is the least share of the peaks' variance the line must
	// explain (0..1).
	MinRSquared float64
}

// DefaultGates are the gates config's defaults give.
var DefaultGates = ForecastGates{Window: 24 * time.Hour, Span: 7 * 24 * time.Hour, MinPeaks: 4, MinRSquared: 0.8}

// Forecast is a time-to-exhaustion estimate.
type Forecast struct {
	// Known is false when there is not enough data to say anything.
	Known bool
	// Growing is true when usage is forecast to reach the limit: a trend
	// that passed every gate, or usage already at or over the limit.
	Growing bool
	// Trend is true when Growing comes from a trend that passed every
	// gate (not just from usage at the limit): only such a forecast may
	// file a quota-increase request.
	Trend bool
	// In is the time until the trend of peaks reaches the limit (0 when
	// already there).
	In time.Duration
	// Early and Late bound In: the crossing with the slope two standard
	// errors steeper and shallower. Late is math.MaxInt64 when the shallow
	// slope does not grow.
	Early, Late time.Duration
	// Method is "peaks" (the trend of window peaks), "at_limit" or "".
	Method string
	// Peaks is the number of windows the trend was fitted to; RSquared the
	// share of their variance the line explains (NaN when not fitted).
	Peaks    int
	RSquared float64
	// PeakNow and SlopePerSecond are the fitted line: the peak expected at
	// now and its growth per second. PeakAt reads it.
	PeakNow, SlopePerSecond float64
	// Why says in words how the figure was reached or why there is none.
	Why string
}

// PeakAt is the peak the fitted trend expects d after now (0 without a trend).
func (f Forecast) PeakAt(d time.Duration) float64 {
	if !f.Trend {
		return 0
	}
	return f.PeakNow + f.SlopePerSecond*d.Seconds()
}

// WindowPeaks returns the largest figure of each window of length w ending
// at now, now-w, now-2w… back to now-span, oldest first, each at the time
// it was seen. A window without a figure has no peak: a gap is not zero.
func WindowPeaks(pts []Point, now time.Time, w, span time.Duration) []Point {
	if w <= 0 {
		return nil
	}
	from := now.Add(-span)
	best := map[int64]Point{}
	for _, p := range pts {
		if p.T.After(now) || !p.T.After(from) || math.IsNaN(p.V) {
			continue
		}
		k := int64(now.Sub(p.T) / w)
		if b, ok := best[k]; !ok || p.V > b.V {
			best[k] = p
		}
	}
	out := make([]Point, 0, len(best))
	for _, p := range best {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T.Before(out[j].T) })
	return out
}

// fit is a least-squares line through points, x in seconds from now.
type fit struct {
	slope, atNow, r2, slopeSE, sse float64
}

func fitLine(pts []Point, now time.Time) (fit, bool) {
	n := float64(len(pts))
	if n < 2 {
		return fit{}, false
	}
	var mx, my float64
	for _, p := range pts {
		mx += p.T.Sub(now).Seconds()
		my += p.V
	}
	mx /= n
	my /= n
	var sxx, sxy, syy float64
	for _, p := range pts {
		dx, dy := p.T.Sub(now).Seconds()-mx, p.V-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 {
		return fit{}, false
	}
	f := fit{slope: sxy / sxx}
	f.atNow = my - f.slope*mx
	f.sse = math.Max(syy-f.slope*sxy, 0)
	f.r2 = math.NaN()
	if syy > 0 {
		f.r2 = 1 - f.sse/syy
	}
	if n > 2 {
		f.slopeSE = math.Sqrt(f.sse / (n - 2) / sxx)
	}
	return f, true
}

// stepSSE is the squared error of the best single step through the points
// (one level before some index, another from it): how well "a jump, then
// flat" explains them.
func stepSSE(pts []Point) float64 {
	best := math.Inf(1)
	for cut := 1; cut < len(pts); cut++ {
		s := sseAround(pts[:cut]) + sseAround(pts[cut:])
		best = math.Min(best, s)
	}
	return best
}

func sseAround(pts []Point) float64 {
	var m float64
	for _, p := range pts {
		m += p.V
	}
	m /= float64(len(pts))
	var s float64
	for _, p := range pts {
		s += (p.V - m) * (p.V - m)
	}
	return s
}

// TimeToExhaustion decides when usage reaches limit, from the history, in
// this order:
//  1. usage or limit unknown (a gap is not zero): unknown;
//  2. a limit of 0 with nothing used: not in use, nothing to forecast;
//  3. fewer than MinPeaks windows with data: unknown (not enough history);
//  4. usage at or over the limit: exhausted now (Growing; Trend only if
//     the peaks also pass the gates below and grow);
//  5. peaks not growing, a line explaining under MinRSquared of their
//     variance, or a single step explaining them at least as well: known,
//     not growing — no forecast;
//  6. otherwise the fitted line of peaks crosses the limit in
//     (limit − peak now)/slope, bounded by the slope ± 2 standard errors.
func TimeToExhaustion(pts []Point, current float64, currentKnown bool, limit float64, limitKnown bool, now time.Time, g ForecastGates) Forecast {
	if !currentKnown || !limitKnown {
		return Forecast{Why: "usage or limit unknown", RSquared: math.NaN()}
	}
	if limit == 0 && current <= 0 {
		return Forecast{Known: true, RSquared: math.NaN(), Why: "limit 0 and nothing used: not in use"}
	}
	peaks := WindowPeaks(pts, now, g.Window, g.Span)
	f := Forecast{Peaks: len(peaks), RSquared: math.NaN()}
	atLimit := current >= limit
	trend, why := gatedTrend(peaks, now, g)
	if trend.ok {
		f.RSquared, f.PeakNow, f.SlopePerSecond = trend.r2, trend.atNow, trend.slope
	}
	if atLimit {
		f.Known = true
		f.Trend = trend.ok && trend.slope > 0
		if limit == 0 && !f.Trend {
			// Over a limit of 0 is reported by the state; it is a forecast
			// only when usage grows.
			f.Why = fmt.Sprintf("usage %g is over a limit of 0 and not growing (%s): no forecast", current, why)
			return f
		}
		f.Growing, f.Method = true, "at_limit"
		f.Why = fmt.Sprintf("usage %g is at or above the limit %g; %s", current, limit, why)
		return f
	}
	if len(peaks) < g.MinPeaks {
		f.Why = why
		return f
	}
	f.Known = true
	if !trend.ok || trend.slope <= 0 {
		f.Why = why
		return f
	}
	f.Growing, f.Trend, f.Method = true, true, "peaks"
	left := limit - trend.atNow
	f.In = secs(math.Max(left/trend.slope, 0))
	f.Early = secs(math.Max(left/(trend.slope+2*trend.slopeSE), 0))
	if lo := trend.slope - 2*trend.slopeSE; lo > 0 {
		f.Late = secs(math.Max(left/lo, 0))
	} else {
		f.Late = time.Duration(math.MaxInt64)
	}
	f.Why = fmt.Sprintf("%s; peak now %.4g, limit %g", why, round(trend.atNow), limit)
	return f
}

type gated struct {
	fit
	ok bool
}

// gatedTrend fits the peaks and applies the gates; ok is true only for a
// trend that passed them all (growing or not). why says what was found.
func gatedTrend(peaks []Point, now time.Time, g ForecastGates) (gated, string) {
	n := len(peaks)
	if n < g.MinPeaks || n < 2 {
		return gated{}, fmt.Sprintf("not enough history: %d of %d %s windows with data", n, g.MinPeaks, g.Window)
	}
	fl, ok := fitLine(peaks, now)
	if !ok {
		return gated{}, "peaks all at one time: no trend"
	}
	per := fmt.Sprintf("peaks of %d %s windows", n, g.Window)
	if math.IsNaN(fl.r2) || fl.slope == 0 {
		return gated{fit: fl, ok: true}, per + " are flat: not growing"
	}
	if fl.r2 < g.MinRSquared {
		return gated{fit: fl}, fmt.Sprintf("%s follow no trend (R² %.2f < %.2f): no forecast", per, fl.r2, g.MinRSquared)
	}
	if st := stepSSE(peaks); st <= fl.sse {
		return gated{fit: fl}, fmt.Sprintf("%s are a step, not a trend (one jump explains them as well as a line): no forecast", per)
	}
	if fl.slope < 0 {
		return gated{fit: fl, ok: true}, fmt.Sprintf("%s fall %.4g/day: not growing", per, -fl.slope*86400)
	}
	return gated{fit: fl, ok: true}, fmt.Sprintf("%s grow %.4g/day (R² %.2f, ±%.2g/day)", per, fl.slope*86400, fl.r2, 2*fl.slopeSE*86400)
}
