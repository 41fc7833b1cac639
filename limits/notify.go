package limits

import (
	"fmt"
	"math"
	"time"

	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// Notifications are edge-triggered: an event when a condition starts, a
// resolved event when it ends, nothing while it holds. The wording states
// facts and figures; NeedsAction is set only where nobody else (medic)
// will act.

// emit sends e when the condition key's state changed to state; "" is the
// quiet state, whose arrival resolves an earlier event.
func (w *Watcher) emit(key, state string, e alerts.Event) {
	prev := w.notified[key]
	if prev == state {
		return
	}
	w.notified[key] = state
	if state == "" {
		if prev == "" {
			return
		}
		e.Resolved = true
		e.Severity = alerts.Info
		e.NeedsAction = false
	}
	level.Info(w.logger).Log(logkeys.Msg, e.Summary, logkeys.Quota, e.Subject, logkeys.State, state)
	w.notifier.Notify(e)
}

func (w *Watcher) notifyQuotas(cfg config.Limits, qs []QuotaStatus, now time.Time) {
	for _, q := range qs {
		if q.Muted {
			continue
		}
		ev := []string{
			fmt.Sprintf("usage %g of limit %g (%.1f%% used; source: limit %s, usage %s)", q.Usage, q.Limit, 100*q.Usage/max(q.Limit, 1e-9), q.LimitSource, q.UsageSource),
			fmt.Sprintf("thresholds: warning %.0f%%, critical %.0f%%", q.Warning*100, q.Critical*100),
		}
		action := "nothing: medic reports quotas, it does not change them"
		if q.Request != nil {
			action = fmt.Sprintf("quota increase to %g %s (%s)", q.Request.Desired, q.Request.Status, q.Request.ID)
		}
		labels := map[string]string{"service_code": q.ServiceCode, "quota_code": q.Code}
		state := ""
		if q.State == StateWarning || q.State == StateCritical {
			state = q.State.String()
		}
		summary := fmt.Sprintf("%s is at %.0f%% of its limit (%s)", q.Name, 100*q.Usage/max(q.Limit, 1e-9), q.State)
		if q.Limit == 0 {
			summary = fmt.Sprintf("%s: usage %g is over its limit of 0", q.Name, q.Usage)
		}
		if q.State != StateUnknown {
			sev := alerts.Warning
			if q.State == StateCritical {
				sev = alerts.Action
			}
			w.emit("near/"+q.Key(), state, alerts.Event{Kind: alerts.QuotaNearLimit, Severity: sev, Time: now, Subject: q.Key(),
				Summary:  summary,
				Evidence: ev, Action: action, State: fmt.Sprintf("%g of %g used, headroom %.1f%%", q.Usage, q.Limit, 100*q.Headroom),
				NeedsAction: q.State == StateCritical && q.Request == nil, Labels: labels})
		}
		if q.Forecast.Known {
			fs := ""
			if q.Forecast.Method == "peaks" && q.Forecast.In <= cfg.ForecastHorizon.D() {
				fs = "forecast"
			}
			w.emit("forecast/"+q.Key(), fs, alerts.Event{Kind: alerts.QuotaExhaustionForecast, Severity: alerts.Warning, Time: now, Subject: q.Key(),
				Summary: fmt.Sprintf("%s is forecast to reach its limit in %s (between %s and %s)", q.Name, q.Forecast.In.Round(time.Minute),
					q.Forecast.Early.Round(time.Minute), lateText(q.Forecast.Late)),
				Evidence: append(ev, q.Forecast.Why), Action: action,
				State:  fmt.Sprintf("%g of %g used, limit reached about %s", q.Usage, q.Limit, now.Add(q.Forecast.In).UTC().Format(time.RFC3339)),
				Labels: labels})
		}
	}
}

func (w *Watcher) notifyGroups(gs []GroupStatus, now time.Time) {
	for _, g := range gs {
		if !g.Known {
			continue
		}
		st := ""
		if !g.Feasible {
			st = "infeasible"
		}
		w.emit("feasible/"+g.Name, st, alerts.Event{Kind: alerts.QuotaNearLimit, Severity: alerts.Warning, Time: now, Subject: g.Name,
			Summary:  fmt.Sprintf("Auto Scaling group %s cannot grow to its max size %d within quotas", g.Name, g.Max),
			Evidence: []string{g.Why, fmt.Sprintf("%d instances now, max size %d", g.Current, g.Max)},
			Action:   "nothing: reported before the group tries to scale", State: g.Why,
			Labels: map[string]string{"asg": g.Name}})
	}
}

func lateText(d time.Duration) string {
	if d == time.Duration(math.MaxInt64) {
		return "never"
	}
	return d.Round(time.Minute).String()
}
