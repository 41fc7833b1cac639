package healer

import (
	"math/bits"
	"time"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/probes"
)

// ringSize is how many outcomes a Detector keeps: the ratio rule's window
// (failure_window, at most ringSize) and the longer window the peers'
// background failure rate is taken over.
const ringSize = 64

// Detector is one instance's probe record, kept incrementally: Add is O(1)
// and the whole record is a few hundred bytes, whatever the history length.
// It holds what Judge needs and nothing more: the last ringSize outcomes as
// bits, the trailing runs, the latest bad run (for hysteresis), the freshness
// facts and the last maxEvidence failures quoted in reasons.
type Detector struct {
	ring uint64 // bit i set: the outcome i results ago failed (bit 0 newest)
	n    uint8  // outcomes held in ring, at most ringSize

	fails, passes uint16 // trailing consecutive failures / passes (saturating)
	// fresh counts results since the last missed slot (saturating); equal
	// to the results seen when no slot was missed.
	fresh   uint16
	gapSeen bool // a missed slot was seen (fresh counts from it)

	runStart time.Time // Start of the first result of the trailing run
	last     time.Time // Start of the newest result
	gapAt    time.Time // Start of the first result after the last missed slot

	// badRun is the most recent run of at least unhealthy_after failures
	// that a pass ended (badEnd, its Start); cleared by healthy_after passes.
	badLen   uint16
	badStart time.Time
	badLast  time.Time // Start of its last failure
	badEnd   time.Time

	// failures holds the last maxEvidence failed results, failHead the
	// next slot to write.
	failures [maxEvidence]probes.Result
	failHead uint8
}

// DetectorParams are the settings a Detector applies as results arrive.
type DetectorParams struct {
	UnhealthyAfter, HealthyAfter int
	FailureRatio                 float64
	FailureWindow                int
	// minFails caches minWindowFails (0: not computed).
	minFails int
	// Interval and Timeout of the instance probe. A result starting more
	// than 1.5 intervals after the previous one means a slot was missed.
	// Zero Interval: no slot is ever taken for missed.
	Interval, Timeout time.Duration
}

// ParamsFor takes a Detector's settings from the service's policy and
// instance probe, with the config defaults (unhealthy_after 3,
// healthy_after 2, failure_ratio 0.6, failure_window 15) for what is unset
// (a policy not read through config, or none yet).
func ParamsFor(p config.Policy, probe config.Probe) DetectorParams {
	dp := DetectorParams{
		UnhealthyAfter: p.UnhealthyAfter,
		HealthyAfter:   p.HealthyAfter,
		FailureRatio:   p.FailureRatio,
		FailureWindow:  p.FailureWindow,
		Interval:       probe.Interval.D(),
		Timeout:        probe.Timeout.D(),
	}
	if dp.UnhealthyAfter < 1 {
		dp.UnhealthyAfter = 3
	}
	if dp.HealthyAfter < 1 {
		dp.HealthyAfter = 2
	}
	if dp.FailureRatio <= 0 || dp.FailureRatio > 1 {
		dp.FailureRatio = 0.6
	}
	if dp.FailureWindow < 2 || dp.FailureWindow > ringSize {
		dp.FailureWindow = 15
	}
	dp.minFails = dp.minWindowFails()
	return dp
}

// gapAfter is the longest gap between the starts of two results of
// consecutive slots: one interval, plus half an interval of lateness. A
// single skipped slot (two intervals) is over it.
func (p DetectorParams) gapAfter() time.Duration {
	return p.Interval * 3 / 2
}

// staleAfter is how old the newest result may be and still count.
func (p DetectorParams) staleAfter() time.Duration {
	return 2*p.Interval + p.Timeout
}

// minWindowFails is the fewest failures in a full window that the ratio
// rule calls bad: ceil(ratio × window).
func (p DetectorParams) minWindowFails() int {
	if p.minFails > 0 {
		return p.minFails
	}
	f := p.FailureRatio * float64(p.FailureWindow)
	n := int(f)
	if float64(n) < f-1e-9 {
		n++
	}
	return max(n, 1)
}

// Add records r, the instance's newest result, and reports whether it may
// change the instance's verdict: the first result, a missed slot, a change
// between passing and failing, a failing run at or beyond unhealthy_after,
// the pass that completes healthy_after after a bad run or a missed slot,
// or the window's failure count crossing the ratio rule's threshold. A run
// of passes changes nothing and wakes nobody.
func (d *Detector) Add(r probes.Result, p DetectorParams) (wake bool) {
	first := d.n == 0 && d.last.IsZero()
	if !first && p.Interval > 0 && r.Start.Sub(d.last) > p.gapAfter() {
		// A missed slot: the runs are no longer consecutive, and the
		// instance is unknown until it has healthy_after fresh results.
		d.fails, d.passes, d.fresh = 0, 0, 0
		d.gapSeen, d.gapAt = true, r.Start
		wake = true
	}
	before := d.windowFails(p.FailureWindow) >= p.minWindowFails() && int(d.n) >= p.FailureWindow
	d.ring <<= 1
	if d.n < ringSize {
		d.n++
	}
	prev := d.last
	d.last = r.Start
	d.fresh = sat(d.fresh)
	if r.Success {
		if d.fails >= uint16(p.UnhealthyAfter) {
			d.badLen, d.badStart, d.badLast, d.badEnd = d.fails, d.runStart, prev, r.Start
		}
		if d.passes == 0 {
			d.runStart = r.Start
			wake = true
		}
		d.fails = 0
		d.passes = sat(d.passes)
		if int(d.passes) == p.HealthyAfter && d.badLen > 0 {
			wake = true // the recovery from a bad run is complete
			d.badLen, d.badStart, d.badLast, d.badEnd = 0, time.Time{}, time.Time{}, time.Time{}
		}
		if d.gapSeen && int(d.fresh) == p.HealthyAfter {
			wake = true
		}
	} else {
		d.ring |= 1
		if d.fails == 0 {
			d.runStart = r.Start
			wake = true
		}
		d.passes = 0
		d.fails = sat(d.fails)
		if int(d.fails) >= p.UnhealthyAfter {
			wake = true
		}
		d.failures[d.failHead] = r
		d.failHead = (d.failHead + 1) % maxEvidence
	}
	after := d.windowFails(p.FailureWindow) >= p.minWindowFails() && int(d.n) >= p.FailureWindow
	return wake || first || before != after
}

// windowFails counts the failures among the last w outcomes held.
func (d *Detector) windowFails(w int) int {
	if w >= ringSize {
		return bits.OnesCount64(d.ring)
	}
	return bits.OnesCount64(d.ring & (1<<uint(w) - 1))
}

// Outcomes is how many outcomes the detector holds and how many failed:
// the long window the peers' background rate is taken from.
func (d *Detector) Outcomes() (n, failed int) {
	return int(d.n), bits.OnesCount64(d.ring)
}

// lastFailures returns up to k of the latest failures, oldest first.
func (d *Detector) lastFailures(k int) []probes.Result {
	k = min(k, maxEvidence)
	out := make([]probes.Result, 0, k)
	for i := k; i >= 1; i-- {
		r := d.failures[(int(d.failHead)-i+2*maxEvidence)%maxEvidence]
		if r.Start.IsZero() {
			continue
		}
		out = append(out, r)
	}
	return out
}

func sat(v uint16) uint16 {
	if v == ^uint16(0) {
		return v
	}
	return v + 1
}

// replay builds a Detector from a whole history, oldest first: what Observe
// would have built from the same results.
func replay(rs []probes.Result, p DetectorParams) *Detector {
	d := &Detector{}
	for _, r := range rs {
		d.Add(r, p)
	}
	return d
}

// mayBeBad reports whether the record meets the weakest condition of
// either rule (unhealthy_after failures in a row; a full window at the
// failure ratio, not yet healthy_after passes since): without it no
// background makes the instance Bad, so a judge run cannot mark it.
func (d *Detector) mayBeBad(p DetectorParams) bool {
	if int(d.fails) >= p.UnhealthyAfter {
		return true
	}
	return int(d.n) >= p.FailureWindow && int(d.passes) < p.HealthyAfter &&
		d.windowFails(p.FailureWindow) >= p.minWindowFails()
}
