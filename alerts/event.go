// Package alerts turns what medic sees and does into non-actionable
// notifications, and ships the Prometheus rules for medic's own metrics.
package alerts

import (
	"time"

	"github.com/medic-sre/medic/alerts/rules"
)

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
	ServiceSlow             Kind = "service_slow"    // the whole service answers slowly: no instance stands out
	VantageProblem          Kind = "vantage_problem" // the endpoint, the instances and the load balancer disagree: not the instances' fault
	ZonalShift              Kind = "zonal_shift"     // medic started (or cancelled) an ARC zonal shift away from an impaired zone
)

// allKinds lists every Kind.
var allKinds = []Kind{
	InstanceMarked, MarkRefused, EndpointFailing, EndpointRecovered, ReplacementRecovered,
	ReplacementNotRecovered, QuotaNearLimit, QuotaExhaustionForecast, PrewarmNeeded,
	PrewarmApplied, AWSAPITrouble, ServiceSlow, VantageProblem, ZonalShift,
}

// Severity says whether anyone needs to act. Its values are the severity
// labels of Prometheus's alerting conventions and of medic's own rules
// (alerts/rules): one vocabulary for everything medic sends, whatever the
// sink. docs/runbook.md ("Severities") says what each means.
type Severity string

const (
	Info     Severity = rules.Info     // nobody needs to act
	Warning  Severity = rules.Warning  // worth a look in working hours
	Critical Severity = rules.Critical // a person should act now (pages)

	// Action is Critical under its former name (the severity of an event
	// a person should act on), kept so that callers need not change.
	Action = Critical
)

// ParseSeverity returns the Severity named s: info, warning or critical.
// "action", the former name of critical, is still accepted.
func ParseSeverity(s string) (Severity, bool) {
	switch s {
	case string(Info), string(Warning), string(Critical):
		return Severity(s), true
	case "action":
		return Critical, true
	}
	return "", false
}

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
	// Ask says what a person should look at when NeedsAction is true
	// ("A person should look: <Ask>"). Empty means: the Summary.
	Ask string
	// Digest is set only on the digest the Dispatcher builds when a flood
	// of events of one kind for one service is folded into one message.
	Digest *Digest
}

// Digest describes the events folded into one message.
type Digest struct {
	// Count is the number of events in the flood, including those sent
	// one by one before it became a flood.
	Count int
	// Individually is how many of them were already sent one by one.
	Individually int
	// Subjects lists the events' subjects (at most MaxDigestSubjects).
	Subjects []string
	// Omitted counts the subjects left out of Subjects.
	Omitted int
	// Since and Until bound the flood.
	Since, Until time.Time
}

// Ends lists the kinds whose condition an event of kind k ends, for the
// same Service and Subject: an endpoint that recovers ends its failure, a
// replacement that recovered ends the instance's "marked" and "not
// recovered" conditions, an applied pre-warm ends the need. An event with
// Resolved set ends its own kind instead.
func (k Kind) Ends() []Kind {
	switch k {
	case EndpointRecovered:
		return []Kind{EndpointFailing}
	case ReplacementRecovered:
		return []Kind{InstanceMarked, ReplacementNotRecovered}
	case PrewarmApplied:
		return []Kind{PrewarmNeeded}
	}
	return nil
}

// Notifier accepts events. Notify never blocks the caller for long: sinks
// queue and deliver in the background.
type Notifier interface {
	Notify(Event)
}

// ToldByLeader reports whether, with a lease, only the leading replica
// tells events of kind k: the conditions of a service the heal loop
// reports (controller.Options.Leads), which every replica sees alike.
func (k Kind) ToldByLeader() bool {
	switch k {
	case EndpointFailing, EndpointRecovered, MarkRefused, ServiceSlow, VantageProblem:
		return true
	}
	return false
}

// Discard is a Notifier that drops everything.
type Discard struct{}

// Notify drops e.
func (Discard) Notify(Event) {}
