// Package config holds medic's configuration: its shape, its defaults and its
// validation. A Config is only ever built by Load, so every value in it has
// been checked and every default applied.
package config

import (
	"net/netip"
	"regexp"
	"time"
)

// Config is the whole of medic's configuration file.
type Config struct {
	Global   Global    `yaml:"global"`
	Services []Service `yaml:"services"`
	// Limits: quota headroom and load-balancer pre-warm (config/limits.go).
	Limits Limits `yaml:"limits"`
	// Notifications: where events go (config/notifications.go).
	Notifications Notifications `yaml:"notifications"`

	// File is the path the config was read from (not part of the YAML).
	File string `yaml:"-"`
	// Warnings are what Load found risky but allowed, each
	// "FILE:LINE: field.path: message"; the caller logs them.
	Warnings []string `yaml:"-"`
}

// Global holds settings that apply to the whole controller.
type Global struct {
	// Region is the AWS region. Empty means: from the environment, then
	// from instance metadata.
	Region      string `yaml:"region"`
	Environment string `yaml:"environment"`
	// AllowedNetworks bounds every probe: an endpoint or static target
	// written as an IP outside them is refused at load; host names are
	// checked by the prober on every dial, instance IPs at discovery and
	// dial. Default: 10/8, 172.16/12, 192.168/16, 127/8 (see Allows).
	AllowedNetworks []Prefix `yaml:"allowed_networks"`
	// DiscoveryInterval is how often the fleet is re-read from AWS. Default 15s.
	DiscoveryInterval Duration `yaml:"discovery_interval"`
	// MaxConcurrentProbes bounds the probes in flight across all targets. Default 512.
	// Below it the scheduler adapts its own limit (probes/limit.go).
	MaxConcurrentProbes int `yaml:"max_concurrent_probes"`
	// Lease elects the one acting replica (config/lease.go). Nil: this
	// replica always acts.
	Lease *Lease `yaml:"lease"`
}

// Service is one service behind a load balancer: its endpoint, its groups,
// how its instances are probed and the policy that decides what to do.
type Service struct {
	Name string `yaml:"name"`
	// Endpoint is a URL probed through the load balancer (optional).
	Endpoint string `yaml:"endpoint"`
	// EndpointProbe tunes the endpoint probe. Fields left out take the
	// instance probe's interval, timeout, expect_status, body_must_match,
	// max_body_bytes, method, headers and headers_from_env. Its scheme,
	// port and path are set by Load from Endpoint and may not be written.
	EndpointProbe     Probe    `yaml:"endpoint_probe"`
	AutoScalingGroups []string `yaml:"auto_scaling_groups"`
	// StaticTargets are host:port pairs probed without an Auto Scaling
	// group; they are judged and reported but never acted upon.
	StaticTargets []string `yaml:"static_targets"`
	InstanceProbe Probe    `yaml:"instance_probe"`
	Policy        Policy   `yaml:"policy"`
}

// Probe says how one target is probed. Type names a prober in probes.Probers.
type Probe struct {
	Type string `yaml:"type"` // http | tcp; default http
	// Port is the instance port probed at the instance's private IP.
	Port int `yaml:"port"`
	// Scheme is http or https for instance probes. Default http.
	Scheme string `yaml:"scheme"`
	Path   string `yaml:"path"`   // default /
	Method string `yaml:"method"` // default GET
	// Headers are sent with every http probe. They are written in the file
	// in clear, so credentials (Authorization, Cookie, …) are refused here:
	// use HeadersFromEnv.
	Headers map[string]string `yaml:"headers"`
	// HeadersFromEnv maps a header name to the environment variable holding
	// its value. The variables are read once, at load; a missing one is an
	// error. Use it for credentials.
	HeadersFromEnv map[string]string `yaml:"headers_from_env"`
	// SecretHeaders holds the values read for HeadersFromEnv, keyed by
	// canonical header name. Set by Load, never by the file; a Secret
	// prints as "<secret>". Probers send RequestHeader(), which merges both.
	SecretHeaders map[string]Secret `yaml:"-"`
	// Interval between probes of one target. Default 2s.
	Interval Duration `yaml:"interval"`
	// Timeout of one probe, at most Interval. Default 1s.
	Timeout Duration `yaml:"timeout"`
	// ExpectStatus lists accepted status codes or ranges ("200-299", "301").
	// Default 200-299.
	ExpectStatus  []StatusRange `yaml:"expect_status"`
	BodyMustMatch *Regexp       `yaml:"body_must_match"`
	// MaxBodyBytes bounds how much of a body is read. Default 64 KiB.
	MaxBodyBytes    int64 `yaml:"max_body_bytes"`
	FollowRedirects bool  `yaml:"follow_redirects"`
	// KeepAlive reuses connections between probes. Default false: a fresh
	// connection per probe, like a load balancer's health check.
	KeepAlive bool `yaml:"keep_alive"`
	TLS       TLS  `yaml:"tls"`
}

// TLS options for https probes.
type TLS struct {
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	ServerName         string `yaml:"server_name"`
	CAFile             string `yaml:"ca_file"`
}

// Policy decides when an instance is bad and how much medic may do about it.
type Policy struct {
	// UnhealthyAfter consecutive failed probes make an instance bad. Default 3.
	UnhealthyAfter int `yaml:"unhealthy_after"`
	// HealthyAfter consecutive passes make a failing instance healthy again. Default 2.
	HealthyAfter int `yaml:"healthy_after"`
	// MaxUnhealthy: when more of a group's InService instances are bad than
	// this, mark none. Default 34%.
	MaxUnhealthy IntOrPercent `yaml:"max_unhealthy"`
	// GracePeriod for new instances: "asg" (the group's
	// HealthCheckGracePeriod) or a duration. Default asg.
	GracePeriod GracePeriod `yaml:"grace_period"`
	// MaxActionsPerHour bounds marks per service in any sliding hour. Default 10.
	MaxActionsPerHour int `yaml:"max_actions_per_hour"`
	// AZCorrelation refuses to mark when the bad instances are two or more,
	// all in one availability zone of a service that spans several, and at
	// least half of that zone: the fault is the zone's, and replacements
	// would land in it too. Default true.
	AZCorrelation bool `yaml:"az_correlation"`
	// FailureRatio: an instance failing at least this share of its last
	// FailureWindow probes is bad, even without UnhealthyAfter failures in
	// a row (an intermittent fault). Default 0.6.
	FailureRatio float64 `yaml:"failure_ratio"`
	// FailureWindow is how many of an instance's latest probes the ratio
	// rule looks at. Default 15; 2 to 64.
	FailureWindow int `yaml:"failure_window"`
	// Paused: medic probes, judges and reports this service but marks
	// nothing (refusal "paused"). A group is paused on its own with the tag
	// medic:pause. Default false.
	Paused bool `yaml:"paused"`
	// StopAfterFailedReplacements: when this many replacements medic caused
	// in a group are judged bad after their grace, medic stops marking in
	// that group and asks a person to act. 0 never stops. Default 1.
	StopAfterFailedReplacements int `yaml:"stop_after_failed_replacements"`
	// LatencyOutliers judges instances that answer but well slower than
	// their peers. On by default.
	LatencyOutliers LatencyOutliers `yaml:"latency_outliers"`
	// ZonalShift moves the load balancer's traffic away from an impaired
	// zone (ARC zonal shift). Off by default.
	ZonalShift ZonalShift `yaml:"zonal_shift"`
}

// LatencyOutliers is the latency outlier policy of a service (see
// healer.OutlierPolicy for the rules).
type LatencyOutliers struct {
	// Enabled: judge latency outliers. Default true.
	Enabled bool `yaml:"enabled"`
	// Window: only successful probes started this long ago count. Default 2m.
	Window Duration `yaml:"window"`
	// Quantile of the window taken as an instance's typical latency. Default 0.5.
	Quantile float64 `yaml:"quantile"`
	// MinSamples successful probes in the window to be judged. Default 10.
	MinSamples int `yaml:"min_samples"`
	// MinPeers other judged instances to be judged against. Default 2.
	MinPeers int `yaml:"min_peers"`
	// RelativeMargin: times the peers' median to stand out. Default 3.
	RelativeMargin float64 `yaml:"relative_margin"`
	// AbsoluteMargin above the peers' median to stand out. Default 100ms.
	AbsoluteMargin Duration `yaml:"absolute_margin"`
	// SlowService: the fleet's median at which the whole service is slow.
	// Zero (default): half the instance probe's timeout.
	SlowService Duration `yaml:"slow_service"`
	// DegradedFor: standing out this long without a break makes an
	// instance bad. Default 3m.
	DegradedFor Duration `yaml:"degraded_for"`
}

// ZonalShift is the opt-in zonal shift policy of a service.
type ZonalShift struct {
	// Enabled: start and cancel ARC zonal shifts. Default false.
	Enabled bool `yaml:"enabled"`
	// Expiry of a shift medic starts: whole minutes, 1m to 72h. Default 1h.
	Expiry Duration `yaml:"expiry"`
	// LoadBalancerARN is the resource shifted (the service's load
	// balancer). Required when enabled.
	LoadBalancerARN string `yaml:"load_balancer_arn"`
}

// Duration is a time.Duration written as a Go duration string ("2s", "1m30s").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Prefix is a CIDR network ("127.0.0.0/8").
type Prefix struct{ netip.Prefix }

// Regexp is a regular expression compiled at load.
type Regexp struct {
	*regexp.Regexp
	Source string
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Low, High int }

// Contains reports whether code is in the range.
func (r StatusRange) Contains(code int) bool { return code >= r.Low && code <= r.High }

// IntOrPercent is a count ("2") or a percentage ("34%").
type IntOrPercent struct {
	Value     int
	IsPercent bool
}

// GracePeriod is either the group's own HealthCheckGracePeriod (FromASG)
// or a fixed duration.
type GracePeriod struct {
	FromASG  bool
	Duration time.Duration
}
