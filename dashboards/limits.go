package dashboards

// Limits shows service-limit headroom, exhaustion forecasts, scale-out
// feasibility and load-balancer pre-warm: the need, the recommended and the
// reserved capacity. Quotas belong to the account and region, not to a
// service, so most panels ignore the service variable. Each quota, group
// and load balancer counts once across replicas (max/min by its labels).
func Limits() Dashboard {
	d := newDashboard("medic-limits", "medic / Limits and pre-warm",
		"Quota headroom and time to exhaustion, whether each group can scale out to its max, "+
			"and load-balancer pre-warm need and capacity reservations.")
	g := grid{d: &d}

	g.row("Quotas")
	head := table("Quota headroom, lowest first",
		"Per quota: headroom (1 - usage/limit), limit, usage and level (0 ok, 1 over the warning threshold, 2 over critical: "+
			"MedicQuotaHeadroomLow). Unknown figures are absent, never zero.", "none",
		instant(`bottomk(30, max by (service_code, quota_code, quota_name) (`+sel("medic_quota_headroom_ratio")+`))`),
		instant(`max by (service_code, quota_code, quota_name) (`+sel("medic_quota_limit")+`)`),
		instant(`max by (service_code, quota_code, quota_name) (`+sel("medic_quota_usage")+`)`),
		instant(`max by (service_code, quota_code, quota_name) (`+sel("medic_quota_state")+`)`))
	head.Transformations = []Transformation{
		{ID: "merge", Options: map[string]any{}},
		{ID: "organize", Options: map[string]any{
			"excludeByName": map[string]bool{"Time": true, "__name__": true, "job": true, "instance": true},
			"renameByName":  map[string]string{"Value #A": "headroom", "Value #B": "limit", "Value #C": "usage", "Value #D": "level"}}},
		{ID: "sortBy", Options: map[string]any{"sort": []map[string]any{{"field": "headroom", "desc": false}}}},
	}
	head.FieldConfig.Overrides = []Override{{
		Matcher: Matcher{ID: "byName", Options: "headroom"},
		Properties: []Property{
			{ID: "unit", Value: "percentunit"},
			{ID: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}},
			{ID: "thresholds", Value: thresholds("red", 0.05, "orange", 0.2, "green")},
			{ID: "color", Value: map[string]any{"mode": "thresholds"}},
		},
	}}
	g.add(24, 10, head)

	g.add(12, 8, timeseries("Headroom over time, 10 lowest",
		"Headroom of the 10 quotas with the least of it.", "percentunit",
		q(`bottomk(10, min by (service_code, quota_code, quota_name) (`+sel("medic_quota_headroom_ratio")+`))`, "{{service_code}} {{quota_name}}")))
	g.add(12, 8, timeseries("Forecast time to exhaustion",
		"Seconds until usage reaches the limit at the current trend (the earlier of linear and week-over-week). "+
			"Absent when usage is not growing. MedicQuotaExhaustionForecast fires under 7 days.", "s",
		q(`bottomk(10, min by (service_code, quota_code, quota_name, method) (`+sel("medic_quota_seconds_to_exhaustion")+`) < +Inf)`, "{{service_code}} {{quota_name}} ({{method}})")))

	feas := table("Scale-out feasibility",
		"Can each group grow to its MaxSize within the quotas it draws on? 0 = no: it will fail when it tries.", "none",
		instant(`min by (asg) (`+sel("medic_scale_out_feasible")+`)`))
	feas.FieldConfig.Defaults.Mappings = valueText("0", "not feasible", "red", "1", "feasible", "green")
	g.add(12, 8, feas)
	g.add(12, 8, stateTimeline("Limit sources",
		"Whether each limit and usage source answered in the last refresh. One failing source never stops the others.",
		valueText("0", "failing", "red", "1", "ok", "green"),
		thresholds("red", 1.0, "green"),
		q(`min by (source) (`+sel("medic_limits_source_success")+`)`, "{{source}}")))

	g.row("Load-balancer pre-warm")
	g.add(8, 8, stateTimeline("Pre-warm needed",
		"1 while a load balancer needs pre-warming, now or for its next scheduled event (medic_prewarm_needed).",
		valueText("0", "no", "green", "1", "needed", "orange"),
		thresholds("green", 1.0, "orange"),
		q(`max by (load_balancer) (`+sel("medic_prewarm_needed")+`)`, "{{load_balancer}}")))
	g.add(16, 8, timeseries("Capacity reservation (LCU)",
		"Forecast LCUs for the coming window or event, the recommended reservation (forecast × headroom) and the "+
			"reservation in place. Under --dry-run nothing is reserved.",
		"none",
		q(`max by (load_balancer) (`+sel("medic_prewarm_forecast_lcu")+`)`, "{{load_balancer}} forecast"),
		q(`max by (load_balancer) (`+sel("medic_prewarm_recommended_lcu")+`)`, "{{load_balancer}} recommended"),
		q(`max by (load_balancer) (`+sel("medic_prewarm_applied_lcu")+`)`, "{{load_balancer}} applied")))
	g.add(12, 7, timeseries("Ramp",
		"Largest growth between consecutive 5-minute buckets in the last hour (medic_prewarm_ramp_ratio). "+
			"AWS's guidance: a load balancer scales by about 50% per 5 minutes.", "percentunit",
		q(`max by (load_balancer) (`+sel("medic_prewarm_ramp_ratio")+`)`, "{{load_balancer}}")))
	g.add(12, 7, table("Next scheduled events",
		"Scheduled events from the config per load balancer (medic_prewarm_next_event_timestamp_seconds).", "dateTimeAsIso",
		instant(`min by (load_balancer, event) (`+sel("medic_prewarm_next_event_timestamp_seconds")+`) * 1000`)))
	return d
}
