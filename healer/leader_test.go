package healer

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/discovery"
)

// stubLeadership is a lease whose answers the test sets: it leads under
// gen for left, and StillLeads answers still (counting the questions).
type stubLeadership struct {
	mu     sync.Mutex
	gen    int64
	left   time.Duration
	still  bool
	asked  int
	holder string
	until  time.Time
}

func (s *stubLeadership) Leading() (int64, time.Duration) {
	if s.left <= 0 {
		return 0, 0
	}
	return s.gen, s.left
}

func (s *stubLeadership) StillLeads(_ context.Context, g int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	return s.still && g == s.gen
}
func (s *stubLeadership) Leader() (string, time.Time) { return s.holder, s.until }
func (s *stubLeadership) Holder() string              { return "me" }

// TestLeaderOnly: the leader marks through the AWS actuator under a
// deadline and a fence checked right before SetInstanceHealth; a standby,
// or a leader that lost the lease between the re-read and the call,
// reports standby and calls nothing.
func TestLeaderOnly(t *testing.T) {
	until := time.Date(2026, 3, 1, 12, 0, 15, 0, time.UTC)
	tests := []struct {
		desc       string
		l          *stubLeadership
		want       ActionResult
		wantCalls  int // SetInstanceHealth
		wantAsked  int // fence questions
		wantLogged string
	}{
		{desc: "leader, still leading at the call: marked, generation logged",
			l: &stubLeadership{gen: 7, left: 10 * time.Second, still: true}, want: ResultMarked, wantCalls: 1, wantAsked: 1},
		{desc: "leader at the start, lease lost before the call: standby, nothing called",
			l: &stubLeadership{gen: 7, left: 10 * time.Second}, want: ResultStandby, wantAsked: 1,
			wantLogged: `reason="lost the lease (generation 7) before the call"`},
		{desc: "another replica holds it: standby",
			l: &stubLeadership{holder: "i-0other/host/1", until: until}, want: ResultStandby,
			wantLogged: `reason="another replica holds the lease" holder=i-0other/host/1 until=2026-03-01T12:00:15Z`},
		{desc: "nobody known to hold it: standby",
			l: &stubLeadership{}, want: ResultStandby, wantLogged: `reason="no replica is known to hold the lease" holder= `},
		{desc: "this replica, renewal overdue: standby",
			l: &stubLeadership{holder: "me", until: until}, want: ResultStandby, wantLogged: `reason="this replica's lease renewal is overdue" holder=me`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFakeASG("i-1")
			var buf bytes.Buffer
			logger := log.NewLogfmtLogger(&buf)
			a := LeaderOnly(testActuator(f, logger), tc.l, logger)
			o := a.MarkUnhealthy(context.Background(), web1, "req-1")
			if o.Result != tc.want || f.callCount() != tc.wantCalls || tc.l.asked != tc.wantAsked {
				t.Errorf("outcome %+v, %d calls, fence asked %d times; want %s, %d calls, asked %d",
					o, f.callCount(), tc.l.asked, tc.want, tc.wantCalls, tc.wantAsked)
			}
			if tc.want == ResultMarked && o.Generation != 7 {
				t.Errorf("generation = %d, want 7", o.Generation)
			}
			if tc.wantLogged != "" && !strings.Contains(buf.String(), tc.wantLogged) {
				t.Errorf("logs lack %s:\n%s", tc.wantLogged, buf.String())
			}
		})
	}
}

// TestLeaderOnlyBoundsTheAction: the leader's action runs under a context
// that ends when its leadership would.
func TestLeaderOnlyBoundsTheAction(t *testing.T) {
	var deadline time.Time
	var has bool
	rec := actuatorFunc(func(ctx context.Context, _ discovery.Instance, _ string) Outcome {
		deadline, has = ctx.Deadline()
		if fenceFrom(ctx) == nil {
			t.Error("no fence in the leader's context")
		}
		return Outcome{Result: ResultMarked}
	})
	before := time.Now()
	LeaderOnly(rec, &stubLeadership{gen: 1, left: 2 * time.Second, still: true}, nil).MarkUnhealthy(context.Background(), web1, "r")
	after := time.Now()
	if !has || deadline.Before(before.Add(2*time.Second)) || deadline.After(after.Add(2*time.Second)) {
		t.Errorf("deadline %v (set %v), want 2s after the call", deadline.Sub(before), has)
	}
}

type actuatorFunc func(context.Context, discovery.Instance, string) Outcome

func (f actuatorFunc) MarkUnhealthy(ctx context.Context, i discovery.Instance, r string) Outcome {
	return f(ctx, i, r)
}
