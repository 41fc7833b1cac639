package dashboards

// Overview is the service overview: is the service up as its users see it,
// what state its instances are in per AZ, what medic did and refused,
// whether medic itself is well, and which replica leads.
func Overview() Dashboard {
	d := newDashboard("medic-overview", "medic / Service overview",
		"Endpoint health through the load balancer, instances by judged state per AZ, "+
			"what medic marked and what its guard refused, medic's own health, and which replica holds the lease and acts.")
	g := grid{d: &d}

	g.row("The service, as its users see it")
	g.add(6, 6, stat("Endpoint passing",
		"1 when the last probe through the load balancer passed (medic_service_endpoint_success).", "none",
		thresholds("red", 1.0, "green"),
		Target{Expr: `min by (service) (medic_service_endpoint_success{` + svc + `})`, LegendFormat: "{{service}}", Instant: true}))
	g.add(9, 6, timeseries("Endpoint success ratio",
		"Share of endpoint probes that passed. The SLO alerts (MedicServiceEndpointErrorBudgetBurn) burn on its complement.",
		"percentunit",
		q(`sum by (service) (`+rate(`medic_probes_total{scope="endpoint",result="success",`+svc+`}`)+`)
/
sum by (service) (`+rate(`medic_probes_total{scope="endpoint",`+svc+`}`)+`)`, "{{service}}")))
	g.add(9, 6, timeseries("Endpoint latency",
		"p50 and p99 of endpoint probe durations (medic_probe_latency_seconds), and the last probe's duration.", "s",
		q(`histogram_quantile(0.99, sum by (service, le) (`+rate(`medic_probe_latency_seconds_bucket{scope="endpoint",`+svc+`}`)+`))`, "{{service}} p99"),
		q(`histogram_quantile(0.5, sum by (service, le) (`+rate(`medic_probe_latency_seconds_bucket{scope="endpoint",`+svc+`}`)+`))`, "{{service}} p50"),
		q(`max by (service) (medic_service_endpoint_duration_seconds{`+svc+`})`, "{{service}} last")))

	g.row("The fleet")
	g.add(12, 8, stacked("Instances by state per AZ",
		"Instances by medic's judged state (medic_instances). bad = will be marked unless the guard refuses; "+
			"grace = new, not judged yet. Each instance counts once however many medic replicas report it.", "none", "bars",
		q(`sum by (az, state) (`+once("service, az, state", `medic_instances{`+svc+`}`)+`)`, "{{az}} {{state}}")))
	g.add(12, 8, table("Instances now, per AZ",
		"The same, now, one row per service, AZ and state.", "none",
		instant(`sum by (service, az, state) (`+once("service, az, state", `medic_instances{`+svc+`}`)+`)`)))

	g.row("What medic did and refused")
	g.add(8, 8, stacked("Heal actions",
		"Marking attempts by result (medic_heal_actions_total). marked = set Unhealthy (by the leader); dry_run = would have "+
			"(a standby, or --dry-run). Counted once across replicas.", "none", "bars",
		q(`sum by (service, result) (`+once("service, result", `increase(medic_heal_actions_total{`+svc+`}[$__rate_interval])`)+`) > 0`, "{{service}} {{result}}")))
	g.add(8, 8, stacked("Guard refusals",
		"Times the guard refused to mark, by reason (medic_guard_refusals_total). Counted once across replicas.", "none", "bars",
		q(`sum by (service, reason) (`+once("service, reason", `increase(medic_guard_refusals_total{`+svc+`}[$__rate_interval])`)+`) > 0`, "{{service}} {{reason}}")))
	g.add(8, 8, stateTimeline("Guard refusing",
		"While the guard refuses, per reason (medic_guard_refusing). MedicGuardRefusing fires after 10 minutes.",
		valueText("0", "ok", "green", "1", "refusing", "orange"),
		thresholds("green", 1.0, "orange"),
		q(`max by (service, reason) (medic_guard_refusing{`+svc+`})`, "{{service}} {{reason}}")))
	g.add(8, 6, timeseries("Marks in the last hour",
		"Marks in the sliding hour per service: the rate-limit budget used (max_actions_per_hour).", "none",
		q(`max by (service) (medic_heal_actions_last_hour{`+svc+`})`, "{{service}}")))
	g.add(8, 6, stacked("Replacement outcomes",
		"After a mark, did the replacement recover (medic_replacements_total)? not_recovered is the one that needs a person.",
		"none", "bars",
		q(`sum by (service, outcome) (`+once("service, outcome", `increase(medic_replacements_total{`+svc+`}[$__rate_interval])`)+`) > 0`, "{{service}} {{outcome}}")))
	g.add(8, 6, stacked("Notifications",
		"Events handled per sink by result (medic_notifications_total: sent, failed, deduplicated, digested), "+
			"and what full queues dropped. All services, all chosen replicas.", "none", "bars",
		q(`sum by (sink, result) (increase(`+sel("medic_notifications_total")+`[$__rate_interval])) > 0`, "{{sink}} {{result}}"),
		q(`sum by (sink) (increase(`+sel("medic_notifications_dropped_total")+`[$__rate_interval])) > 0`, "dropped {{sink}}")))
	g.add(24, 9, sortDesc(eventsTable(), "Time"))

	g.row("medic itself, per replica")
	g.add(6, 5, stat("medic ready",
		"1 when /-/ready answers 200: config loaded and a discovery succeeded. One value per replica.", "none",
		thresholds("red", 1.0, "green"),
		Target{Expr: `min by (instance) (` + sel("medic_ready") + `)`, LegendFormat: "{{instance}}", Instant: true}))
	g.add(6, 5, stat("Fleet age",
		"Seconds since the fleet was last read whole (time() - medic_discovery_last_success_timestamp_seconds), per replica. "+
			"MedicDiscoveryStale fires above 120s.",
		"s", thresholds("green", 60.0, "orange", 120.0, "red"),
		Target{Expr: `max by (instance) (time() - ` + sel("medic_discovery_last_success_timestamp_seconds") + `)`, LegendFormat: "{{instance}}", Instant: true}))
	g.add(6, 5, stat("Config reload",
		"1 if the last config reload was valid (medic_config_last_reload_successful), per replica.", "none",
		thresholds("red", 1.0, "green"),
		Target{Expr: `min by (instance) (` + sel("medic_config_last_reload_successful") + `)`, LegendFormat: "{{instance}}", Instant: true}))
	g.add(6, 5, stat("Running version",
		"medic_build_info: how many replicas run each version.", "none", thresholds("blue"),
		Target{Expr: `count by (version) (` + sel("medic_build_info") + `)`, LegendFormat: "{{version}}", Instant: true}))
	g.add(12, 7, stacked("AWS API calls not succeeding",
		"Throttled and failed AWS calls per AWS service and operation (medic_aws_api_calls_total), all chosen replicas. medic retries with backoff.",
		"reqps", "bars",
		q(`sum by (service, operation, result) (`+rate(sel("medic_aws_api_calls_total", `result!="success"`))+`) > 0`, "{{service}} {{operation}} {{result}}")))
	g.add(12, 7, timeseries("AWS API latency p99",
		"p99 of AWS API call durations per AWS service and operation (medic_aws_api_call_duration_seconds).", "s",
		q(`histogram_quantile(0.99, sum by (service, operation, le) (`+rate(sel("medic_aws_api_call_duration_seconds_bucket"))+`))`, "{{service}} {{operation}}")))
	g.add(12, 7, timeseries("Notification queues",
		"Events waiting per sink and replica (medic_notification_queue_length). A full queue drops its oldest event; delivery never blocks healing.",
		"none",
		q(`max by (instance, sink) (`+sel("medic_notification_queue_length")+`)`, "{{sink}} {{instance}}")))
	g.add(12, 7, timeseries("Notification delivery p99",
		"p99 of one delivery attempt per sink (medic_notification_delivery_duration_seconds).", "s",
		q(`histogram_quantile(0.99, sum by (sink, le) (`+rate(sel("medic_notification_delivery_duration_seconds_bucket"))+`))`, "{{sink}}")))

	// Leadership. Only with global.lease (docs/lease.md); without it the
	// one replica always acts and these panels have no data.
	g.row("Leadership (with global.lease)")
	g.add(4, 6, stat("Leaders",
		"Replicas holding the lease now, per job (sum of medic_lease_leader): 1 in steady state, 0 briefly during a takeover. "+
			"MedicNoLeader fires after 2 minutes at 0, MedicSeveralLeaders after 1 minute above 1. No data: no lease configured.",
		"none", thresholds("red", 1.0, "green", 2.0, "red"),
		Target{Expr: `sum by (job) (` + sel("medic_lease_leader") + `)`, LegendFormat: "{{job}}", Instant: true}))
	g.add(10, 6, stateTimeline("Leader by replica",
		"Which replica holds the lease and acts (medic_lease_leader, per scraped instance); the others stand by and report would-be marks as dry runs.",
		valueText("0", "standby", "blue", "1", "leader", "green"),
		thresholds("blue", 1.0, "green"),
		q(`max by (instance) (`+sel("medic_lease_leader")+`)`, "{{instance}}")))
	g.add(5, 6, stacked("Leadership changes",
		"Times each replica became or stopped being leader (medic_lease_transitions_total). A handover is two: one replica stops, another starts.",
		"none", "bars",
		q(`sum by (instance) (increase(`+sel("medic_lease_transitions_total")+`[$__rate_interval])) > 0`, "{{instance}}")))
	g.add(5, 6, stacked("Lease calls failing",
		"Throttled and failed DynamoDB calls on the lease item per replica (medic_lease_operations_total; conflict, "+
			"another replica holding it, is normal for a standby and not shown). MedicLeaseErrors fires after 10 minutes.",
		"none", "bars",
		q(`sum by (instance, operation, result) (increase(`+sel("medic_lease_operations_total", `result=~"error|throttled"`)+`[$__rate_interval])) > 0`,
			"{{instance}} {{operation}} {{result}}")))
	return d
}

// eventsTable lists, minute by minute, what medic did and refused: no log
// datasource needed.
func eventsTable() Panel {
	p := table("Recent events",
		"Per minute: marks by result, guard refusals by reason and replacement outcomes. For the evidence behind "+
			"each, see the status page or medic's log by request_id.", "none",
		Target{Expr: `sum by (service, result) (` + once("service, result", `increase(medic_heal_actions_total{`+svc+`}[1m])`) + `) > 0`,
			Format: "table", Interval: "1m"},
		Target{Expr: `sum by (service, reason) (` + once("service, reason", `increase(medic_guard_refusals_total{`+svc+`}[1m])`) + `) > 0`,
			Format: "table", Interval: "1m"},
		Target{Expr: `sum by (service, outcome) (` + once("service, outcome", `increase(medic_replacements_total{`+svc+`}[1m])`) + `) > 0`,
			Format: "table", Interval: "1m"},
	)
	// Keep Time here: it is when the events happened.
	p.Transformations = []Transformation{
		{ID: "merge", Options: map[string]any{}},
		{ID: "organize", Options: map[string]any{"renameByName": map[string]string{"Value": "count"}}},
	}
	return p
}
