package probes

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNextLimit(t *testing.T) {
	const lo, hi = 64, 512
	busy, little, some := 10*limitBusy, (limitFree+limitIdle)/2, (limitIdle+limitBusy)/2
	for _, c := range []struct {
		name            string
		cur             int
		waited, skipped bool
		sched           time.Duration
		want            int
	}{
		{"schedule kept: doubles, busy or not", 64, false, false, busy, 128},
		{"schedule kept: doubles up to the most", 300, true, false, busy, hi},
		{"schedule kept at the most: stays", hi, false, false, 0, hi},
		{"skipping, busy: an eighth less", hi, true, true, busy, 448},
		{"skipping, busy, nobody waited: an eighth less all the same", 128, false, true, busy, 112},
		{"skipping, busy: never below the floor", 70, true, true, time.Second, lo},
		{"skipping, busy at the floor: stays", lo, true, true, time.Second, lo},
		{"skipping, exactly at the busy threshold: stays", 100, true, true, limitBusy, 100},
		{"skipping, free, waited: doubles", lo, true, true, limitFree / 2, 128},
		{"skipping, nothing scheduled, waited: doubles", lo, true, true, -1, 128},
		{"skipping, a little latency, waited: a quarter more", lo, true, true, little, 80},
		{"skipping, a quarter more stops at the most", 500, true, true, little, hi},
		{"skipping, some latency: stays", 100, true, true, some, 100},
		{"skipping, free, nobody waited: stays", lo, false, true, 0, lo},
	} {
		l := limitState{cur: c.cur, lo: lo, hi: hi, waited: c.waited, skipped: c.skipped, sched: c.sched}
		if got := nextLimit(l); got != c.want {
			t.Errorf("%s: nextLimit(%+v) = %d, want %d", c.name, l, got, c.want)
		}
	}
	// The floor above the most (max_concurrent_probes under 64): the limit
	// is the most, whatever happens.
	for _, l := range []limitState{
		{cur: 10, lo: 10, hi: 10, skipped: true, sched: time.Second},
		{cur: 10, lo: 10, hi: 10, waited: true, skipped: true},
		{cur: 10, lo: 10, hi: 10},
	} {
		if got := nextLimit(l); got != 10 {
			t.Errorf("nextLimit(%+v) = %d, want 10", l, got)
		}
	}
}

func TestQuantile(t *testing.T) {
	buckets := []float64{0, 0.001, 0.002, 0.004, 0.008}
	for _, c := range []struct {
		name         string
		counts, prev []uint64
		q, want      float64
	}{
		{"nothing recorded", []uint64{0, 0, 0, 0}, nil, 0.9, -1},
		{"nothing new since prev", []uint64{5, 5, 0, 0}, []uint64{5, 5, 0, 0}, 0.9, -1},
		{"all in the first bucket", []uint64{10, 0, 0, 0}, nil, 0.9, 0.001},
		{"90th of ten: the ninth", []uint64{8, 1, 1, 0}, nil, 0.9, 0.002},
		{"only what is new counts", []uint64{100, 0, 0, 10}, []uint64{100, 0, 0, 0}, 0.9, 0.008},
		{"prev of another length: since zero", []uint64{1, 0, 0, 9}, []uint64{1}, 0.9, 0.008},
		{"the median", []uint64{2, 2, 2, 2}, nil, 0.5, 0.002},
	} {
		if got := quantile(c.q, c.counts, c.prev, buckets); got != c.want {
			t.Errorf("%s: quantile = %v, want %v", c.name, got, c.want)
		}
	}
}

// The runtime's own histogram reads: a latency, or -1 when nothing ran.
func TestSchedLatencyReads(t *testing.T) {
	sl := newSchedLatency()
	sl.p90()
	done := make(chan struct{})
	for range 100 {
		go func() { done <- struct{}{} }()
	}
	for range 100 {
		<-done
	}
	if d := sl.p90(); d < 0 {
		t.Errorf("p90 after 100 goroutines ran = %v, want a latency", d)
	}
}

// hangingKeys returns n target keys whose next slots at interval fall
// between 100 and 300 ms from now, so that their probes start together.
func hangingKeys(n int, interval time.Duration) []string {
	var keys []string
	now := time.Now()
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprint("hang-", i)
		if d := nextSlot(now, phaseOf(k, interval), interval).Sub(now); d > 100*time.Millisecond && d < 300*time.Millisecond {
			keys = append(keys, k)
		}
	}
	return keys
}

// With the limit at its floor (64), 100 probes hanging on their targets do
// not starve the others: a probe in flight for longer than limitOld no
// longer counts against the limit.
func TestSchedulerHangingTargetsDoNotStarveOthers(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-r.Context().Done()
		}
	}))
	var rc resultCounter
	s := NewScheduler(Options{MaxConcurrent: 200, OnResult: rc.onResult})
	s.nextLimit = func(limitState) int { return 64 } // as if medic's CPU were busy and slots skipped

	var targets []Target
	for _, k := range hangingKeys(100, 30*time.Second) {
		targets = append(targets, staticTarget(k, srv.addr(), "/hang", 30*time.Second, 30*time.Second))
	}
	var fast []string
	for i := range 10 {
		k := fmt.Sprint("fast-", i)
		fast = append(fast, k)
		targets = append(targets, staticTarget(k, srv.addr(), "/fast", 100*time.Millisecond, time.Second))
	}
	s.Update(targets)
	startScheduler(t, s)

	waitFor(t, 20*time.Second, "all 100 probes hanging and every fast target probed 10 times", func() bool {
		if srv.maxFor("/hang") < 100 {
			return false
		}
		for _, k := range fast {
			if rc.get(k) < 10 {
				return false
			}
		}
		return true
	})
	t.Logf("hanging at most %d; fast-0 probed %d times", srv.maxFor("/hang"), rc.get("fast-0"))
	s.mu.Lock()
	limit := s.limit
	s.mu.Unlock()
	if limit != 64 {
		t.Errorf("limit = %d, want it pinned at 64", limit)
	}
}

// The limit falls to its floor while slots are skipped and the CPU is
// busy, and the probes in flight follow it down; it goes back up to the
// most once the CPU is free, and stays there while the schedule holds.
func TestSchedulerLimitFollowsCPU(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	s := NewScheduler(Options{MaxConcurrent: 256})
	var busy atomic.Bool
	busy.Store(true)
	s.schedP90 = func() time.Duration {
		if busy.Load() {
			return 50 * time.Millisecond
		}
		return 0
	}
	// 400 targets each taking 20 ms every 50 ms want about 160 in flight:
	// 64 at once are too few, slots are skipped.
	var targets []Target
	for i := range 400 {
		targets = append(targets, staticTarget(fmt.Sprint("t-", i), srv.addr(), "/", 50*time.Millisecond, time.Second))
	}
	s.Update(targets)
	startScheduler(t, s)

	state := func() (limit, young int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.limit, s.young()
	}
	waitFor(t, 20*time.Second, "the limit down at 64 and the probes in flight within it", func() bool {
		limit, young := state()
		return limit == 64 && young <= 64
	})
	if g := testutil.ToFloat64(s.m.limit); g != 64 {
		t.Errorf("medic_probe_concurrency_limit = %v, want 64", g)
	}
	if n := testutil.ToFloat64(s.m.skipped.WithLabelValues("svc", "concurrency")); n == 0 {
		t.Error("no slot skipped for want of room, yet the limit fell")
	}
	busy.Store(false)
	waitFor(t, 20*time.Second, "the limit back at 256 and more than 64 probes in flight", func() bool {
		limit, young := state()
		return limit == 256 && young > 64
	})
}

// While the schedule holds, a busy CPU does not lower the limit: it never
// makes a probe start later than it would have.
func TestSchedulerLimitStaysWhileScheduleHolds(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	s := NewScheduler(Options{MaxConcurrent: 256})
	var ticks atomic.Int64
	s.schedP90 = func() time.Duration {
		ticks.Add(1)
		return time.Second
	}
	var targets []Target
	for i := range 10 {
		targets = append(targets, staticTarget(fmt.Sprint("t-", i), srv.addr(), "/", 50*time.Millisecond, time.Second))
	}
	s.Update(targets)
	startScheduler(t, s)
	waitFor(t, 20*time.Second, "ten ticks of the limit", func() bool { return ticks.Load() >= 10 })
	s.mu.Lock()
	limit := s.limit
	s.mu.Unlock()
	if limit != 256 {
		t.Errorf("limit = %d with no slot skipped, want 256", limit)
	}
}
