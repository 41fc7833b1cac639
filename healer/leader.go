package healer

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/logkeys"
)

// Leadership is what LeaderOnly asks of a lease; *lease.Lease satisfies it.
type Leadership interface {
	// Leading is the lease generation this replica leads under and how
	// much longer it leads without another renewal; left 0 when it does
	// not lead.
	Leading() (generation int64, left time.Duration)
	// StillLeads reports whether this replica leads now, under generation
	// (the fencing token): false once it lost the lease, even if it took it
	// back since under a later generation.
	StillLeads(ctx context.Context, generation int64) bool
	// Leader is the last known holder ("" when none is known) and the
	// expiry written in the lease.
	Leader() (holder string, until time.Time)
	// Holder is this replica's own holder identity.
	Holder() string
}

// LeaderOnly returns the Actuator that acts through a only while l says
// this replica leads, and otherwise reports ResultStandby, calling nothing
// and logging why: a standby's would-be mark is a report, never state; the
// replica that leads decides afresh.
//
// While leading, a runs under a context that ends when the leadership
// would (retries never outlive the lease) and carries a fence: right
// before every mutating call a asks it whether this replica still leads
// under the generation it started with (the AWS actuator does), and stands
// by if not. A call already sent cannot be recalled; the lease's safety
// margin covers it. logger nil discards.
func LeaderOnly(a Actuator, l Leadership, logger log.Logger) Actuator {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return leaderOnly{a: a, l: l, logger: logger}
}

type leaderOnly struct {
	a      Actuator
	l      Leadership
	logger log.Logger
}

func (g leaderOnly) MarkUnhealthy(ctx context.Context, inst discovery.Instance, requestID string) Outcome {
	if gen, left := g.l.Leading(); left > 0 {
		ctx, cancel := context.WithTimeout(ctx, left)
		defer cancel()
		ctx = context.WithValue(ctx, fenceKey{}, &fence{generation: gen, l: g.l})
		return g.a.MarkUnhealthy(ctx, inst, requestID)
	}
	holder, until := g.l.Leader()
	reason := "another replica holds the lease"
	switch {
	case holder == "":
		reason = "no replica is known to hold the lease"
	case holder == g.l.Holder():
		reason = "this replica's lease renewal is overdue"
	}
	level.Info(g.logger).Log(logkeys.Msg, "not the lease holder: reporting instead of acting",
		logkeys.InstanceID, inst.ID, logkeys.Group, inst.Group, logkeys.RequestID, requestID,
		logkeys.Reason, reason, logkeys.Holder, holder, logkeys.Until, until)
	return Outcome{Result: ResultStandby, Reason: reason}
}

// fence is the question an actuator asks right before a mutating call:
// does this replica still lead under the generation the action began with?
type fence struct {
	generation int64
	l          Leadership
}

type fenceKey struct{}

// fenceFrom is the fence LeaderOnly put in ctx; nil without a lease.
func fenceFrom(ctx context.Context) *fence {
	f, _ := ctx.Value(fenceKey{}).(*fence)
	return f
}

// check is nil while the replica still leads under f's generation.
func (f *fence) check(ctx context.Context) error {
	if f.l.StillLeads(ctx, f.generation) {
		return nil
	}
	return fmt.Errorf("lost the lease (generation %d) before the call", f.generation)
}
