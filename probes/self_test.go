package probes

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// The self-health window: each threshold at, just below and just above its
// limit, the minimum volume, and results ageing out.
func TestSelfHealth(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ok := func(late time.Duration) Result { return Result{Success: true, Lateness: late} }
	fail := func(reason string) Result { return Result{Reason: reason} }
	type ev struct {
		at   time.Duration // after t0
		r    Result
		n    int // times
		skip int // concurrency-skipped slots instead of a result
	}
	rows := []struct {
		desc   string
		evs    []ev
		at     time.Duration // when health is read
		unwell string        // substring of Reason; "" means well
	}{
		{desc: "nothing yet", at: time.Second},
		{desc: "all on time", evs: []ev{{r: ok(time.Millisecond), n: 100}}, at: time.Second},
		{desc: "too few slots to judge, all very late", evs: []ev{{r: ok(5 * time.Second), n: SelfMinSlots - 1}}, at: time.Second},
		{desc: "p99 exactly at 1s: well", evs: []ev{{r: ok(10 * time.Millisecond), n: 98}, {r: ok(time.Second), n: 2}}, at: time.Second},
		{desc: "p99 above 1s: unwell", evs: []ev{{r: ok(10 * time.Millisecond), n: 98}, {r: ok(2 * time.Second), n: 2}},
			at: time.Second, unwell: "probes start late (p99 2.5s > 1s)"},
		{desc: "1% late (the 99th is on time): well", evs: []ev{{r: ok(10 * time.Millisecond), n: 99}, {r: ok(5 * time.Second), n: 1}}, at: time.Second},
		{desc: "skipped exactly 5%: well", evs: []ev{{r: ok(0), n: 95}, {skip: 5}}, at: time.Second},
		{desc: "skipped above 5%: unwell", evs: []ev{{r: ok(0), n: 94}, {skip: 6}}, at: time.Second,
			unwell: "6.0% of probe slots skipped with no worker free"},
		{desc: "4 local failures: below the minimum count", evs: []ev{{r: ok(0), n: 96}, {r: fail("dns lookup of web failed"), n: 4}}, at: time.Second},
		{desc: "5 local failures in 100 slots: unwell", evs: []ev{{r: ok(0), n: 95}, {r: fail(syscall.EADDRNOTAVAIL.Error()), n: 5}},
			at: time.Second, unwell: "5 probes failed on medic's own side"},
		{desc: "5 local failures in 500 slots (exactly 1%): well", evs: []ev{{r: ok(0), n: 495}, {r: fail(syscall.EMFILE.Error()), n: 5}}, at: time.Second},
		{desc: "target failures are not medic's", evs: []ev{{r: fail("connection refused"), n: 50}, {r: fail("status 500"), n: 50}}, at: time.Second},
		{desc: "no such host is the name's fault, not medic's", evs: []ev{{r: fail("no such host web.example"), n: 100}}, at: time.Second},
		{desc: "late probes a window ago have aged out", evs: []ev{{r: ok(5 * time.Second), n: 100}, {at: SelfWindow + time.Second, r: ok(0), n: 100}},
			at: SelfWindow + 2*time.Second},
		{desc: "late probes within the window still count", evs: []ev{{r: ok(5 * time.Second), n: 100}, {at: SelfWindow / 2, r: ok(0), n: 100}},
			at: SelfWindow/2 + time.Second, unwell: "probes start late"},
	}
	for _, row := range rows {
		t.Run(row.desc, func(t *testing.T) {
			var w selfWindow
			for _, e := range row.evs {
				at := t0.Add(e.at)
				if e.skip > 0 {
					w.skip(at, e.skip)
				}
				for range e.n {
					r := e.r
					w.probe(at, &r)
				}
			}
			h := w.health(t0.Add(row.at))
			if h.Unwell != (row.unwell != "") || !strings.Contains(h.Reason, row.unwell) {
				t.Errorf("health = %+v; want unwell %v with %q", h, row.unwell != "", row.unwell)
			}
		})
	}
}
