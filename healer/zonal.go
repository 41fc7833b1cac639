package healer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/arczonalshift"
	arctypes "github.com/aws/aws-sdk-go-v2/service/arczonalshift/types"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/internal/logkeys"
)

// This file reports impaired availability zones and, opted in, moves the
// load balancer's traffic away from one with an ARC zonal shift. DecideZonal
// is pure; ZonalShiftActuator is the thin part that calls ARC.

// ZonalAction is what DecideZonal asks for.
type ZonalAction string

const (
	ZonalNone   ZonalAction = "none"   // do nothing
	ZonalStart  ZonalAction = "start"  // start a zonal shift away from AZ
	ZonalKeep   ZonalAction = "keep"   // medic's shift stays
	ZonalCancel ZonalAction = "cancel" // cancel medic's shift ShiftID
)

// ZonalReason says why. The values are the `reason` label of a per-service
// gauge or of medic_zonal_shift_decisions_total.
type ZonalReason string

const (
	// ZoneHealthy: no zone is impaired and no shift of medic's is active.
	ZoneHealthy ZonalReason = "no_impaired_zone"
	// ZoneImpaired: one zone is impaired, the others are healthy: start.
	ZoneImpaired ZonalReason = "zone_impaired"
	// ZoneImpairedReportOnly: as ZoneImpaired, but zonal_shift is not
	// enabled for the service: reported, nothing started.
	ZoneImpairedReportOnly ZonalReason = "zone_impaired_report_only"
	// ZoneOthersUnhealthy: the zone is impaired but other zones have bad
	// instances too (or several zones are impaired): shifting would push
	// traffic onto unhealthy zones. Never started; an active shift of
	// medic's is cancelled.
	ZoneOthersUnhealthy ZonalReason = "other_zones_unhealthy"
	// ZoneShiftByOthers: a zonal shift not started by medic (a person,
	// zonal autoshift, a practice run) is active for the resource: at most
	// one at a time, and medic never touches others' shifts.
	ZoneShiftByOthers ZonalReason = "shift_by_others"
	// ZoneStillImpaired: medic's shift is active and its zone still has
	// bad instances: keep it (it ends at its expiry at the latest).
	ZoneStillImpaired ZonalReason = "zone_still_impaired"
	// ZoneRecovered: medic's shift is active and every probed instance of
	// its zone passes again: cancel it.
	ZoneRecovered ZonalReason = "zone_recovered"
	// ZoneShiftDisabled: medic's shift is active but zonal_shift has been
	// turned off for the service: cancel it.
	ZoneShiftDisabled ZonalReason = "zonal_shift_disabled"
	// ZoneExtraShift: more than one shift of medic's is active (a restart
	// raced one): cancel the newer ones, one a cycle.
	ZoneExtraShift ZonalReason = "extra_shift"
)

// ZonalReasons lists every ZonalReason.
var ZonalReasons = []ZonalReason{ZoneHealthy, ZoneImpaired, ZoneImpairedReportOnly, ZoneOthersUnhealthy, ZoneShiftByOthers,
	ZoneStillImpaired, ZoneRecovered, ZoneShiftDisabled, ZoneExtraShift}

// ZoneHealth is one zone's judged instances (Healthy, Suspect or Bad).
type ZoneHealth struct {
	AZ          string
	Probed, Bad int
}

// ZoneHealthFrom counts the judged instances per zone from the verdicts,
// sorted by zone.
func ZoneHealthFrom(verdicts []Verdict) []ZoneHealth {
	m := map[string]*ZoneHealth{}
	for _, v := range verdicts {
		if v.State != Healthy && v.State != Suspect && v.State != Bad {
			continue
		}
		z := m[v.Instance.AZ]
		if z == nil {
			z = &ZoneHealth{AZ: v.Instance.AZ}
			m[v.Instance.AZ] = z
		}
		z.Probed++
		if v.State == Bad {
			z.Bad++
		}
	}
	out := make([]ZoneHealth, 0, len(m))
	for _, az := range sortedKeys(m) {
		out = append(out, *m[az])
	}
	return out
}

// ActiveShift is one active zonal shift of the resource.
type ActiveShift struct {
	ID string
	// AZ is the zone name it moves traffic away from.
	AZ      string
	Started time.Time
	Expires time.Time
	// ByMedic: its comment starts with ZonalCommentPrefix.
	ByMedic bool
}

// ZonalCommentPrefix starts the comment of every shift medic starts; it is
// how medic tells its shifts from others'.
const ZonalCommentPrefix = "medic: "

// ZonalPolicy is a service's zonal shift setting.
type ZonalPolicy struct {
	// Enabled: start and cancel shifts. Default false (opt-in): impaired
	// zones are only reported.
	Enabled bool
	// Expiry of a shift medic starts, 1m to 72h, whole minutes. Default 1h.
	Expiry time.Duration
}

// DefaultZonalExpiry is ZonalPolicy.Expiry's default.
const DefaultZonalExpiry = time.Hour

// ZonalInput is what DecideZonal looks at.
type ZonalInput struct {
	Zones  []ZoneHealth
	Active []ActiveShift
	Policy ZonalPolicy
	Now    time.Time
}

// ZonalDecision is DecideZonal's answer.
type ZonalDecision struct {
	Action ZonalAction
	Reason ZonalReason
	// AZ is the impaired zone (start) or the shift's (keep, cancel).
	AZ string
	// ShiftID of the shift kept or cancelled.
	ShiftID string
	// ExpiresIn of a shift to start.
	ExpiresIn time.Duration
	// Detail is a sentence with the evidence; a start's comment is built from it.
	Detail string
}

// DecideZonal decides what to do about zonal shifts for one service's load
// balancer. A zone is impaired when, in a service probed in two or more
// zones, at least 2 of its probed instances are Bad and they are at least
// half of them (the guard's AZ-correlation rule). In this order:
//
//  1. A shift not medic's is active → none (shift_by_others): at most one
//     at a time, and others' shifts are theirs.
//  2. Two or more of medic's active → cancel the newest (extra_shift).
//  3. Medic's shift is active: zonal shift disabled → cancel; other zones
//     with Bad instances → cancel (other_zones_unhealthy: the shift no
//     longer helps); its zone probed with no Bad instance → cancel
//     (zone_recovered); else keep (zone_still_impaired, also when its zone
//     has no probed instance: no evidence of recovery; the expiry ends it).
//  4. No zone impaired → none.
//  5. Several zones impaired, or another zone with any Bad instance → none
//     (other_zones_unhealthy): never shift onto unhealthy zones.
//  6. Not enabled → none (zone_impaired_report_only), with the evidence.
//  7. Otherwise start, away from the impaired zone, expiring after Expiry.
func DecideZonal(in ZonalInput) ZonalDecision {
	var mine []ActiveShift
	for _, s := range in.Active {
		if !s.ByMedic {
			return ZonalDecision{Action: ZonalNone, Reason: ZoneShiftByOthers, AZ: s.AZ, ShiftID: s.ID,
				Detail: fmt.Sprintf("zonal shift %s away from %s, not started by medic, is active until %s: medic starts none and leaves it alone", s.ID, s.AZ, clock(s.Expires))}
		}
		mine = append(mine, s)
	}
	if len(mine) > 1 {
		sort.Slice(mine, func(i, j int) bool { return mine[i].Started.Before(mine[j].Started) })
		extra := mine[len(mine)-1]
		return ZonalDecision{Action: ZonalCancel, Reason: ZoneExtraShift, AZ: extra.AZ, ShiftID: extra.ID,
			Detail: fmt.Sprintf("%d zonal shifts of medic's are active; at most one at a time: cancelling the newest, %s away from %s", len(mine), extra.ID, extra.AZ)}
	}
	impaired, othersBad := impairedZones(in.Zones)
	if len(mine) == 1 {
		return decideActive(mine[0], in, othersBad)
	}
	switch {
	case len(impaired) == 0:
		return ZonalDecision{Action: ZonalNone, Reason: ZoneHealthy, Detail: "no zone impaired"}
	case len(impaired) > 1 || len(othersBad[impaired[0].AZ]) > 0:
		z := impaired[0]
		return ZonalDecision{Action: ZonalNone, Reason: ZoneOthersUnhealthy, AZ: z.AZ,
			Detail: fmt.Sprintf("%s is impaired (%s), but so are other zones (%s): shifting traffic onto them would not help; no zonal shift",
				z.AZ, zoneCounts(z), strings.Join(othersBad[z.AZ], ", "))}
	}
	z := impaired[0]
	evidence := fmt.Sprintf("%s is impaired: %s, while the other zones have none bad", z.AZ, zoneCounts(z))
	if !in.Policy.Enabled {
		return ZonalDecision{Action: ZonalNone, Reason: ZoneImpairedReportOnly, AZ: z.AZ,
			Detail: evidence + "; zonal_shift is off for this service, so no shift is started"}
	}
	exp := zonalExpiry(in.Policy.Expiry)
	return ZonalDecision{Action: ZonalStart, Reason: ZoneImpaired, AZ: z.AZ, ExpiresIn: exp,
		Detail: fmt.Sprintf("%s; shifting traffic away from it for %s", evidence, exp)}
}

func decideActive(s ActiveShift, in ZonalInput, othersBad map[string][]string) ZonalDecision {
	d := ZonalDecision{AZ: s.AZ, ShiftID: s.ID, Action: ZonalCancel}
	var z ZoneHealth
	for _, x := range in.Zones {
		if x.AZ == s.AZ {
			z = x
		}
	}
	switch {
	case !in.Policy.Enabled:
		d.Reason = ZoneShiftDisabled
		d.Detail = fmt.Sprintf("zonal_shift is off for this service: cancelling medic's shift %s away from %s", s.ID, s.AZ)
	case len(othersBad[s.AZ]) > 0:
		d.Reason = ZoneOthersUnhealthy
		d.Detail = fmt.Sprintf("other zones have bad instances too (%s): the shift %s away from %s no longer helps; cancelling it",
			strings.Join(othersBad[s.AZ], ", "), s.ID, s.AZ)
	case z.Probed > 0 && z.Bad == 0:
		d.Reason = ZoneRecovered
		d.Detail = fmt.Sprintf("%s has recovered (all %s pass): cancelling the shift %s started %s",
			s.AZ, plural(z.Probed, "probed instance"), s.ID, clock(s.Started))
	default:
		d.Action = ZonalKeep
		d.Reason = ZoneStillImpaired
		d.Detail = fmt.Sprintf("%s is not recovered (%s): keeping the shift %s until %s at the latest", s.AZ, zoneCounts(z), s.ID, clock(s.Expires))
	}
	return d
}

// impairedZones returns the impaired zones, most bad first, and for each
// zone the other zones that have Bad instances ("us-east-1b: 1 of 3 bad").
func impairedZones(zones []ZoneHealth) ([]ZoneHealth, map[string][]string) {
	var impaired []ZoneHealth
	probedZones := 0
	for _, z := range zones {
		if z.Probed > 0 {
			probedZones++
		}
	}
	othersBad := map[string][]string{}
	for _, z := range zones {
		if probedZones >= 2 && z.Bad >= 2 && 2*z.Bad >= z.Probed {
			impaired = append(impaired, z)
		}
		for _, o := range zones {
			if o.AZ != z.AZ && o.Bad > 0 {
				othersBad[z.AZ] = append(othersBad[z.AZ], o.AZ+": "+zoneCounts(o))
			}
		}
	}
	sort.SliceStable(impaired, func(i, j int) bool { return impaired[i].Bad > impaired[j].Bad })
	return impaired, othersBad
}

func zoneCounts(z ZoneHealth) string {
	return fmt.Sprintf("%d of %d probed instances bad", z.Bad, z.Probed)
}

// zonalExpiry clamps d to ARC's 1m..72h, in whole minutes; 0 means
// DefaultZonalExpiry.
func zonalExpiry(d time.Duration) time.Duration {
	if d <= 0 {
		d = DefaultZonalExpiry
	}
	return min(max(d.Round(time.Minute), time.Minute), 72*time.Hour)
}

// expiresIn formats d as ARC's ExpiresIn: "2h" for whole hours, else "90m".
func expiresIn(d time.Duration) string {
	d = zonalExpiry(d)
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// ZonalShifter is the part of the ARC zonal shift client medic uses,
// shaped like *arczonalshift.Client.
type ZonalShifter interface {
	StartZonalShift(ctx context.Context, in *arczonalshift.StartZonalShiftInput, optFns ...func(*arczonalshift.Options)) (*arczonalshift.StartZonalShiftOutput, error)
	CancelZonalShift(ctx context.Context, in *arczonalshift.CancelZonalShiftInput, optFns ...func(*arczonalshift.Options)) (*arczonalshift.CancelZonalShiftOutput, error)
	ListZonalShifts(ctx context.Context, in *arczonalshift.ListZonalShiftsInput, optFns ...func(*arczonalshift.Options)) (*arczonalshift.ListZonalShiftsOutput, error)
}

var _ ZonalShifter = (*arczonalshift.Client)(nil)

// ZonalShiftActuator starts, lists and cancels the zonal shifts of one
// resource (a load balancer's ARN). ARC names zones by id (use1-az1);
// ZoneIDs maps the zone names medic uses to them (EC2
// DescribeAvailabilityZones).
type ZonalShiftActuator struct {
	Client   ZonalShifter
	Resource string
	ZoneIDs  map[string]string // zone name → zone id
}

// Active lists the resource's active zonal shifts, with zone names (a zone
// id not in ZoneIDs is kept as is).
func (a ZonalShiftActuator) Active(ctx context.Context) ([]ActiveShift, error) {
	names := make(map[string]string, len(a.ZoneIDs))
	for name, id := range a.ZoneIDs {
		names[id] = name
	}
	var out []ActiveShift
	p := arczonalshift.NewListZonalShiftsPaginator(a.Client, &arczonalshift.ListZonalShiftsInput{
		ResourceIdentifier: aws.String(a.Resource), Status: arctypes.ZonalShiftStatusActive})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("list zonal shifts of %s: %w", a.Resource, err)
		}
		for _, it := range page.Items {
			if it.Status != arctypes.ZonalShiftStatusActive || aws.ToString(it.ResourceIdentifier) != a.Resource {
				continue
			}
			az := aws.ToString(it.AwayFrom)
			if n, ok := names[az]; ok {
				az = n
			}
			out = append(out, ActiveShift{ID: aws.ToString(it.ZonalShiftId), AZ: az, Started: aws.ToTime(it.StartTime),
				Expires: aws.ToTime(it.ExpiryTime), ByMedic: strings.HasPrefix(aws.ToString(it.Comment), ZonalCommentPrefix)})
		}
	}
	return out, nil
}

// Apply carries out a start or a cancel (keep and none do nothing) and
// returns the id of the shift started or cancelled.
func (a ZonalShiftActuator) Apply(ctx context.Context, d ZonalDecision) (string, error) {
	switch d.Action {
	case ZonalStart:
		id, ok := a.ZoneIDs[d.AZ]
		if !ok {
			return "", fmt.Errorf("start zonal shift of %s away from %s: zone id unknown", a.Resource, d.AZ)
		}
		out, err := a.Client.StartZonalShift(ctx, &arczonalshift.StartZonalShiftInput{
			ResourceIdentifier: aws.String(a.Resource), AwayFrom: aws.String(id),
			ExpiresIn: aws.String(expiresIn(d.ExpiresIn)), Comment: aws.String(zonalComment(d.Detail)),
		})
		if err != nil {
			return "", fmt.Errorf("start zonal shift of %s away from %s (%s): %w", a.Resource, d.AZ, id, err)
		}
		return aws.ToString(out.ZonalShiftId), nil
	case ZonalCancel:
		if d.ShiftID == "" {
			return "", errors.New("cancel zonal shift: no shift id")
		}
		if _, err := a.Client.CancelZonalShift(ctx, &arczonalshift.CancelZonalShiftInput{ZonalShiftId: aws.String(d.ShiftID)}); err != nil {
			return "", fmt.Errorf("cancel zonal shift %s of %s: %w", d.ShiftID, a.Resource, err)
		}
		return d.ShiftID, nil
	}
	return "", nil
}

// zonalComment is ZonalCommentPrefix and the detail, within ARC's 128
// characters.
func zonalComment(detail string) string {
	c := ZonalCommentPrefix + detail
	if r := []rune(c); len(r) > 128 {
		c = string(r[:127]) + "…"
	}
	return c
}

// DryRunZonalShifter wraps c so that StartZonalShift and CancelZonalShift
// only log what they would do and call nothing; ListZonalShifts goes to c.
// It is the only place zonal shift dry-run lives. A dry-run start returns
// the id "dry-run" and, since ARC never hears of it, the next cycle decides
// to start again: callers log decisions on change.
func DryRunZonalShifter(c ZonalShifter, logger log.Logger) ZonalShifter {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return dryRunZonal{ZonalShifter: c, logger: logger}
}

type dryRunZonal struct {
	ZonalShifter
	logger log.Logger
}

func (d dryRunZonal) StartZonalShift(_ context.Context, in *arczonalshift.StartZonalShiftInput, _ ...func(*arczonalshift.Options)) (*arczonalshift.StartZonalShiftOutput, error) {
	level.Info(d.logger).Log(logkeys.Msg, "dry run: would start a zonal shift", logkeys.LoadBalancer, aws.ToString(in.ResourceIdentifier),
		logkeys.AZ, aws.ToString(in.AwayFrom), logkeys.Reason, aws.ToString(in.Comment), logkeys.DryRun, true)
	return &arczonalshift.StartZonalShiftOutput{ZonalShiftId: aws.String("dry-run"), AwayFrom: in.AwayFrom,
		ResourceIdentifier: in.ResourceIdentifier, Comment: in.Comment, Status: arctypes.ZonalShiftStatusActive}, nil
}

func (d dryRunZonal) CancelZonalShift(_ context.Context, in *arczonalshift.CancelZonalShiftInput, _ ...func(*arczonalshift.Options)) (*arczonalshift.CancelZonalShiftOutput, error) {
	level.Info(d.logger).Log(logkeys.Msg, "dry run: would cancel a zonal shift", logkeys.ZonalShiftID, aws.ToString(in.ZonalShiftId), logkeys.DryRun, true)
	return &arczonalshift.CancelZonalShiftOutput{ZonalShiftId: in.ZonalShiftId, Status: arctypes.ZonalShiftStatusCanceled}, nil
}
