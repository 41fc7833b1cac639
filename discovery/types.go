// Package discovery reads, every refresh, who is in each service's fleet:
// the InService instances of its Auto Scaling groups, where they are and
// since when, and each group's own view of their health.
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
}

// Group is an Auto Scaling group's own settings, as read at refresh.
type Group struct {
	Name        string
	GracePeriod time.Duration // HealthCheckGracePeriod
	Min, Max    int
	Desired     int
}

// Snapshot is one service's fleet at one refresh.
type Snapshot struct {
	Service   string
	Groups    []Group
	Instances []Instance // every instance of every group, any lifecycle state
	At        time.Time  // when the refresh completed
}
