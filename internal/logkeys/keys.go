// Package logkeys names medic's log keys. Log keys are an API: dashboards,
// log queries and runbooks depend on them, so they live here, snake_case and
// stable, and every package uses these constants rather than literals.
package logkeys

const (
	TS        = "ts"
	Caller    = "caller"
	Level     = "level"
	Msg       = "msg"
	Err       = "err"
	Component = "component"

	// The controller's own identity, on every line.
	Region      = "region"
	AZ          = "az"
	InstanceID  = "instance_id"
	Environment = "environment"

	// RequestID ties together the lines of one cycle or one action.
	RequestID = "request_id"

	Service      = "service"
	Group        = "asg"
	Target       = "target"
	Operation    = "operation"
	Attempt      = "attempt"
	Reason       = "reason"
	State        = "state"
	Result       = "result"
	Duration     = "duration"
	DryRun       = "dry_run"
	Count        = "count"
	Sink         = "sink"
	Quota        = "quota"
	LoadBalancer = "load_balancer"
	TargetGroup  = "target_group"

	// The lease that keeps a single replica acting.
	Lease          = "lease"
	Table          = "table"
	Holder         = "holder"
	PreviousHolder = "previous_holder"
	Until          = "until"
	// LeaseGeneration is the fencing token an action was taken under.
	LeaseGeneration = "lease_generation"

	// Self* describe the controller host (so they don't clash with the
	// instance being acted on).
	SelfAZ         = "self_az"
	SelfInstanceID = "self_instance_id"
)

// The probe scheduler's adaptive limit (probes/limit.go).
const (
	Limit         = "limit"
	PreviousLimit = "previous_limit"
	SchedLatency  = "sched_latency_p90"
)

// ZonalShiftID names an ARC zonal shift medic starts, keeps or cancels.
const ZonalShiftID = "zonal_shift_id"
