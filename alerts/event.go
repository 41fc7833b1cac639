// Package alerts turns what medic sees and does into non-actionable
// notifications, and ships the Prometheus rules for medic's own metrics.
package alerts

import "time"

// Kind names what happened. The set is fixed: sinks, digests and the
// Alertmanager alertname derive from it.
type Kind string

const (
	InstanceMarked          Kind = "instance_marked"           // medic marked an instance Unhealthy
	MarkRefused             Kind = "mark_refused"              // the guard refused to mark, with its reason
	EndpointFailing         Kind = "endpoint_failing"          // the service endpoint fails
	EndpointRecovered       Kind = "endpoint_recovered"        // it passes again
	ReplacementRecovered    Kind = "replacement_recovered"     // replaced, the newcomer is healthy, the service is good
	ReplacementNotRecovered Kind = "replacement_not_recovered" // replaced but not recovered: a person should look
	QuotaNearLimit          Kind = "quota_near_limit"
	QuotaExhaustionForecast Kind = "quota_exhaustion_forecast"
	PrewarmNeeded           Kind = "prewarm_needed"
	PrewarmApplied          Kind = "prewarm_applied"
	AWSAPITrouble           Kind = "aws_api_trouble"
)

// Severity says whether anyone needs to act.
type Severity string

const (
	Info    Severity = "info"    // nobody needs to act
	Warning Severity = "warning" // worth a look in working hours
	Action  Severity = "action"  // a person should act
)

// Event is one thing medic reports. Every message built from it says what
// happened, the evidence, what medic did, the service's state, and whether
// anyone needs to act.
type Event struct {
	Kind     Kind
	Severity Severity
	Time     time.Time
	Service  string
	// Subject is what the event is about: an instance id, a quota code, a
	// load balancer name. Events with the same Kind, Service and Subject
	// are the same condition (for deduplication and resolving).
	Subject  string
	AZ       string
	Summary  string   // one line: what happened
	Evidence []string // the probe results / figures that convinced medic
	Action   string   // what medic did ("marked Unhealthy", "nothing: guard refused")
	State    string   // the service's state now ("5/6 healthy, endpoint passing")
	// NeedsAction is true only when a person must act.
	NeedsAction bool
	// Resolved marks the end of a condition (Alertmanager resolves the alert).
	Resolved bool
	// Labels are extra bounded labels (e.g. reason) for sinks that use them.
	Labels map[string]string
	// RequestID ties the event to the cycle or action that raised it.
	RequestID string
}

// Notifier accepts events. Notify never blocks the caller for long: sinks
// queue and deliver in the background.
type Notifier interface {
	Notify(Event)
}

// Discard is a Notifier that drops everything.
type Discard struct{}

// Notify drops e.
func (Discard) Notify(Event) {}
