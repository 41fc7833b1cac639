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
	for _, c := range []struct {
		name        string
		cur, lo, hi int
		waited      bool
		sched       time.Duration
		want        int
	}{
		{"busy: an eighth less", 512, 64, 512, true, 10 * limitBusy, 448},
		{"busy, nobody waited: an eighth less all the same", 128, 64, 512, false, 2 * limitBusy, 112},
		{"busy: never below the floor", 70, 64, 512, true, time.Second, 64},
		{"busy at the floor: stays", 64, 64, 512, true, time.Second, 64},
		{"busy exactly at the threshold: stays", 100, 64, 512, true, limitBusy, 100},
		{"free and waited: doubles", 64, 64, 512, true, limitFree / 2, 128},
		{"nothing scheduled and waited: doubles", 64, 64, 512, true, -1, 128},
		{"doubling stops at the most", 300, 64, 512, true, 0, 512},
		{"a little latency and waited: a quarter more", 64, 64, 512, true, (limitFree + limitIdle) / 2, 80},
		{"a quarter more stops at the most", 500, 64, 512, true, (limitFree + limitIdle) / 2, 512},
		{"some latency and waited: stays", 100, 64, 512, true, (limitIdle + limitBusy) / 2, 100},
		{"free, nobody waited: stays", 64, 64, 512, false, 0, 64},
		{"the most below the floor: the limit is the most", 10, 10, 10, true, 0, 10},
		{"a limit of one grows to two", 1, 1, 8, true, 0, 2},
		{"a limit of one shrinking stays at the floor", 1, 1, 8, true, time.Second, 1},
	} {
		if got := nextLimit(c.cur, c.lo, c.hi, c.waited, c.sched); got != c.want {
			t.Errorf("%s: nextLimit(%d, %d, %d, %t, %v) = %d, want %d", c.name, c.cur, c.lo, c.hi, c.waited, c.sched, got, c.want)
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

// With medic's CPU busy the limit stays at its floor (64), yet 100 probes
// hanging on their targets do not starve the others: a probe in flight
// for longer than limitOld no longer counts against the limit.
func TestSchedulerHangingTargetsDoNotStarveOthers(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-r.Context().Done()
		}
	}))
	var rc resultCounter
	s := NewScheduler(Options{MaxConcurrent: 200, OnResult: rc.onResult})
	s.schedP90 = func() time.Duration { return time.Second }

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
		t.Errorf("limit = %d with the CPU busy, want the floor, 64", limit)
	}
}

// The limit grows while probes wait for it and the CPU is free, and
// shrinks back to its floor once the CPU is busy; the probes in flight
// follow it down.
func TestSchedulerLimitFollowsCPU(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	}))
	s := NewScheduler(Options{MaxConcurrent: 256})
	var busy atomic.Bool
	s.schedP90 = func() time.Duration {
		if busy.Load() {
			return 50 * time.Millisecond
		}
		return 0
	}
	// 200 targets each taking 50 ms every 100 ms want about 100 in flight.
	var targets []Target
	for i := range 200 {
		targets = append(targets, staticTarget(fmt.Sprint("t-", i), srv.addr(), "/", 100*time.Millisecond, time.Second))
	}
	s.Update(targets)
	startScheduler(t, s)

	state := func() (limit, young int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.limit, s.young()
	}
	waitFor(t, 20*time.Second, "the limit to grow past 64 and more than 64 probes in flight", func() bool {
		limit, _ := state()
		return limit > 64 && srv.maxConcurrent() > 64
	})
	if g := testutil.ToFloat64(s.m.limit); g <= 64 {
		t.Errorf("medic_probe_concurrency_limit = %v, want above 64", g)
	}
	busy.Store(true)
	waitFor(t, 20*time.Second, "the limit back at 64 and the probes in flight within it", func() bool {
		limit, young := state()
		return limit == 64 && young <= 64
	})
	if g := testutil.ToFloat64(s.m.limit); g != 64 {
		t.Errorf("medic_probe_concurrency_limit = %v, want 64", g)
	}
}
