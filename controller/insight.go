package controller

import (
	"context"
	"strings"
	"time"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/limits"
)

// insightEvents remembers, per service, the findings already told, so the
// reporter tells each start and end once.
type insightEvents struct {
	slow    map[string]bool                  // service → service_slow told
	vantage map[string]healer.VantageVerdict // service → vantage verdict told (one that notifies), "" none
}

func newInsightEvents() insightEvents {
	return insightEvents{slow: map[string]bool{}, vantage: map[string]healer.VantageVerdict{}}
}

func (ie insightEvents) forget(service string) {
	delete(ie.slow, service)
	delete(ie.vantage, service)
}

// observeInsight tells a slow service and a vantage verdict that puts the
// fault outside the instances (lb_or_routing_problem, service_down,
// medic_vantage) when they start and when they end.
func (r *reporter) observeInsight(svc config.Service, rep healer.Report, state string, now time.Time) {
	ins := rep.Insight
	slow := ins.Latency.Finding == healer.FindingServiceSlow
	if slow != r.insight.slow[svc.Name] {
		r.insight.slow[svc.Name] = slow
		e := alerts.Event{Kind: alerts.ServiceSlow, Severity: alerts.Warning, Time: now, Service: svc.Name,
			Subject: "latency", State: state, RequestID: rep.RequestID, Resolved: !slow,
			Summary: svc.Name + " is slow as a whole: " + ins.Latency.Reason + ".",
			Action:  "nothing: replacing instances does not help a service slow everywhere"}
		if !slow {
			e.Severity, e.Summary, e.Action = alerts.Info, svc.Name+" is no longer slow as a whole: "+ins.Latency.Reason+".", "nothing"
		}
		r.emit(e)
	}
	v := ins.Vantage.Verdict
	if !healer.VantageNotifies(v) {
		v = ""
	}
	if prev := r.insight.vantage[svc.Name]; v != prev {
		r.insight.vantage[svc.Name] = v
		e := alerts.Event{Kind: alerts.VantageProblem, Severity: alerts.Warning, Time: now, Service: svc.Name,
			Subject: string(v), State: state, RequestID: rep.RequestID, Labels: map[string]string{"verdict": string(v)},
			Summary:  vantageSummary(svc.Name, v) + ": " + ins.Vantage.Evidence + ".",
			Evidence: []string{ins.Vantage.Evidence},
			Action:   "nothing: no instance is marked for it"}
		if v == "" {
			e.Subject, e.Resolved, e.Severity = string(prev), true, alerts.Info
			e.Labels["verdict"] = string(prev)
			e.Summary = "the views of " + svc.Name + " agree again (was " + string(prev) + "): " + ins.Vantage.Evidence + "."
			e.Action = "nothing"
		}
		r.emit(e)
	}
}

func vantageSummary(svc string, v healer.VantageVerdict) string {
	switch v {
	case healer.VantageLBOrRouting:
		return "load balancer or routing problem in " + svc
	case healer.VantageServiceDown:
		return svc + " is down"
	default:
		return "medic's own vantage is the likely fault for " + svc
	}
}

// PreflightFacts is the healer's PreflightSource in production: what AWS
// says of a group (healer.PreflightReader), with the On-Demand vCPU quota
// headroom taken from the limits watcher's latest snapshot. Spot-only
// groups get no vCPU headroom (the check is listed as unchecked).
type PreflightFacts struct {
	reader healer.PreflightReader
	limits func() limits.Snapshot
}

// NewPreflightFacts reads groups through ec2 and asg, and quota headroom
// from snapshot (the limits watcher's Snapshot; nil: headroom unknown).
func NewPreflightFacts(ec2 healer.PreflightEC2, asg healer.PreflightASG, snapshot func() limits.Snapshot) *PreflightFacts {
	return &PreflightFacts{reader: healer.PreflightReader{EC2: ec2, ASG: asg, ClassOf: vcpuQuotaKey}, limits: snapshot}
}

// vcpuQuotaKey is the On-Demand vCPU quota an instance type draws on
// ("ec2/L-1216C47A"), the quota class of pre-flight's LaunchType.
func vcpuQuotaKey(instanceType string) string {
	k, _ := limits.QuotaFor(instanceType, limits.OnDemand)
	return k
}

// PreflightInput implements healer.PreflightSource.
func (p *PreflightFacts) PreflightInput(ctx context.Context, _ string, group string) (healer.PreflightInput, error) {
	in, err := p.reader.Read(ctx, group)
	if p.limits == nil || in.Purchase == healer.Spot {
		return in, err
	}
	in.VCPU = vcpuHeadroom(p.limits().Quotas)
	return in, err
}

// vcpuHeadroom is the headroom of every On-Demand vCPU quota in the
// snapshot, by quota key, named as pre-flight's sentences name them.
func vcpuHeadroom(quotas []limits.QuotaStatus) map[string]healer.VCPUHeadroom {
	names := map[string]string{}
	for _, f := range limits.VCPUFamilies {
		name, ok := healer.VCPUQuotaNames[f.Name]
		if !ok {
			name = strings.TrimSuffix(strings.TrimPrefix(f.OnDemandName, "Running "), " instances")
		}
		if _, seen := names["ec2/"+f.OnDemand]; !seen {
			names["ec2/"+f.OnDemand] = name
		}
	}
	out := map[string]healer.VCPUHeadroom{}
	for _, q := range quotas {
		key := q.ServiceCode + "/" + q.Code
		if name, ok := names[key]; ok {
			out[key] = healer.VCPUHeadroom{Name: name, Left: q.Limit - q.Usage, Known: q.LimitKnown && q.UsageKnown}
		}
	}
	return out
}
