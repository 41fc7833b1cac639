package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits configures service-limit headroom and ELB pre-warm (see limits/
// and docs/limits.md, docs/prewarm.md). The zero value, after setDefaults,
// watches the built-in quota catalogue every five minutes and acts on nothing.
type Limits struct {
	// Interval between refreshes. Default 5m.
	Interval Duration `yaml:"interval"`
	// Warning and Critical are the used fractions of a limit (0 < x <= 1)
	// at which a quota is reported. Defaults 0.80 and 0.95.
	Warning  float64 `yaml:"warning"`
	Critical float64 `yaml:"critical"`
	// ForecastHorizon: a quota forecast to run out within it is reported.
	// Default 168h (7 days).
	ForecastHorizon Duration `yaml:"forecast_horizon"`
	// History is how much usage history is kept (and read from CloudWatch
	// AWS/Usage on start). At least 8 days keeps week-over-week working.
	// Default 192h.
	History Duration `yaml:"history"`
	// TrendWindow is how far back the trend of peaks is fitted. Default
	// 168h (7 days).
	TrendWindow Duration `yaml:"trend_window"`
	// PeakWindow is the span whose peak is one point of the trend (a
	// daily cycle's peaks by default). Default 24h.
	PeakWindow Duration `yaml:"peak_window"`
	// MinPeaks is the fewest peak windows with data that make a trend.
	// Default 4.
	MinPeaks int `yaml:"min_peaks"`
	// MinRSquared is the least share of the peaks' variance the fitted
	// line must explain for a forecast (0 < x <= 1). Default 0.8.
	MinRSquared float64 `yaml:"min_r_squared"`
	// UsageMaxAge: a usage figure older than this is unknown. Default 1h.
	UsageMaxAge Duration `yaml:"usage_max_age"`
	// ServiceQuotasRPS bounds calls to the Service Quotas API per second.
	// Default 5.
	ServiceQuotasRPS float64 `yaml:"service_quotas_rps"`
	// Quotas override catalogue entries (matched by service_code and code)
	// or add new ones.
	Quotas []Quota `yaml:"quotas"`
	// IncreaseRequests files RequestServiceQuotaIncrease. Off by default.
	IncreaseRequests IncreaseRequests `yaml:"increase_requests"`
	Prewarm          Prewarm          `yaml:"prewarm"`
}

// Quota is one quota override or addition.
type Quota struct {
	ServiceCode string `yaml:"service_code"`
	Code        string `yaml:"code"`
	// Name is required for a quota not in the catalogue.
	Name string `yaml:"name"`
	// Limit overrides every other limit source when set.
	Limit *float64 `yaml:"limit"`
	// Warning and Critical override the global thresholds when non-zero.
	Warning  float64 `yaml:"warning"`
	Critical float64 `yaml:"critical"`
	// Mute keeps the quota measured and exported but never notified.
	Mute bool `yaml:"mute"`
	// Usage: where usage comes from, required for a quota not in the
	// catalogue. Exactly one of describe or cloudwatch.
	Usage QuotaUsage `yaml:"usage"`
}

// QuotaUsage names the usage source of an added quota.
type QuotaUsage struct {
	// Describe names a built-in describe source (LimitsDescribeSources).
	Describe string `yaml:"describe"`
	// CloudWatch is an AWS/Usage metric (ResourceCount, Maximum).
	CloudWatch *UsageMetric `yaml:"cloudwatch"`
}

// UsageMetric identifies an AWS/Usage metric by its dimensions.
type UsageMetric struct {
	Service  string `yaml:"service"`
	Type     string `yaml:"type"`
	Resource string `yaml:"resource"`
	Class    string `yaml:"class"`
}

// LimitsDescribeSources are the describe-call usage sources the limits
// package implements; a test there keeps the two lists equal.
var LimitsDescribeSources = []string{
	"asg_groups", "asg_launch_configurations",
	"ec2_vcpus_standard", "ec2_vcpus_g", "ec2_vcpus_p", "ec2_vcpus_x", "ec2_vcpus_f",
	"ec2_vcpus_inf", "ec2_vcpus_trn", "ec2_vcpus_dl", "ec2_vcpus_hpc", "ec2_vcpus_high_memory",
	"ec2_spot_vcpus_standard", "ec2_spot_vcpus_g", "ec2_spot_vcpus_p", "ec2_spot_vcpus_p5", "ec2_spot_vcpus_x",
	"ec2_spot_vcpus_f", "ec2_spot_vcpus_inf", "ec2_spot_vcpus_trn", "ec2_spot_vcpus_dl",
	"ec2_elastic_ips", "ec2_launch_templates",
	"ebs_storage_gp2", "ebs_storage_gp3", "ebs_storage_io1", "ebs_storage_io2", "ebs_storage_st1",
	"ebs_storage_sc1", "ebs_storage_standard", "ebs_snapshots",
	"elbv2_albs", "elbv2_nlbs", "elbv2_target_groups",
	"elbv2_targets_per_alb", "elbv2_targets_per_nlb", "elbv2_listeners_per_alb",
	"elbv2_targets_per_az_per_nlb", "elbv2_targets_per_target_group", "elbv2_rules_per_alb",
	"elb_classic", "elb_instances_per_classic",
	"vpc_vpcs", "vpc_subnets_per_vpc", "vpc_security_groups",
	"vpc_network_interfaces", "vpc_internet_gateways",
	"vpc_security_groups_per_eni", "vpc_rules_per_security_group", "vpc_nat_gateways_per_az",
}

// IncreaseRequests configures automatic quota-increase requests.
type IncreaseRequests struct {
	Enabled bool `yaml:"enabled"`
	// Horizon: a request is filed when the forecast crosses the limit
	// within it. Default 336h (14 days).
	Horizon Duration `yaml:"horizon"`
	// Factor multiplies the current limit for the desired value. Default 1.5.
	Factor float64 `yaml:"factor"`
	// Headroom is added to the forecast peak at the horizon: the desired
	// value is at least that peak × (1 + headroom). Default 0.2.
	Headroom float64 `yaml:"headroom"`
}

// Prewarm configures load-balancer pre-warm.
type Prewarm struct {
	// Apply calls ModifyCapacityReservation. Off by default: medic only
	// reports what it would reserve.
	Apply bool `yaml:"apply"`
	// LeadTime: how long before an event the reservation is made. AWS
	// fulfils most within an hour but some take "up to a few hours".
	// Default 4h.
	LeadTime Duration `yaml:"lead_time"`
	// Window is the forecast span looked at ahead of now. Default 1h.
	Window Duration `yaml:"window"`
	// MaxRamp is the largest tolerated growth per 5 minutes as a ratio
	// (AWS's guidance: about 1.5). Default 1.5.
	MaxRamp float64 `yaml:"max_ramp"`
	// RampMinCount: a 5-minute bucket below this count never raises a ramp
	// (noise at low traffic). Default 1000.
	RampMinCount float64 `yaml:"ramp_min_count"`
	// Headroom multiplies the forecast LCUs. Default 1.2.
	Headroom float64 `yaml:"headroom"`
	// MaxDecreasesPerDay bounds reservation decreases per load balancer in
	// 24h (AWS allows two a day). Default 2.
	MaxDecreasesPerDay int `yaml:"max_decreases_per_day"`
	// ProvisionTimeout: a reservation pending longer than this needs a
	// person. Default 4h (AWS: "up to a few hours").
	ProvisionTimeout Duration `yaml:"provision_timeout"`
	// MaxRetries: a failed reservation is requested again at most this
	// many times in a row, then reported as needing a person. Default 3.
	MaxRetries    int                   `yaml:"max_retries"`
	LoadBalancers []PrewarmLoadBalancer `yaml:"load_balancers"`
	Events        []ScheduledEvent      `yaml:"events"`
}

// PrewarmLoadBalancer is one watched load balancer.
type PrewarmLoadBalancer struct {
	// Name is the label in metrics and events (and the Classic LB name).
	Name string `yaml:"name"`
	// Type is application, network or classic.
	Type string `yaml:"type"`
	// ARN is required for application and network.
	ARN string `yaml:"arn"`
	// MaxCapacityUnits is the ceiling for a reservation. Default 0: no
	// reservation is ever made above 0 — set it to allow apply.
	MaxCapacityUnits int `yaml:"max_capacity_units"`
}

// ScheduledEvent is a known traffic event ("launch at 15:00Z, 8× normal").
type ScheduledEvent struct {
	Name  string    `yaml:"name"`
	Start Timestamp `yaml:"start"`
	// Duration of the event. Default 1h.
	Duration Duration `yaml:"duration"`
	// Multiplier of normal traffic expected. Must be > 0.
	Multiplier float64 `yaml:"multiplier"`
	// LoadBalancers names the affected load balancers; empty means all.
	LoadBalancers []string `yaml:"load_balancers"`
}

// Timestamp is an RFC 3339 time; seconds may be left out
// ("2026-12-01T15:00Z").
type Timestamp struct{ time.Time }

// UnmarshalYAML parses the time.
func (t *Timestamp) UnmarshalYAML(n *yaml.Node) error {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if v, err := time.Parse(layout, n.Value); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("line %d: %q is not an RFC 3339 time", n.Line, n.Value)
}

func (l *Limits) setDefaults() {
	setDur := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	setF := func(f *float64, v float64) {
		if *f == 0 {
			*f = v
		}
	}
	setDur(&l.Interval, 5*time.Minute)
	setF(&l.Warning, 0.80)
	setF(&l.Critical, 0.95)
	setDur(&l.ForecastHorizon, 7*24*time.Hour)
	setDur(&l.History, 8*24*time.Hour)
	setDur(&l.TrendWindow, 7*24*time.Hour)
	setDur(&l.PeakWindow, 24*time.Hour)
	if l.MinPeaks == 0 {
		l.MinPeaks = 4
	}
	setF(&l.MinRSquared, 0.8)
	setF(&l.IncreaseRequests.Headroom, 0.2)
	setDur(&l.UsageMaxAge, time.Hour)
	setF(&l.ServiceQuotasRPS, 5)
	setDur(&l.IncreaseRequests.Horizon, 14*24*time.Hour)
	setF(&l.IncreaseRequests.Factor, 1.5)
	p := &l.Prewarm
	setDur(&p.LeadTime, 4*time.Hour)
	setDur(&p.Window, time.Hour)
	setF(&p.MaxRamp, 1.5)
	setF(&p.RampMinCount, 1000)
	setF(&p.Headroom, 1.2)
	if p.MaxDecreasesPerDay == 0 {
		p.MaxDecreasesPerDay = 2
	}
	if p.MaxRetries == 0 {
		p.MaxRetries = 3
	}
	setDur(&p.ProvisionTimeout, 4*time.Hour)
	for i := range p.Events {
		setDur(&p.Events[i].Duration, time.Hour)
	}
}

// SetDefaults applies the defaults; for callers building a Limits in code
// (tests) rather than through Load.
func (l *Limits) SetDefaults() { l.setDefaults() }

func (l *Limits) check(c *checker, path string) {
	ratio := func(p string, v float64, zeroOK bool) {
		if (v == 0 && zeroOK) || (v > 0 && v <= 1) {
			return
		}
		c.errorf(p, "must be a fraction of the limit, 0 < x <= 1 (80%% is 0.8), got %v", v)
	}
	ratio(path+".warning", l.Warning, false)
	ratio(path+".critical", l.Critical, false)
	if l.Warning > l.Critical {
		c.errorf(path+".warning", "must not exceed critical (%v > %v)", l.Warning, l.Critical)
	}
	for name, d := range map[string]Duration{"interval": l.Interval, "forecast_horizon": l.ForecastHorizon,
		"history": l.History, "trend_window": l.TrendWindow, "peak_window": l.PeakWindow, "usage_max_age": l.UsageMaxAge} {
		if d <= 0 {
			c.errorf(path+"."+name, "must be positive, got %s", d.D())
		}
	}
	if l.MinPeaks < 2 {
		c.errorf(path+".min_peaks", "must be at least 2 (a line needs two points), got %d", l.MinPeaks)
	}
	if !(l.MinRSquared > 0 && l.MinRSquared <= 1) {
		c.errorf(path+".min_r_squared", "must be in (0, 1]: the share of the peaks' variance the trend must explain, got %v", l.MinRSquared)
	}
	if l.PeakWindow > 0 && l.TrendWindow > 0 && l.TrendWindow < l.PeakWindow*Duration(l.MinPeaks) {
		c.errorf(path+".trend_window", "must span at least min_peaks (%d) peak windows of %s, got %s", l.MinPeaks, l.PeakWindow.D(), l.TrendWindow.D())
	}
	if l.History > 0 && l.History < l.TrendWindow {
		c.errorf(path+".history", "must be at least trend_window (%s), got %s", l.TrendWindow.D(), l.History.D())
	}
	if l.Interval > 0 && l.Interval.D() < 30*time.Second {
		c.errorf(path+".interval", "must be at least 30s (quota APIs are rate limited), got %s", l.Interval.D())
	}
	if l.ServiceQuotasRPS <= 0 || math.IsInf(l.ServiceQuotasRPS, 0) || math.IsNaN(l.ServiceQuotasRPS) {
		c.errorf(path+".service_quotas_rps", "must be positive, got %v", l.ServiceQuotasRPS)
	}
	known := map[string]bool{}
	for _, s := range LimitsDescribeSources {
		known[s] = true
	}
	seen := map[string]int{}
	for i, q := range l.Quotas {
		p := fmt.Sprintf("%s.quotas[%d]", path, i)
		if q.ServiceCode == "" {
			c.errorf(p+".service_code", "is required")
		}
		if q.Code == "" {
			c.errorf(p+".code", "is required")
		}
		key := q.ServiceCode + "/" + q.Code
		if j, dup := seen[key]; dup {
			c.errorf(p+".code", "duplicates quotas[%d] (%s)", j, key)
		}
		seen[key] = i
		ratio(p+".warning", q.Warning, true)
		ratio(p+".critical", q.Critical, true)
		if q.Limit != nil && (*q.Limit < 0 || math.IsNaN(*q.Limit)) {
			c.errorf(p+".limit", "must not be negative, got %v", *q.Limit)
		}
		if q.Usage.Describe != "" && q.Usage.CloudWatch != nil {
			c.errorf(p+".usage", "set describe or cloudwatch, not both")
		}
		if q.Usage.Describe != "" && !known[q.Usage.Describe] {
			c.errorf(p+".usage.describe", "unknown describe source %q (known: %s)", q.Usage.Describe, strings.Join(LimitsDescribeSources, ", "))
		}
		if m := q.Usage.CloudWatch; m != nil && (m.Service == "" || m.Resource == "" || m.Type == "") {
			c.errorf(p+".usage.cloudwatch", "service, type and resource are required")
		}
	}
	ir := l.IncreaseRequests
	if ir.Horizon <= 0 {
		c.errorf(path+".increase_requests.horizon", "must be positive")
	}
	if ir.Headroom < 0 {
		c.errorf(path+".increase_requests.headroom", "must not be negative, got %v", ir.Headroom)
	}
	if ir.Factor <= 1 {
		c.errorf(path+".increase_requests.factor", "must be greater than 1, got %v", ir.Factor)
	}
	pw := l.Prewarm
	pp := path + ".prewarm"
	if pw.MaxRamp <= 1 {
		c.errorf(pp+".max_ramp", "must be greater than 1, got %v", pw.MaxRamp)
	}
	if pw.Headroom < 1 {
		c.errorf(pp+".headroom", "must be at least 1, got %v", pw.Headroom)
	}
	if pw.RampMinCount < 0 {
		c.errorf(pp+".ramp_min_count", "must not be negative")
	}
	if pw.MaxRetries < 0 {
		c.errorf(pp+".max_retries", "must not be negative")
	}
	if pw.MaxDecreasesPerDay < 0 {
		c.errorf(pp+".max_decreases_per_day", "must not be negative")
	}
	for name, d := range map[string]Duration{"lead_time": pw.LeadTime, "window": pw.Window, "provision_timeout": pw.ProvisionTimeout} {
		if d <= 0 {
			c.errorf(pp+"."+name, "must be positive")
		}
	}
	lbs := map[string]bool{}
	for i, lb := range pw.LoadBalancers {
		p := fmt.Sprintf("%s.load_balancers[%d]", pp, i)
		if lb.Name == "" {
			c.errorf(p+".name", "is required")
		} else if lbs[lb.Name] {
			c.errorf(p+".name", "duplicate load balancer %q", lb.Name)
		}
		lbs[lb.Name] = true
		switch lb.Type {
		case "application", "network":
			if !strings.HasPrefix(lb.ARN, "arn:") || !strings.Contains(lb.ARN, ":loadbalancer/") {
				c.errorf(p+".arn", "must be a load balancer ARN for type %s, got %q", lb.Type, lb.ARN)
			}
		case "classic":
			if lb.MaxCapacityUnits != 0 {
				c.errorf(p+".max_capacity_units", "classic load balancers have no capacity reservation")
			}
		default:
			c.errorf(p+".type", "must be application, network or classic, got %q", lb.Type)
		}
		if lb.MaxCapacityUnits < 0 {
			c.errorf(p+".max_capacity_units", "must not be negative")
		}
	}
	for i, ev := range pw.Events {
		p := fmt.Sprintf("%s.events[%d]", pp, i)
		if ev.Name == "" {
			c.errorf(p+".name", "is required")
		}
		if ev.Start.IsZero() {
			c.errorf(p+".start", "is required (RFC 3339, e.g. 2026-12-01T15:00Z)")
		}
		if ev.Multiplier <= 0 {
			c.errorf(p+".multiplier", "must be positive, got %v", ev.Multiplier)
		}
		if ev.Duration <= 0 {
			c.errorf(p+".duration", "must be positive")
		}
		for j, n := range ev.LoadBalancers {
			if !lbs[n] {
				c.errorf(fmt.Sprintf("%s.load_balancers[%d]", p, j), "unknown load balancer %q", n)
			}
		}
	}
}
