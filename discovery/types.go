// Package discovery reads, every refresh, who is in each service's fleet:
// the InService instances of its Auto Scaling groups, where they are and
// since when, each group's own view of their health, and the view of the
// load balancers' target groups they are registered with. The last two are
// evidence for people: medic decides on its own probes.
package discovery

import (
	"net/netip"
	"time"
)

// Instance is one member of an Auto Scaling group as AWS reports it.
type Instance struct {
	ID         string
	Group      string
	AZ         string
	PrivateIP  netip.Addr // zero when EC2 has not reported one yet
	LaunchTime time.Time
	// LifecycleState as the group reports it ("InService", "Pending", ...).
	LifecycleState string
	// HealthStatus as the group reports it ("Healthy" or "Unhealthy").
	HealthStatus string
	// LBHealth is what the target groups of the instance's Auto Scaling
	// group report of it, in the order the group lists them: one entry per
	// registration. Empty when the group has no target group, when a target
	// group does not list the instance (not registered, or no longer), when
	// discovery has no ELB client, or when reading that target group failed
	// in this refresh. Evidence for people, never a reason to act.
	LBHealth []TargetHealth
	// InServiceSince is when discovery saw the instance enter InService
	// (from Pending, back from Standby, attached); for an instance already
	// InService when medic started, its LaunchTime. Grace counts from it.
	// Zero while the instance is not InService. Discovery sees states only
	// at refreshes: the true moment lies between the refresh before and
	// this one, so grace may start up to one refresh interval late, never
	// early (see trackLifecycle).
	InServiceSince time.Time
	// InstanceType and ImageID as EC2 reports them; LaunchTemplate and
	// LaunchTemplateVersion as the group reports the instance's.
	InstanceType          string
	ImageID               string
	LaunchTemplate        string
	LaunchTemplateVersion string
}

// TargetHealth is one target group's view of one instance, as
// DescribeTargetHealth reports it.
type TargetHealth struct {
	// TargetGroup is the target group's name, from its ARN.
	TargetGroup string
	// State: healthy, unhealthy, initial, draining, unused or unavailable.
	State string
	// Reason is the load balancer's reason code when the state is not
	// healthy, e.g. Target.ResponseCodeMismatch; empty when it gives none.
	Reason string
}

// Group is an Auto Scaling group's own settings, as read at refresh.
type Group struct {
	Name        string
	GracePeriod time.Duration // HealthCheckGracePeriod
	Min, Max    int
	Desired     int
	// SuspendedProcesses the group reports ("ReplaceUnhealthy", "Launch",
	// "Terminate", "HealthCheck", ...).
	SuspendedProcesses []string
	// InstanceRefresh is the status of an instance refresh in progress
	// ("Pending", "InProgress", "Cancelling", "RollbackInProgress", ...),
	// empty when none is.
	InstanceRefresh string
	// Tags of the group (medic reads "medic:pause").
	Tags map[string]string
	// LaunchTemplate, LaunchTemplateVersion: what the group launches
	// replacements from (name or id, and version as configured).
	LaunchTemplate        string
	LaunchTemplateVersion string
	// LaunchConfiguration is the group's launch configuration name when it
	// launches from one instead of a template.
	LaunchConfiguration string
	// HasWarmPool: the group has a warm pool; WarmPoolSize is how many
	// instances it holds (Warmed:*), not members of Instances.
	HasWarmPool  bool
	WarmPoolSize int
}

// Snapshot is one service's fleet at one refresh.
type Snapshot struct {
	Service   string
	Groups    []Group
	Instances []Instance // every instance of every group, any lifecycle state
	At        time.Time  // when the refresh completed
}

// Lifecycle and health values as Auto Scaling reports them: the one place
// the rest of medic takes them from.
const (
	LifecycleInService = "InService"
	HealthHealthy      = "Healthy"
	HealthUnhealthy    = "Unhealthy"
)

// InService reports whether the group reports the instance InService.
func (i Instance) InService() bool { return i.LifecycleState == LifecycleInService }

// HeldUnhealthy reports whether the group holds the instance Unhealthy
// (marked by medic, by the group's own health checks, or by anyone else).
func (i Instance) HeldUnhealthy() bool { return i.HealthStatus == HealthUnhealthy }
