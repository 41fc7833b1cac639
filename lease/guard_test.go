package lease

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
)

// recordingActuator stands for the AWS actuator: it records each call and
// the deadline of its context.
type recordingActuator struct {
	calls     int
	deadline  time.Time
	hasDeadln bool
}

func (r *recordingActuator) MarkUnhealthy(ctx context.Context, _ discovery.Instance, _ string) healer.Outcome {
	r.calls++
	r.deadline, r.hasDeadln = ctx.Deadline()
	return healer.Outcome{Result: healer.ResultMarked, Attempts: 1}
}

// stubLeadership is a Leadership without LeaderFor.
type stubLeadership struct {
	leader bool
	holder string
	until  time.Time
}

func (s stubLeadership) IsLeader() bool              { return s.leader }
func (s stubLeadership) Leader() (string, time.Time) { return s.holder, s.until }

func TestGuarded(t *testing.T) {
	inst := discovery.Instance{ID: "i-0bad", Group: "web-asg", AZ: "us-east-1a", HealthStatus: "Healthy"}
	until := time.Date(2026, 3, 1, 12, 0, 15, 0, time.UTC)
	tests := []struct {
		desc       string
		l          Leadership
		wantResult healer.ActionResult
		wantLogged string // "" when nothing must be logged
	}{
		{"leader acts", stubLeadership{leader: true, holder: "me", until: until}, healer.ResultMarked, ""},
		{"standby reports like a dry run", stubLeadership{holder: "i-0other/host/1", until: until}, healer.ResultDryRun,
			`reason="another replica holds the lease" holder=i-0other/host/1 until=2026-03-01T12:00:15Z`},
		{"nobody known to hold it: still no action", stubLeadership{}, healer.ResultDryRun,
			`reason="no replica is known to hold the lease" holder= `},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			var logs testkit.SyncBuffer
			act := &recordingActuator{}
			g := Guarded(tt.l, act, healer.DryRun(log.NewLogfmtLogger(&logs)), log.NewLogfmtLogger(&logs))
			out := g.MarkUnhealthy(context.Background(), inst, "req-1")
			if out.Result != tt.wantResult {
				t.Errorf("Result = %q, want %q", out.Result, tt.wantResult)
			}
			if wantCalls := map[bool]int{true: 1, false: 0}[tt.wantResult == healer.ResultMarked]; act.calls != wantCalls {
				t.Errorf("leader actuator called %d times, want %d", act.calls, wantCalls)
			}
			if tt.wantLogged == "" {
				if logs.String() != "" {
					t.Errorf("logged %s", logs.String())
				}
				return
			}
			for _, want := range []string{
				`msg="not the lease holder: reporting instead of acting" instance_id=i-0bad asg=web-asg request_id=req-1 ` + tt.wantLogged,
				`msg="dry run: would mark instance Unhealthy" instance_id=i-0bad`,
			} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("logs lack %s:\n%s", want, logs.String())
				}
			}
		})
	}
}

// TestGuardedLease: with a real Lease, the leader's action is bounded by
// what is left of the leadership, and a replica whose renewal is overdue
// stands by and says so.
func TestGuardedLease(t *testing.T) {
	clk := newClock()
	table := newFakeTable()
	a := newReplica(table, "a", 15*time.Second, 5*time.Second, clk.Now)
	act := &recordingActuator{}
	var logs testkit.SyncBuffer
	g := Guarded(a.l, act, healer.DryRun(nil), log.NewLogfmtLogger(&logs))
	inst := discovery.Instance{ID: "i-0bad", Group: "web-asg"}

	a.l.attempt(context.Background())
	clk.Advance(10 * time.Second) // 2s of leadership left
	before := time.Now()
	if out := g.MarkUnhealthy(context.Background(), inst, "req-1"); out.Result != healer.ResultMarked {
		t.Fatalf("leader: Result = %q, want marked", out.Result)
	}
	after := time.Now()
	if !act.hasDeadln {
		t.Fatal("the leader's action has no deadline")
	}
	if act.deadline.Before(before.Add(2*time.Second)) || act.deadline.After(after.Add(2*time.Second)) {
		t.Errorf("the leader's action may run until %s after the call, want the 2s of leadership left", act.deadline.Sub(before))
	}

	clk.Advance(2 * time.Second) // the margin is reached without a renewal
	if out := g.MarkUnhealthy(context.Background(), inst, "req-2"); out.Result != healer.ResultDryRun {
		t.Errorf("overdue: Result = %q, want dry_run", out.Result)
	}
	if act.calls != 1 {
		t.Errorf("leader actuator called %d times, want 1", act.calls)
	}
	if want := `reason="this replica's lease renewal is overdue" holder=a`; !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %s:\n%s", want, logs.String())
	}
}
