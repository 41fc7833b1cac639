package dashboards

// Probes shows the probes: how long they take, which targets fail, how many
// run and what was skipped.
func Probes() Dashboard {
	d := newDashboard("medic-probes", "medic / Probes",
		"Probe latency distribution, the instances that fail most, probes per second and skipped slots.")
	g := grid{d: &d}

	g.add(12, 9, heatmap("Instance probe latency",
		"Distribution of instance probe durations (medic_probe_latency_seconds, scope=instance).",
		`sum by (le) (increase(medic_probe_latency_seconds_bucket{scope="instance",`+svc+`}[$__rate_interval]))`))
	g.add(12, 9, heatmap("Endpoint probe latency",
		"Distribution of endpoint probe durations, through the load balancer (scope=endpoint).",
		`sum by (le) (increase(medic_probe_latency_seconds_bucket{scope="endpoint",`+svc+`}[$__rate_interval]))`))

	g.add(12, 8, timeseries("Probe latency quantiles",
		"p50, p90 and p99 per scope.", "s",
		q(`histogram_quantile(0.5, sum by (scope, le) (`+rate(`medic_probe_latency_seconds_bucket{`+svc+`}`)+`))`, "{{scope}} p50"),
		q(`histogram_quantile(0.9, sum by (scope, le) (`+rate(`medic_probe_latency_seconds_bucket{`+svc+`}`)+`))`, "{{scope}} p90"),
		q(`histogram_quantile(0.99, sum by (scope, le) (`+rate(`medic_probe_latency_seconds_bucket{`+svc+`}`)+`))`, "{{scope}} p99")))
	g.add(12, 8, timeseries("Slowest targets, last probe",
		"The 10 targets whose last probe took longest (medic_probe_duration_seconds).", "s",
		q(`topk(10, medic_probe_duration_seconds{`+svc+`})`, "{{service}} {{instance_id}} {{az}}")))

	fail := table("Failures per instance",
		"Share of the time range each target's last probe was failing (1 - medic_probe_success), the 20 worst. "+
			"Only targets that failed at all are listed.", "percentunit",
		instant(`topk(20, 1 - avg_over_time(medic_probe_success{`+svc+`}[$__range])) > 0`))
	fail.FieldConfig.Defaults.Custom["cellOptions"] = map[string]any{"type": "color-background", "mode": "basic"}
	fail.FieldConfig.Defaults.Thresholds = thresholds("green", 0.01, "orange", 0.1, "red")
	fail.FieldConfig.Defaults.Color = map[string]any{"mode": "thresholds"}
	g.add(12, 9, sortDesc(fail, "Value"))
	g.add(12, 9, timeseries("Failing now, per AZ",
		"Targets whose last probe failed, per service and AZ. Many at once in one AZ points at the AZ; everywhere at once, "+
			"at a shared dependency or medic's own network (the guard then refuses: service_wide_failure).", "none",
		q(`count by (service, az) (medic_probe_success{`+svc+`} == 0)`, "{{service}} {{az}}")))

	g.add(8, 8, stacked("Probes per second",
		"Probes run per scope and result (medic_probes_total).", "ops", "line",
		q(`sum by (service, scope, result) (`+rate(`medic_probes_total{`+svc+`}`)+`)`, "{{service}} {{scope}} {{result}}")))
	g.add(8, 8, stacked("Skipped probe slots",
		"Probe slots not run (medic_probe_skipped_total): overlap = the last probe of the target had not finished; "+
			"concurrency = max_concurrent_probes reached.", "ops", "bars",
		q(`sum by (service, reason) (`+rate(`medic_probe_skipped_total{`+svc+`}`)+`) > 0`, "{{service}} {{reason}}")))
	g.add(8, 8, timeseries("Targets",
		"Targets scheduled per scope (medic_probe_targets).", "none",
		q(`sum by (service, scope) (medic_probe_targets{`+svc+`})`, "{{service}} {{scope}}")))
	return d
}
