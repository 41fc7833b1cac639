package probes

import (
	"math"
	rtmetrics "runtime/metrics"
	"time"
)

// The scheduler adapts how many probes it lets run at once (its limit)
// between a floor and MaxConcurrent, but only once its schedule is lost:
// while slots are skipped for want of room (medic_probe_skipped_total,
// reason concurrency; within the last two of the longest interval, at
// least a second: slots are skipped in waves). Then, if medic's own goroutines wait for a CPU,
// more probes in flight cannot run more probes a second; they only make
// each one slower (a longer run queue, colder caches, probes that time
// out on medic's side, not the target's) and cost more CPU each. While
// the schedule holds, the limit goes back to MaxConcurrent: it never makes
// a probe start later than it would have.
//
// A probe in flight for longer than limitOld waits on its target: it no
// longer counts against the limit (only MaxConcurrent bounds those), so
// slow or hanging targets never starve the others. The probes in flight
// are aged every limitScan.
//
// Every limitTick the limit moves (nextLimit):
//   - no slot skipped lately: it doubles, up to MaxConcurrent;
//   - slots skipped and goroutines waited for a CPU (the 90th percentile
//     of the Go scheduler's latency over the tick is over limitBusy): an
//     eighth less, down to the floor;
//   - slots skipped, a due probe waited for the limit and goroutines did
//     not wait: it doubles when they hardly waited (under limitFree, the
//     CPU is free), grows by a quarter when they waited a little (under
//     limitIdle);
//   - else it stays.
const (
	limitScan  = 10 * time.Millisecond
	limitOld   = 25 * time.Millisecond
	limitTick  = 100 * time.Millisecond
	limitBusy  = time.Millisecond
	limitIdle  = 250 * time.Microsecond
	limitFree  = 50 * time.Microsecond
	limitFloor = 64
)

// limitState is what one tick of the limit sees: the limit now (cur),
// between lo and hi; whether a due probe waited for the limit during the
// tick and whether slots are being skipped for want of room; and the 90th
// percentile of scheduling latency over it (negative: nothing was
// scheduled, as free as it gets).
type limitState struct {
	cur, lo, hi     int
	waited, skipped bool
	sched           time.Duration
}

// nextLimit is the limit after one tick.
func nextLimit(l limitState) int {
	cur := l.cur
	switch {
	case !l.skipped:
		cur *= 2
	case l.sched > limitBusy:
		cur -= max(cur/8, 1)
	case l.waited && l.sched < limitFree:
		cur *= 2
	case l.waited && l.sched < limitIdle:
		cur += max(cur/4, 1)
	}
	return min(max(cur, l.lo), l.hi)
}

// schedLatency reads the Go scheduler's latency histogram (how long
// goroutines were runnable before they ran) and returns the 90th
// percentile of what it recorded since the previous call, or -1 when it
// recorded nothing.
type schedLatency struct {
	sample []rtmetrics.Sample
	prev   []uint64
}

func newSchedLatency() *schedLatency {
	return &schedLatency{sample: []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}}
}

func (s *schedLatency) p90() time.Duration {
	rtmetrics.Read(s.sample)
	if s.sample[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return -1
	}
	h := s.sample[0].Value.Float64Histogram()
	q := quantile(0.9, h.Counts, s.prev, h.Buckets)
	s.prev = append(s.prev[:0], h.Counts...)
	switch {
	case q < 0:
		return -1
	case math.IsInf(q, 1) || q > math.MaxInt64/float64(time.Second):
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(q * float64(time.Second))
}

// quantile returns the upper bound of the bucket holding the q-quantile of
// what a cumulative histogram recorded between prev and counts (prev nil
// or of another length: since zero), or -1 when it recorded nothing.
// buckets are the bounds: counts[i] is in [buckets[i], buckets[i+1]).
func quantile(q float64, counts, prev []uint64, buckets []float64) float64 {
	if len(prev) != len(counts) {
		prev = make([]uint64, len(counts))
	}
	var total uint64
	for i, c := range counts {
		total += c - prev[i]
	}
	if total == 0 {
		return -1
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range counts {
		seen += c - prev[i]
		if seen >= want {
			return buckets[i+1]
		}
	}
	return buckets[len(buckets)-1]
}
