package limits

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// durOrInf is d in seconds, +Inf for the largest duration (no bound).
func durOrInf(d time.Duration) float64 {
	if d == time.Duration(math.MaxInt64) {
		return math.Inf(1)
	}
	return d.Seconds()
}

// collector builds the limits metrics at scrape time from the last
// Snapshot (node_exporter style): nothing is kept between scrapes, so a
// quota or load balancer that goes away takes its series with it, and an
// unknown figure has no series at all.
type collector struct{ w *Watcher }

var (
	quotaLabels = []string{"service_code", "quota_code", "quota_name"}

	descLimit = prometheus.NewDesc("medic_quota_limit",
		"The quota's limit, by the source it came from (service_api, service_quotas, service_quotas_default, config).",
		append(quotaLabels, "source"), nil)
	descUsage = prometheus.NewDesc("medic_quota_usage",
		"The quota's usage, by source (describe, cloudwatch). Absent when unknown.",
		append(quotaLabels, "source"), nil)
	descHeadroom = prometheus.NewDesc("medic_quota_headroom_ratio",
		"Unused fraction of the limit: (limit-usage)/limit; negative when over.", quotaLabels, nil)
	descState = prometheus.NewDesc("medic_quota_state",
		"0 ok (or a limit of 0 with nothing used: not in use), 1 at or above the warning threshold, 2 at or above critical (or over a limit of 0). Absent when unknown.", quotaLabels, nil)
	descThreshold = prometheus.NewDesc("medic_quota_threshold_ratio",
		"The used fraction at which the quota is reported, by level (warning, critical).", append(quotaLabels, "level"), nil)
	descTTE = prometheus.NewDesc("medic_quota_seconds_to_exhaustion",
		"Seconds until the trend of window peaks reaches the limit (method peaks), 0 at the limit (at_limit); +Inf when there is no forecast (not growing, no trend, a step); absent when unknown.",
		append(quotaLabels, "method"), nil)
	descTTELow = prometheus.NewDesc("medic_quota_seconds_to_exhaustion_lower",
		"Early bound of the forecast: the crossing with the peaks' slope two standard errors steeper. Present with a trend forecast.", quotaLabels, nil)
	descTTEHigh = prometheus.NewDesc("medic_quota_seconds_to_exhaustion_upper",
		"Late bound of the forecast: the crossing with the slope two standard errors shallower; +Inf when that slope does not grow.", quotaLabels, nil)
	descR2 = prometheus.NewDesc("medic_quota_forecast_r_squared",
		"Share of the window peaks' variance the fitted line explains (the fit-quality gate); absent when no line was fitted.", quotaLabels, nil)
	descIncrease = prometheus.NewDesc("medic_quota_increase_requested",
		"Desired value of the quota-increase request medic filed or found open, by status.", append(quotaLabels, "status"), nil)
	descFeasible = prometheus.NewDesc("medic_scale_out_feasible",
		"1 if the Auto Scaling group can grow to its MaxSize within the quotas it draws on, 0 if not; absent when unknown.",
		[]string{"asg"}, nil)
	descSrcOK = prometheus.NewDesc("medic_limits_source_success",
		"1 if the limit/usage source answered in the last refresh.", []string{"source"}, nil)
	descSrcDur = prometheus.NewDesc("medic_limits_source_duration_seconds",
		"How long the source took in the last refresh.", []string{"source"}, nil)
	descRefresh = prometheus.NewDesc("medic_limits_last_refresh_timestamp_seconds",
		"When the last limits refresh ran.", nil, nil)
	descRefreshDur = prometheus.NewDesc("medic_limits_refresh_duration_seconds",
		"How long the last limits refresh took.", nil, nil)
	descRefreshCalls = prometheus.NewDesc("medic_limits_refresh_aws_calls",
		"AWS API calls (attempts) the last limits refresh made.", nil, nil)

	lbLabel       = []string{"load_balancer"}
	descPWNeeded  = prometheus.NewDesc("medic_prewarm_needed", "1 if the load balancer needs pre-warming now or for its next event.", lbLabel, nil)
	descPWRecLCU  = prometheus.NewDesc("medic_prewarm_recommended_lcu", "Recommended capacity reservation in LCUs (0 when none is needed).", lbLabel, nil)
	descPWAppLCU  = prometheus.NewDesc("medic_prewarm_applied_lcu", "Capacity reservation in place in LCUs, as DescribeCapacityReservation reports it.", lbLabel, nil)
	descPWFcLCU   = prometheus.NewDesc("medic_prewarm_forecast_lcu", "Forecast LCUs for the coming window or event, before headroom.", lbLabel, nil)
	descPWRamp    = prometheus.NewDesc("medic_prewarm_ramp_ratio", "Largest growth between consecutive 5-minute buckets in the last hour.", lbLabel, nil)
	descPWEvent   = prometheus.NewDesc("medic_prewarm_next_event_timestamp_seconds", "Start of the next scheduled event for the load balancer.", append(lbLabel, "event"), nil)
	descPWDecLeft = prometheus.NewDesc("medic_prewarm_decreases_remaining", "Capacity decreases left today, as AWS reports it.", lbLabel, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLimit, descUsage, descHeadroom, descState, descThreshold, descTTE, descIncrease, descFeasible, descTTELow, descTTEHigh, descR2,
		descSrcOK, descSrcDur, descRefresh, descRefreshDur, descRefreshCalls, descPWNeeded, descPWRecLCU, descPWAppLCU, descPWFcLCU,
		descPWRamp, descPWEvent, descPWDecLeft} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.w.Snapshot()
	if s.At.IsZero() {
		return
	}
	g := prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(descRefresh, g, float64(s.At.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descRefreshDur, g, s.Duration.Seconds())
	ch <- prometheus.MustNewConstMetric(descRefreshCalls, g, float64(s.Calls))
	for _, src := range s.Sources {
		ch <- prometheus.MustNewConstMetric(descSrcOK, g, b2f(src.OK), src.Name)
		ch <- prometheus.MustNewConstMetric(descSrcDur, g, src.Duration.Seconds(), src.Name)
	}
	for _, q := range s.Quotas {
		l := []string{q.ServiceCode, q.Code, q.Name}
		ch <- prometheus.MustNewConstMetric(descThreshold, g, q.Warning, append(l, "warning")...)
		ch <- prometheus.MustNewConstMetric(descThreshold, g, q.Critical, append(l, "critical")...)
		if q.LimitKnown {
			ch <- prometheus.MustNewConstMetric(descLimit, g, q.Limit, append(l, q.LimitSource)...)
		}
		if q.UsageKnown {
			ch <- prometheus.MustNewConstMetric(descUsage, g, q.Usage, append(l, q.UsageSource)...)
		}
		if q.HeadroomKnown {
			ch <- prometheus.MustNewConstMetric(descHeadroom, g, q.Headroom, l...)
		}
		switch q.State {
		case StateUnknown:
		case StateNotInUse:
			ch <- prometheus.MustNewConstMetric(descState, g, float64(StateOK), l...)
		default:
			ch <- prometheus.MustNewConstMetric(descState, g, float64(q.State), l...)
		}
		if q.Forecast.Known {
			m := q.Forecast.Method
			if m == "" {
				m = "none"
			}
			ch <- prometheus.MustNewConstMetric(descTTE, g, secondsOrInf(q.Forecast), append(l, m)...)
		}
		if f := q.Forecast; f.Trend && f.Method == "peaks" {
			ch <- prometheus.MustNewConstMetric(descTTELow, g, f.Early.Seconds(), l...)
			ch <- prometheus.MustNewConstMetric(descTTEHigh, g, durOrInf(f.Late), l...)
		}
		if r := q.Forecast.RSquared; !math.IsNaN(r) && q.Forecast.Peaks > 0 {
			ch <- prometheus.MustNewConstMetric(descR2, g, r, l...)
		}
		if q.Request != nil {
			ch <- prometheus.MustNewConstMetric(descIncrease, g, q.Request.Desired, append(l, q.Request.Status)...)
		}
	}
	for _, gr := range s.Groups {
		if gr.Known {
			ch <- prometheus.MustNewConstMetric(descFeasible, g, b2f(gr.Feasible), gr.Name)
		}
	}
	for _, lb := range s.LoadBalancers {
		ch <- prometheus.MustNewConstMetric(descPWNeeded, g, b2f(lb.Needed), lb.Name)
		if lb.Type != "classic" {
			ch <- prometheus.MustNewConstMetric(descPWRecLCU, g, float64(lb.Recommended), lb.Name)
			if lb.Basis != "none" {
				ch <- prometheus.MustNewConstMetric(descPWFcLCU, g, lb.Sizing.LCU, lb.Name)
			}
		}
		if lb.AppliedKnown {
			ch <- prometheus.MustNewConstMetric(descPWAppLCU, g, float64(lb.Applied), lb.Name)
			ch <- prometheus.MustNewConstMetric(descPWDecLeft, g, float64(lb.DecreasesLeft), lb.Name)
		}
		if lb.DataKnown {
			ch <- prometheus.MustNewConstMetric(descPWRamp, g, lb.Ramp.Ratio, lb.Name)
		}
		if lb.Event != "" {
			ch <- prometheus.MustNewConstMetric(descPWEvent, g, float64(lb.EventStart.Unix()), lb.Name, lb.Event)
		}
	}
}
