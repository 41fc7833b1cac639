package probes

import (
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Self-health: is medic itself able to probe? A probe that starts late,
// a slot skipped because no worker was free, or a failure that comes from
// medic's own side (its resolver, its sockets) says nothing about the
// target. When many do, every verdict drawn from the probes is suspect and
// the healer should act on none (issue: "is it me?").
//
// The scheduler counts, over the last SelfWindow (in SelfBuckets rotating
// buckets, so old events age out in steps of SelfWindow/SelfBuckets):
//
//   - probe lateness: how long after its slot each probe started;
//   - concurrency skips: slots dropped because no worker came free within
//     an interval (overlap skips are the target's own slowness, not
//     counted);
//   - local failures: failed probes whose reason is a resolver failure (not
//     "no such host", which is the name's own fault) or a local
//     socket error (EADDRNOTAVAIL, ENOBUFS, EMFILE, ENFILE, ENOMEM).
//
// Thresholds (SelfHealth.Unwell), each needing at least SelfMinSlots slots
// in the window so that a quiet medic is never called unwell:
//
//   - p99 lateness above SelfMaxLatenessP99 (1 s);
//   - concurrency-skipped slots above SelfMaxSkippedFraction (5%) of slots;
//   - local failures at least SelfMinLocalFailures (5) and above
//     SelfMaxLocalFraction (1%) of slots.
const (
	SelfWindow             = time.Minute
	SelfBuckets            = 6
	SelfMinSlots           = 20
	SelfMaxLatenessP99     = time.Second
	SelfMaxSkippedFraction = 0.05
	SelfMinLocalFailures   = 5
	SelfMaxLocalFraction   = 0.01
)

// latenessBounds are the upper bounds of the lateness buckets; p99 is
// reported as the bound of the bucket it falls in (the last is +Inf).
var latenessBounds = [...]time.Duration{
	10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// SelfHealth is the scheduler's view of itself over the last SelfWindow.
type SelfHealth struct {
	Window time.Duration
	// Probes started, slots skipped for want of a worker, failures, and
	// the failures that are medic's own.
	Probes, Skipped, Failures, LocalFailures int
	// LatenessP99: 99% of probes started at most this long after their
	// slot (a bucket bound; above the largest bound it is reported as
	// twice that bound).
	LatenessP99 time.Duration
	// SkippedFraction is Skipped / (Probes + Skipped); LocalShare is
	// LocalFailures / Failures (0 without failures).
	SkippedFraction, LocalShare float64
	// Unwell: a threshold above is crossed; Reason names which, with the
	// figures.
	Unwell bool
	Reason string
}

type selfBucket struct {
	start                          time.Time
	probes, skipped, failed, local int
	late                           [len(latenessBounds) + 1]int
}

// selfWindow holds the buckets; the Scheduler's mu guards it.
type selfWindow struct {
	b   [SelfBuckets]selfBucket
	cur int
}

// bucket returns the bucket for now, starting new ones as time passes.
func (w *selfWindow) bucket(now time.Time) *selfBucket {
	width := SelfWindow / SelfBuckets
	b := &w.b[w.cur]
	if !b.start.IsZero() && now.Sub(b.start) < width {
		return b
	}
	w.cur = (w.cur + 1) % SelfBuckets
	b = &w.b[w.cur]
	*b = selfBucket{start: now}
	return b
}

func (w *selfWindow) probe(now time.Time, r *Result) {
	b := w.bucket(now)
	b.probes++
	i := 0
	for i < len(latenessBounds) && r.Lateness > latenessBounds[i] {
		i++
	}
	b.late[i]++
	if !r.Success {
		b.failed++
		if localFailure(r.Reason) {
			b.local++
		}
	}
}

func (w *selfWindow) skip(now time.Time, n int) { w.bucket(now).skipped += n }

// health sums the buckets younger than SelfWindow and applies the
// thresholds.
func (w *selfWindow) health(now time.Time) SelfHealth {
	h := SelfHealth{Window: SelfWindow}
	var late [len(latenessBounds) + 1]int
	for i := range w.b {
		b := &w.b[i]
		if b.start.IsZero() || now.Sub(b.start) >= SelfWindow {
			continue
		}
		h.Probes += b.probes
		h.Skipped += b.skipped
		h.Failures += b.failed
		h.LocalFailures += b.local
		for j, n := range b.late {
			late[j] += n
		}
	}
	slots := h.Probes + h.Skipped
	if slots > 0 {
		h.SkippedFraction = float64(h.Skipped) / float64(slots)
	}
	if h.Failures > 0 {
		h.LocalShare = float64(h.LocalFailures) / float64(h.Failures)
	}
	if h.Probes > 0 {
		rank, seen := (h.Probes*99+99)/100, 0 // ceil(0.99 n)
		for j, n := range late {
			seen += n
			if seen >= rank {
				if j < len(latenessBounds) {
					h.LatenessP99 = latenessBounds[j]
				} else {
					h.LatenessP99 = 2 * latenessBounds[len(latenessBounds)-1]
				}
				break
			}
		}
	}
	if slots < SelfMinSlots {
		return h
	}
	var why []string
	if h.LatenessP99 > SelfMaxLatenessP99 {
		why = append(why, fmt.Sprintf("probes start late (p99 %s > %s)", h.LatenessP99, SelfMaxLatenessP99))
	}
	if h.SkippedFraction > SelfMaxSkippedFraction {
		why = append(why, fmt.Sprintf("%.1f%% of probe slots skipped with no worker free (> %.0f%%)",
			100*h.SkippedFraction, 100*SelfMaxSkippedFraction))
	}
	if h.LocalFailures >= SelfMinLocalFailures && float64(h.LocalFailures) > SelfMaxLocalFraction*float64(slots) {
		why = append(why, fmt.Sprintf("%d probes failed on medic's own side (DNS, local sockets) in %s",
			h.LocalFailures, SelfWindow))
	}
	if len(why) > 0 {
		h.Unwell = true
		h.Reason = strings.Join(why, "; ")
	}
	return h
}

// localReasons are failure reasons (see failReason) that come from medic's
// own host: its resolver and its socket resources.
var localReasons = []string{
	syscall.EADDRNOTAVAIL.Error(), syscall.ENOBUFS.Error(), syscall.EMFILE.Error(),
	syscall.ENFILE.Error(), syscall.ENOMEM.Error(),
}

// localFailure reports whether a failure reason is medic's own.
func localFailure(reason string) bool {
	// "no such host" is the name's fault (one endpoint misspelt), not the
	// resolver's: not counted.
	if strings.HasPrefix(reason, "dns lookup of ") {
		return true
	}
	for _, s := range localReasons {
		if strings.Contains(reason, s) {
			return true
		}
	}
	return false
}

// SelfHealth returns the scheduler's view of itself over the last
// SelfWindow. It is cheap: a few dozen counters summed under the lock.
func (s *Scheduler) SelfHealth() SelfHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self.health(s.now())
}
