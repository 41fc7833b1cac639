package controller

import (
	"time"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/healer"
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
		r.notifier.Notify(e)
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
		r.notifier.Notify(e)
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
