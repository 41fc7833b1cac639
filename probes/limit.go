package probes

import (
	"math"
	rtmetrics "runtime/metrics"
	"time"
)

// The scheduler adapts how many probes it lets run at once (its limit)
// between a floor and MaxConcurrent. A probe waiting on its target costs
// no CPU, so more of them in flight keep the schedule when targets are slow
// or hang; but when medic's own goroutines wait for a CPU, more probes in
// flight only make each one slower (a longer run queue, colder caches,
// probes that time out on medic's side, not the target's).
//
// A probe in flight for longer than limitOld waits on its target: it no
// longer counts against the limit (only MaxConcurrent bounds those), so
// slow or hanging targets never starve the others. The probes in flight
// are aged every limitScan.
//
// Every limitTick the limit moves (nextLimit):
//   - when goroutines waited for a CPU (the 90th percentile of the Go
//     scheduler's latency over the tick is over limitBusy), it shrinks by
//     an eighth, down to the floor;
//   - else, when a due probe waited for the limit, it grows, up to
//     MaxConcurrent: it doubles when goroutines hardly waited (under
//     limitFree: the CPU is free) and grows by a quarter when they waited
//     a little (under limitIdle);
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

// nextLimit is the limit after one tick: cur now, between lo and hi;
// waited is whether a due probe waited for the limit during the tick;
// sched the 90th percentile of scheduling latency over it (negative:
// nothing was scheduled, as free as it gets).
func nextLimit(cur, lo, hi int, waited bool, sched time.Duration) int {
	switch {
	case sched > limitBusy:
		cur -= max(cur/8, 1)
	case waited && sched < limitFree:
		cur *= 2
	case waited && sched < limitIdle:
		cur += max(cur/4, 1)
	}
	return min(max(cur, lo), hi)
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
