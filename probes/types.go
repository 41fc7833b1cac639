// Package probes holds the probers (HTTP, TCP) behind one function type and
// one table, and the scheduler that runs them on their intervals.
package probes

import (
	"context"
	"time"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
)

// Target is one thing probed on a schedule: a service endpoint, an
// instance at its private IP, or a static target.
type Target struct {
	// Key identifies the target across updates; a changed Key is a new target.
	Key        string
	Service    string
	InstanceID string // empty for endpoints and static targets
	AZ         string
	// Address is a URL for endpoint probes, host:port for instance and
	// static targets.
	Address string
	// Settings are the probe's settings, shared by every target of a
	// service (read only); read through Probe, which is never nil.
	Settings *config.Probe
	// Allowed bounds where the probe may connect; an address outside every
	// prefix fails the probe without a packet sent. Empty allows any.
	Allowed []config.Prefix

	// prep is what this target's probes reuse (request, client); set by
	// the Scheduler, nil for a Target built by hand (built per probe).
	prep *prepared
}

// noSettings is Probe's answer for a Target built without settings.
var noSettings config.Probe

// Probe returns t's settings: the zero Probe (every default) when t has
// none.
func (t *Target) Probe() *config.Probe {
	if t.Settings == nil {
		return &noSettings
	}
	return t.Settings
}

// Result is the outcome of one probe.
type Result struct {
	Start      time.Time
	Duration   time.Duration
	Success    bool
	Reason     string // why it failed ("status 500", "timeout", "body did not match"), empty on success
	StatusCode int    // HTTP only
	// Lateness is how long after its scheduled slot the probe started. Set
	// by the Scheduler; zero when a prober is called directly.
	Lateness time.Duration
}

// Prober runs one probe of target with its settings and reports the
// outcome. It never panics and never outlives ctx.
type Prober func(ctx context.Context, target Target, logger log.Logger) Result
