package healer

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// This file decides, before a mark, whether the group could launch a
// replacement at all. Marking an instance Unhealthy when its replacement
// cannot launch turns a slow instance into a missing one: worse for the
// service. Preflight is pure: the caller gathers the figures (limits
// snapshot, EC2 subnets and images, the group's launch template and scaling
// activities) and passes them in.

// PurchaseOption is how the group buys its instances; it picks the vCPU
// quota a replacement draws on.
type PurchaseOption string

const (
	OnDemand PurchaseOption = "on-demand"
	Spot     PurchaseOption = "spot"
)

// PreflightReason says why a replacement could not launch. The values are
// the `reason` label of medic_preflight_refusals_total (or of the guard's
// refusals, if the lead folds it in).
type PreflightReason string

const (
	// PreflightVCPUQuota: no instance type the group may launch fits in the
	// vCPU quota headroom of its class.
	PreflightVCPUQuota PreflightReason = "vcpu_quota"
	// PreflightSubnetAddresses: the group's subnets have fewer free
	// addresses than the replacements need.
	PreflightSubnetAddresses PreflightReason = "subnet_addresses"
	// PreflightLaunchTemplate: the launch template version the group
	// launches from no longer exists.
	PreflightLaunchTemplate PreflightReason = "launch_template"
	// PreflightImage: the image of that launch template version no longer
	// exists.
	PreflightImage PreflightReason = "image"
	// PreflightFailedLaunches: the group's most recent launch failed.
	PreflightFailedLaunches PreflightReason = "failed_launches"
)

// PreflightReasons lists every PreflightReason.
var PreflightReasons = []PreflightReason{PreflightVCPUQuota, PreflightSubnetAddresses, PreflightLaunchTemplate, PreflightImage, PreflightFailedLaunches}

// LaunchType is one instance type the group may launch.
type LaunchType struct {
	InstanceType string
	// VCPUs is the type's default vCPU count; 0 when unknown.
	VCPUs int
	// QuotaClass is the vCPU quota class it draws on (limits.VCPUClass:
	// standard, g, p, x, f); "" when unknown.
	QuotaClass string
}

// VCPUHeadroom is one vCPU quota's free units, from the limits snapshot
// (QuotaStatus.Limit − Usage).
type VCPUHeadroom struct {
	// Name in sentences: "On-Demand Standard" (the sentence adds "vCPU quota").
	Name string
	Left float64
	// Known is false when the limit or the usage is unknown: no refusal.
	Known bool
}

// SubnetSpace is one subnet of the group and its free addresses
// (EC2 AvailableIpAddressCount).
type SubnetSpace struct {
	ID, AZ string
	Free   int
}

// TemplateCheck is what EC2 says of the group's launch template version and
// its image. Checked false means not looked up: no refusal.
type TemplateCheck struct {
	Checked               bool
	Name, Version         string
	VersionExists         bool
	ImageID               string
	ImageExists           bool
	ImageUnknownForLookup bool // the version names its image through an SSM parameter or not at all: not checked
}

// LaunchActivity is one of the group's launch scaling activities
// ("Launching a new EC2 instance…"), as DescribeScalingActivities reports
// it. Other activities (terminations, health-check replacements) should be
// left out by the caller.
type LaunchActivity struct {
	Start time.Time
	// Status is the activity's StatusCode: Successful, Failed, Cancelled,
	// InProgress, …
	Status string
	// Cause or StatusMessage, quoted in the refusal.
	Message string
}

// Launch activity status codes that Preflight reads.
const (
	activityFailed     = "Failed"
	activitySuccessful = "Successful"
)

// PreflightInput is what Preflight looks at for one group.
type PreflightInput struct {
	Group    string
	Types    []LaunchType
	Purchase PurchaseOption
	// VCPU quota headroom by QuotaClass, for the group's purchase option.
	VCPU map[string]VCPUHeadroom
	// FreedVCPUs by QuotaClass: vCPUs the marked instances give back before
	// their replacements launch. Auto Scaling terminates an unhealthy
	// instance before launching its replacement unless the group's instance
	// maintenance policy launches first; leave it empty to require the
	// headroom up front (the conservative default).
	FreedVCPUs map[string]float64
	// Subnets of the group; none means not looked up: no refusal.
	Subnets  []SubnetSpace
	Template TemplateCheck
	// Activities: the group's recent launch activities, any order.
	Activities []LaunchActivity
	// Replacements is how many instances would be marked now; at least 1.
	Replacements int
	// FailedLaunchWindow: only launch activities started this long before
	// Now count. Zero means DefaultFailedLaunchWindow.
	FailedLaunchWindow time.Duration
	Now                time.Time
}

// DefaultFailedLaunchWindow is how far back Preflight looks for failed launches.
const DefaultFailedLaunchWindow = 30 * time.Minute

// PreflightRefusal is one reason the replacement could not launch.
type PreflightRefusal struct {
	Reason PreflightReason
	// Detail is the exact sentence: "the On-Demand Standard vCPU quota has 2
	// vCPUs left; a replacement needs 4 (m5.xlarge)".
	Detail string
}

// PreflightResult is Preflight's answer for one group.
type PreflightResult struct {
	Allowed bool
	// Refusals, in the order of the checks; empty when Allowed.
	Refusals []PreflightRefusal
	// Unchecked names the checks skipped for want of data, for the status
	// page ("vCPU quota headroom unknown for On-Demand Standard").
	Unchecked []string
}

// Summary is the refusals' sentences joined, or "a replacement can launch".
func (r PreflightResult) Summary() string {
	if r.Allowed {
		return "a replacement can launch"
	}
	parts := make([]string, len(r.Refusals))
	for i, f := range r.Refusals {
		parts[i] = f.Detail
	}
	return "a replacement could not launch: " + strings.Join(parts, "; ")
}

// Preflight decides whether the group could launch Replacements new
// instances now. Every check runs and every failure is reported; it is
// allowed when none fails. Checks with missing data are skipped and listed
// in Unchecked, never refused: pre-flight stops marks that cannot be
// replaced, not marks it knows too little about. The checks:
//
//  1. vCPU quota: some type of the group fits, that is the headroom of its
//     class (plus FreedVCPUs of that class) is at least Replacements × its
//     vCPUs; exactly enough fits. Spot groups read Spot quotas — the
//     caller passes the headroom of the purchase option in use.
//  2. Subnet addresses: the group's subnets together have at least
//     Replacements free addresses.
//  3. Launch template: the version exists, and its image exists.
//  4. Failed launches: the most recent launch activity started within
//     FailedLaunchWindow did not fail (a success after failures means
//     launches work again; in-progress ones are skipped).
func Preflight(in PreflightInput) PreflightResult {
	n := max(in.Replacements, 1)
	var r PreflightResult
	if f, ok := vcpuCheck(in, n, &r.Unchecked); !ok {
		r.Refusals = append(r.Refusals, f)
	}
	if f, ok := subnetCheck(in.Subnets, n, &r.Unchecked); !ok {
		r.Refusals = append(r.Refusals, f)
	}
	r.Refusals = append(r.Refusals, templateCheck(in.Template, &r.Unchecked)...)
	if f, ok := launchCheck(in, &r.Unchecked); !ok {
		r.Refusals = append(r.Refusals, f)
	}
	r.Allowed = len(r.Refusals) == 0
	return r
}

func vcpuCheck(in PreflightInput, n int, unchecked *[]string) (PreflightRefusal, bool) {
	if len(in.Types) == 0 {
		*unchecked = append(*unchecked, "vCPU quota: the group's instance types are unknown")
		return PreflightRefusal{}, true
	}
	types := append([]LaunchType(nil), in.Types...)
	sort.SliceStable(types, func(i, j int) bool { return types[i].VCPUs < types[j].VCPUs })
	var misses []string
	for _, t := range types {
		h, ok := in.VCPU[t.QuotaClass]
		switch {
		case t.VCPUs <= 0 || t.QuotaClass == "":
			*unchecked = append(*unchecked, "vCPU quota: vCPUs or quota class of "+t.InstanceType+" unknown")
			return PreflightRefusal{}, true
		case !ok || !h.Known:
			name := h.Name
			if name == "" {
				name = t.QuotaClass
			}
			*unchecked = append(*unchecked, "vCPU quota: headroom of the "+name+" vCPU quota unknown")
			return PreflightRefusal{}, true
		}
		need := float64(n * t.VCPUs)
		left := h.Left + in.FreedVCPUs[t.QuotaClass]
		if left >= need {
			return PreflightRefusal{}, true
		}
		what := replacementsNeed(n)
		misses = append(misses, fmt.Sprintf("the %s vCPU quota has %s left; %s %s (%s)",
			h.Name, plural(int(max(left, 0)), "vCPU"), what, plural(int(need), "vCPU"), t.InstanceType))
	}
	return PreflightRefusal{Reason: PreflightVCPUQuota, Detail: strings.Join(misses, ", and ")}, false
}

func subnetCheck(subnets []SubnetSpace, n int, unchecked *[]string) (PreflightRefusal, bool) {
	if len(subnets) == 0 {
		*unchecked = append(*unchecked, "subnet addresses: the group's subnets were not read")
		return PreflightRefusal{}, true
	}
	free := 0
	parts := make([]string, 0, len(subnets))
	for _, s := range subnets {
		free += max(s.Free, 0)
		parts = append(parts, fmt.Sprintf("%s in %s: %d", s.ID, s.AZ, s.Free))
	}
	if free >= n {
		return PreflightRefusal{}, true
	}
	return PreflightRefusal{Reason: PreflightSubnetAddresses, Detail: fmt.Sprintf("the group's subnets have %s (%s); %s %s",
		addresses(free, "free "), strings.Join(parts, ", "), replacementsNeed(n), addresses(n, ""))}, false
}

// addresses says "1 free address" or "3 free addresses".
func addresses(n int, adj string) string {
	if n == 1 {
		return "1 " + adj + "address"
	}
	return fmt.Sprintf("%d %saddresses", n, adj)
}

func replacementsNeed(n int) string {
	if n == 1 {
		return "a replacement needs"
	}
	return fmt.Sprintf("%d replacements need", n)
}

func templateCheck(t TemplateCheck, unchecked *[]string) []PreflightRefusal {
	if !t.Checked {
		*unchecked = append(*unchecked, "launch template: not looked up")
		return nil
	}
	lt := fmt.Sprintf("launch template %s version %s", t.Name, t.Version)
	if !t.VersionExists {
		return []PreflightRefusal{{Reason: PreflightLaunchTemplate, Detail: lt + " no longer exists"}}
	}
	if t.ImageUnknownForLookup || t.ImageID == "" {
		*unchecked = append(*unchecked, "image: "+lt+" names no image medic can look up")
		return nil
	}
	if !t.ImageExists {
		return []PreflightRefusal{{Reason: PreflightImage, Detail: fmt.Sprintf("image %s of %s no longer exists (deregistered or not shared)", t.ImageID, lt)}}
	}
	return nil
}

func launchCheck(in PreflightInput, unchecked *[]string) (PreflightRefusal, bool) {
	window := in.FailedLaunchWindow
	if window <= 0 {
		window = DefaultFailedLaunchWindow
	}
	from := in.Now.Add(-window)
	var recent []LaunchActivity
	for _, a := range in.Activities {
		if !a.Start.Before(from) && (a.Status == activityFailed || a.Status == activitySuccessful) {
			recent = append(recent, a)
		}
	}
	if len(recent) == 0 {
		*unchecked = append(*unchecked, fmt.Sprintf("failed launches: no finished launch in the last %s", window))
		return PreflightRefusal{}, true
	}
	sort.SliceStable(recent, func(i, j int) bool { return recent[i].Start.After(recent[j].Start) })
	last := recent[0]
	if last.Status != activityFailed {
		return PreflightRefusal{}, true
	}
	failed := 0
	for _, a := range recent {
		if a.Status == activityFailed {
			failed++
		}
	}
	msg := ""
	if last.Message != "" {
		msg = ": " + last.Message
	}
	return PreflightRefusal{Reason: PreflightFailedLaunches, Detail: fmt.Sprintf("the group's last launch, at %s, failed%s (%d of its %d finished launches in the last %s failed)",
		clock(last.Start), msg, failed, len(recent), window)}, false
}

// VCPUQuotaNames are the short names Preflight's sentences use for the
// On-Demand vCPU quota classes (limits.VCPUClass), for callers building
// PreflightInput.VCPU from the limits snapshot.
var VCPUQuotaNames = map[string]string{
	"standard": "On-Demand Standard", "g": "On-Demand G and VT", "p": "On-Demand P",
	"x": "On-Demand X", "f": "On-Demand F",
}
