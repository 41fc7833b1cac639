package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/internal/logkeys"
)

// ZoneLister reads the region's zone names and ids (ARC names zones by id).
// *ec2.Client is one.
type ZoneLister interface {
	DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
}

// zonalRelist is how long a service's list of active shifts is trusted
// before it is read again from ARC; a start or a cancel reads it first.
const zonalRelist = 30 * time.Second

// zonalShifts decides, after each heal cycle, whether a service's load
// balancer should be shifted away from an impaired zone (healer.DecideZonal)
// and does it. Services without policy.zonal_shift.enabled get the decision
// reported (zone_impaired_report_only) and no AWS call.
type zonalShifts struct {
	client  healer.ZonalShifter // nil: zonal shifts unavailable
	zones   ZoneLister
	logger  log.Logger
	healer  *healer.Healer
	notify  alerts.Notifier
	mu      sync.Mutex
	ids     map[string]string // zone name → id, read once
	svc     map[string]*zonalState
	timeout time.Duration
}

type zonalState struct {
	active   []healer.ActiveShift
	listedAt time.Time
	last     healer.ZonalDecision
}

// run decides and acts for one service.
func (z *zonalShifts) run(ctx context.Context, svc config.Service, rep healer.Report, state string, now time.Time) {
	z.mu.Lock()
	defer z.mu.Unlock()
	st := z.svc[svc.Name]
	if st == nil {
		st = &zonalState{}
		z.svc[svc.Name] = st
	}
	logger := log.With(z.logger, logkeys.Service, svc.Name, logkeys.RequestID, rep.RequestID)
	pol := healer.ZonalPolicy{Enabled: svc.Policy.ZonalShift.Enabled && z.client != nil, Expiry: svc.Policy.ZonalShift.Expiry.D()}
	in := healer.ZonalInput{Zones: healer.ZoneHealthFrom(rep.Verdicts), Policy: pol, Now: now}
	var act healer.ZonalShiftActuator
	if pol.Enabled && !rep.Frozen {
		ctx, cancel := context.WithTimeout(ctx, z.timeout)
		defer cancel()
		act = healer.ZonalShiftActuator{Client: z.client, Resource: svc.Policy.ZonalShift.LoadBalancerARN, ZoneIDs: z.zoneIDs(ctx, logger)}
		in.Active = st.active
		d := healer.DecideZonal(in)
		if now.Sub(st.listedAt) >= zonalRelist || d.Action == healer.ZonalStart || d.Action == healer.ZonalCancel {
			active, err := act.Active(ctx)
			if err != nil {
				level.Error(logger).Log(logkeys.Msg, "cannot list zonal shifts; deciding nothing this cycle", logkeys.Err, err)
				return
			}
			st.active, st.listedAt = active, now
		}
		in.Active = st.active
	}
	d := healer.DecideZonal(in)
	z.healer.ReportZonal(svc.Name, d)
	if pol.Enabled && !rep.Frozen && (d.Action == healer.ZonalStart || d.Action == healer.ZonalCancel) {
		id, err := act.Apply(ctx, d)
		switch {
		case errors.Is(err, healer.ErrZonalStandby):
			// The leading replica acts; this one logs the decision only.
		case err != nil:
			level.Error(logger).Log(logkeys.Msg, "zonal shift failed: "+d.Detail, logkeys.Err, err, logkeys.AZ, d.AZ)
			return
		default:
			st.listedAt = time.Time{} // read back at the next cycle
			z.tell(svc, d, id, state, rep.RequestID, now)
		}
	}
	if d.Action != st.last.Action || d.Reason != st.last.Reason || d.AZ != st.last.AZ {
		lvl := level.Info
		if d.Reason == healer.ZoneImpaired || d.Reason == healer.ZoneImpairedReportOnly || d.Reason == healer.ZoneStillImpaired {
			lvl = level.Warn
		}
		lvl(logger).Log(logkeys.Msg, "zonal shift decision: "+d.Detail, logkeys.Result, d.Action, logkeys.Reason, d.Reason,
			logkeys.AZ, d.AZ, logkeys.LoadBalancer, svc.Policy.ZonalShift.LoadBalancerARN)
	}
	st.last = d
}

// tell notifies a shift started or cancelled.
func (z *zonalShifts) tell(svc config.Service, d healer.ZonalDecision, id, state, requestID string, now time.Time) {
	e := alerts.Event{Kind: alerts.ZonalShift, Severity: alerts.Warning, Time: now, Service: svc.Name, Subject: id, AZ: d.AZ,
		State: state, RequestID: requestID, Labels: map[string]string{"reason": string(d.Reason)},
		Summary:  fmt.Sprintf("medic started zonal shift %s of %s away from %s: %s", id, svc.Name, d.AZ, d.Detail),
		Evidence: []string{d.Detail},
		Action:   "shifted the load balancer's traffic away from " + d.AZ + " for " + d.ExpiresIn.String()}
	if d.Action == healer.ZonalCancel {
		e.Severity, e.Resolved = alerts.Info, true
		e.Summary = fmt.Sprintf("medic cancelled zonal shift %s of %s away from %s: %s", id, svc.Name, d.AZ, d.Detail)
		e.Action = "cancelled the zonal shift"
	}
	z.notify.Notify(e)
}

// zoneIDs reads the zone name → id map once; nil until it is read.
func (z *zonalShifts) zoneIDs(ctx context.Context, logger log.Logger) map[string]string {
	if z.ids != nil || z.zones == nil {
		return z.ids
	}
	out, err := z.zones.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		level.Error(logger).Log(logkeys.Msg, "cannot read the zone ids zonal shifts need", logkeys.Err, err)
		return nil
	}
	ids := map[string]string{}
	for _, az := range out.AvailabilityZones {
		ids[aws.ToString(az.ZoneName)] = aws.ToString(az.ZoneId)
	}
	z.ids = ids
	return ids
}

func (z *zonalShifts) forget(service string) {
	z.mu.Lock()
	delete(z.svc, service)
	z.mu.Unlock()
}

// decision is the service's last zonal shift decision.
func (z *zonalShifts) decision(service string) healer.ZonalDecision {
	z.mu.Lock()
	defer z.mu.Unlock()
	if st := z.svc[service]; st != nil {
		return st.last
	}
	return healer.ZonalDecision{}
}
