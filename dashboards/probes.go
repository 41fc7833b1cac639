package dashboards

// Probes shows the probes: how long they take, which targets fail, how many
// run and what was skipped.
func Probes() Dashboard {
	d := newDashboard("medic-probes", "medic / Probes",
		"Probe latency distribution, the instances that fail most, probes per second and skipped slots.")
	g := grid{d: &d}

	g.row("Latency")
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
		"The 10 targets whose last probe took longest (medic_probe_duration_seconds; the slowest replica's, each target once).", "s",
		q(`topk(10, `+once("service, instance_id, az", `medic_probe_duration_seconds{`+svc+`}`)+`)`, "{{service}} {{instance_id}} {{az}}")))

	g.row("Failures")
	fail := table("Failures per instance",
		"Share of the time range each target's last probe was failing (1 - medic_probe_success), the 20 worst; "+
			"each target once, as the replica that saw it fail most. Only targets that failed at all are listed.", "percentunit",
		instant(`topk(20, `+once("service, instance_id, az", `1 - avg_over_time(medic_probe_success{`+svc+`}[$__range])`)+`) > 0`))
	fail.FieldConfig.Defaults.Custom["cellOptions"] = map[string]any{"type": "color-background", "mode": "basic"}
	fail.FieldConfig.Defaults.Thresholds = thresholds("green", 0.01, "orange", 0.1, "red")
	fail.FieldConfig.Defaults.Color = map[string]any{"mode": "thresholds"}
	g.add(12, 9, sortDesc(fail, "Value"))
	g.add(12, 9, timeseries("Failing now, per AZ",
		"Targets whose last probe failed, per service and AZ, each target once (failing if any replica's last probe failed). "+
			"Many at once in one AZ points at the AZ; everywhere at once, "+
			"at a shared dependency or medic's own network (the guard then refuses: service_wide_failure).", "none",
		q(`count by (service, az) (`+once("service, az, instance_id", `medic_probe_success{`+svc+`} == 0`)+`)`, "{{service}} {{az}}")))

	g.row("Load")
	g.add(6, 8, stacked("Probes per second",
		"Probes run per scope and result (medic_probes_total), by every chosen replica: each replica probes on its own.", "ops", "line",
		q(`sum by (service, scope, result) (`+rate(`medic_probes_total{`+svc+`}`)+`)`, "{{service}} {{scope}} {{result}}")))
	g.add(6, 8, stacked("Skipped probe slots",
		"Probe slots not run (medic_probe_skipped_total): overlap = the last probe of the target had not finished; "+
			"concurrency = no room within the interval under max_concurrent_probes or medic's adaptive limit.", "ops", "bars",
		q(`sum by (service, reason) (`+rate(`medic_probe_skipped_total{`+svc+`}`)+`) > 0`, "{{service}} {{reason}}")))
	g.add(6, 8, timeseries("Probes in flight",
		"Probes running now (medic_probes_in_flight) and medic's adaptive limit (medic_probe_concurrency_limit), per replica. "+
			"The limit falls while medic's goroutines wait for a CPU; probes in flight over 25 ms (waiting on their targets) "+
			"do not count against it, only against max_concurrent_probes.", "none",
		q(`medic_probes_in_flight{`+scope+`}`, "{{instance}} in flight"),
		q(`medic_probe_concurrency_limit{`+scope+`}`, "{{instance}} limit")))
	g.add(6, 8, timeseries("Targets",
		"Targets scheduled per scope (medic_probe_targets), each once however many replicas schedule it.", "none",
		q(`sum by (service, scope) (`+once("service, scope", `medic_probe_targets{`+svc+`}`)+`)`, "{{service}} {{scope}}")))
	return d
}
