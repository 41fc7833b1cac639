package lease

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/internal/logkeys"
)

// Leadership is what Guarded asks of a lease; *Lease satisfies it.
type Leadership interface {
	IsLeader() bool
	Leader() (holder string, until time.Time)
}

// leaderFor is the optional part of a Leadership: how much longer it stays
// leader. *Lease has it; Guarded bounds the leader's action by it.
type leaderFor interface {
	LeaderFor() time.Duration
}

// Guarded returns the Actuator that acts through leader only while l says
// this replica is the leader, and otherwise hands the instance to standby
// (healer.DryRun, so that a standby replica reports "would mark" exactly
// as a dry run does) after logging why it did not act.
//
// When l also has LeaderFor (as *Lease does), the leader's action runs
// under a context that ends when the leadership would: retries of a mark
// never outlive the lease. A call already sent cannot be recalled; the
// lease's safety margin covers it. logger nil discards.
func Guarded(l Leadership, leader, standby healer.Actuator, logger log.Logger) healer.Actuator {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return guarded{l: l, leader: leader, standby: standby, logger: logger}
}

type guarded struct {
	l               Leadership
	leader, standby healer.Actuator
	logger          log.Logger
}

func (g guarded) MarkUnhealthy(ctx context.Context, inst discovery.Instance, requestID string) healer.Outcome {
	if g.l.IsLeader() {
		lf, ok := g.l.(leaderFor)
		if !ok {
			return g.leader.MarkUnhealthy(ctx, inst, requestID)
		}
		if left := lf.LeaderFor(); left > 0 {
			ctx, cancel := context.WithTimeout(ctx, left)
			defer cancel()
			return g.leader.MarkUnhealthy(ctx, inst, requestID)
		}
		// The leadership ran out between the two questions: stand by.
	}
	holder, until := g.l.Leader()
	reason := "another replica holds the lease"
	switch {
	case holder == "":
		reason = "no replica is known to hold the lease"
	case holderIsSelf(g.l, holder):
		reason = "this replica's lease renewal is overdue"
	}
	level.Info(g.logger).Log(logkeys.Msg, "not the lease holder: reporting instead of acting",
		logkeys.InstanceID, inst.ID, logkeys.Group, inst.Group, logkeys.RequestID, requestID,
		logkeys.Reason, reason, logkeys.Holder, holder, logkeys.Until, until)
	return g.standby.MarkUnhealthy(ctx, inst, requestID)
}

// holderIsSelf reports whether holder is the replica l belongs to, when l
// can tell (a *Lease knows its own holder identity).
func holderIsSelf(l Leadership, holder string) bool {
	if ll, ok := l.(*Lease); ok {
		return ll.o.Holder == holder
	}
	return false
}
