package probes

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkQueueAdvance is the dispatcher's steady state: the earliest of
// 10,240 entries moves one interval on, to the back of the queue.
func BenchmarkQueueAdvance(b *testing.B) {
	s, _ := queueOf(10240)
	b.ResetTimer()
	for range b.N {
		e := s.queue[0].e
		e.next = e.next.Add(10 * time.Second)
		s.advanceTo(e)
	}
}

// queueOf is a Scheduler whose queue holds n entries due at random times
// within 10 s.
func queueOf(n int) (*Scheduler, []*entry) {
	s := &Scheduler{epoch: time.Now()}
	es := make([]*entry, n)
	for i := range es {
		e := &entry{index: -1, next: s.epoch.Add(rand.N(10 * time.Second))}
		es[i] = e
		s.queue.push(qitem{due: s.due(e), e: e})
	}
	return s, es
}

// TestQueueOrder checks the heap against a table of operations: pushes,
// removals from the middle, changed due times, and pops in order.
func TestQueueOrder(t *testing.T) {
	for _, tc := range []struct {
		desc string
		n    int
	}{
		{desc: "empty", n: 0},
		{desc: "one entry", n: 1},
		{desc: "fewer than one node's children", n: 3},
		{desc: "many levels", n: 1000},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s, es := queueOf(tc.n)
			for i, e := range es {
				switch i % 3 {
				case 0: // removed
					s.queue.remove(e.index)
					if e.index != -1 {
						t.Fatalf("removed entry keeps index %d", e.index)
					}
				case 1: // due later or earlier
					e.next = e.next.Add(time.Duration(rand.N(20)-10) * time.Second)
					s.queue[e.index].due = s.due(e)
					s.queue.fix(e.index)
				}
			}
			s.queue.init()
			for i, it := range s.queue {
				if it.e.index != i {
					t.Fatalf("entry at %d says index %d", i, it.e.index)
				}
			}
			want := tc.n - (tc.n+2)/3
			var last time.Duration
			for k := 0; len(s.queue) > 0; k++ {
				top := s.queue[0]
				if k > 0 && top.due < last {
					t.Fatalf("pop %d: due %s before the previous %s", k, top.due, last)
				}
				last = top.due
				s.queue.remove(0)
				want--
			}
			if want != 0 {
				t.Errorf("popped %d entries too few", want)
			}
		})
	}
}
