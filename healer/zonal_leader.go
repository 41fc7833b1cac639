package healer

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/arczonalshift"
)

// ErrZonalStandby is what a LeaderOnlyZonal shifter answers to a start or a
// cancel on a replica that does not lead: nothing was called.
var ErrZonalStandby = errors.New("not the lease holder: the leading replica decides zonal shifts")

// LeaderOnlyZonal returns the ZonalShifter that starts and cancels shifts
// through c only while l says this replica leads (and still leads under the
// same generation right before the call); listing always goes through.
func LeaderOnlyZonal(c ZonalShifter, l Leadership) ZonalShifter {
	return leaderZonal{ZonalShifter: c, l: l}
}

type leaderZonal struct {
	ZonalShifter
	l Leadership
}

func (z leaderZonal) leads(ctx context.Context) bool {
	gen, left := z.l.Leading()
	return left > 0 && z.l.StillLeads(ctx, gen)
}

func (z leaderZonal) StartZonalShift(ctx context.Context, in *arczonalshift.StartZonalShiftInput, optFns ...func(*arczonalshift.Options)) (*arczonalshift.StartZonalShiftOutput, error) {
	if !z.leads(ctx) {
		return nil, ErrZonalStandby
	}
	return z.ZonalShifter.StartZonalShift(ctx, in, optFns...)
}

func (z leaderZonal) CancelZonalShift(ctx context.Context, in *arczonalshift.CancelZonalShiftInput, optFns ...func(*arczonalshift.Options)) (*arczonalshift.CancelZonalShiftOutput, error) {
	if !z.leads(ctx) {
		return nil, ErrZonalStandby
	}
	return z.ZonalShifter.CancelZonalShift(ctx, in, optFns...)
}
