package healer

import (
	"reflect"
	"testing"
	"time"
)

// pfBase is a group that can launch: one m5.xlarge (4 vCPUs), 10 vCPUs
// left, free addresses, its template and image there, its last launch fine.
func pfBase() PreflightInput {
	return PreflightInput{
		Group:    "web-asg",
		Types:    []LaunchType{{InstanceType: "m5.xlarge", VCPUs: 4, QuotaClass: "standard"}},
		Purchase: OnDemand,
		VCPU:     map[string]VCPUHeadroom{"standard": {Name: "On-Demand Standard", Left: 10, Known: true}},
		Subnets:  []SubnetSpace{{ID: "subnet-a", AZ: "us-east-1a", Free: 20}, {ID: "subnet-b", AZ: "us-east-1b", Free: 3}},
		Template: TemplateCheck{Checked: true, Name: "web-lt", Version: "7", VersionExists: true, ImageID: "ami-0abc", ImageExists: true},
		Activities: []LaunchActivity{
			{Start: latNow.Add(-20 * time.Minute), Status: "Failed", Message: "InsufficientInstanceCapacity"},
			{Start: latNow.Add(-10 * time.Minute), Status: "Successful"},
		},
		Now: latNow,
	}
}

func TestPreflight(t *testing.T) {
	tests := []struct {
		desc      string
		edit      func(*PreflightInput)
		refusals  []PreflightRefusal
		unchecked int
	}{
		{desc: "everything fine", edit: func(*PreflightInput) {}},
		{desc: "the issue's sentence: 2 vCPUs left, a replacement needs 4",
			edit: func(in *PreflightInput) {
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 2, Known: true}
			},
			refusals: []PreflightRefusal{{PreflightVCPUQuota, "the On-Demand Standard vCPU quota has 2 vCPUs left; a replacement needs 4 vCPUs (m5.xlarge)"}}},
		{desc: "exactly enough vCPUs left: allowed",
			edit: func(in *PreflightInput) {
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 4, Known: true}
			}},
		{desc: "two replacements need twice the vCPUs",
			edit: func(in *PreflightInput) {
				in.Replacements = 2
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 7, Known: true}
			},
			refusals: []PreflightRefusal{{PreflightVCPUQuota, "the On-Demand Standard vCPU quota has 7 vCPUs left; 2 replacements need 8 vCPUs (m5.xlarge)"}}},
		{desc: "over the quota: negative headroom reads as 0 left",
			edit: func(in *PreflightInput) {
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: -3, Known: true}
			},
			refusals: []PreflightRefusal{{PreflightVCPUQuota, "the On-Demand Standard vCPU quota has 0 vCPUs left; a replacement needs 4 vCPUs (m5.xlarge)"}}},
		{desc: "terminate-first: the marked instance's vCPUs count",
			edit: func(in *PreflightInput) {
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 0, Known: true}
				in.FreedVCPUs = map[string]float64{"standard": 4}
			}},
		{desc: "mixed types: the smaller one fits, allowed",
			edit: func(in *PreflightInput) {
				in.Types = append(in.Types, LaunchType{InstanceType: "m5.large", VCPUs: 2, QuotaClass: "standard"})
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 2, Known: true}
			}},
		{desc: "mixed classes: neither fits, both named",
			edit: func(in *PreflightInput) {
				in.Types = append(in.Types, LaunchType{InstanceType: "g5.xlarge", VCPUs: 4, QuotaClass: "g"})
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 1, Known: true}
				in.VCPU["g"] = VCPUHeadroom{Name: "On-Demand G and VT", Left: 0, Known: true}
			},
			refusals: []PreflightRefusal{{PreflightVCPUQuota, "the On-Demand Standard vCPU quota has 1 vCPU left; a replacement needs 4 vCPUs (m5.xlarge), and the On-Demand G and VT vCPU quota has 0 vCPUs left; a replacement needs 4 vCPUs (g5.xlarge)"}}},
		{desc: "quota headroom unknown: not refused, listed unchecked",
			edit:      func(in *PreflightInput) { in.VCPU = nil },
			unchecked: 1},
		{desc: "instance type vCPUs unknown: not refused",
			edit:      func(in *PreflightInput) { in.Types[0].VCPUs = 0 },
			unchecked: 1},
		{desc: "no free address left in any subnet",
			edit:     func(in *PreflightInput) { in.Subnets[0].Free, in.Subnets[1].Free = 0, 0 },
			refusals: []PreflightRefusal{{PreflightSubnetAddresses, "the group's subnets have 0 free addresses (subnet-a in us-east-1a: 0, subnet-b in us-east-1b: 0); a replacement needs 1 address"}}},
		{desc: "exactly one free address for one replacement: allowed",
			edit: func(in *PreflightInput) { in.Subnets[0].Free, in.Subnets[1].Free = 0, 1 }},
		{desc: "one free address for two replacements",
			edit:     func(in *PreflightInput) { in.Replacements = 2; in.Subnets = in.Subnets[1:]; in.Subnets[0].Free = 1 },
			refusals: []PreflightRefusal{{PreflightSubnetAddresses, "the group's subnets have 1 free address (subnet-b in us-east-1b: 1); 2 replacements need 2 addresses"}}},
		{desc: "subnets not read: not refused", edit: func(in *PreflightInput) { in.Subnets = nil }, unchecked: 1},
		{desc: "launch template version gone",
			edit:     func(in *PreflightInput) { in.Template.VersionExists = false },
			refusals: []PreflightRefusal{{PreflightLaunchTemplate, "launch template web-lt version 7 no longer exists"}}},
		{desc: "image gone",
			edit:     func(in *PreflightInput) { in.Template.ImageExists = false },
			refusals: []PreflightRefusal{{PreflightImage, "image ami-0abc of launch template web-lt version 7 no longer exists (deregistered or not shared)"}}},
		{desc: "image through an SSM parameter: unchecked",
			edit:      func(in *PreflightInput) { in.Template.ImageUnknownForLookup = true; in.Template.ImageExists = false },
			unchecked: 1},
		{desc: "template not looked up: unchecked", edit: func(in *PreflightInput) { in.Template = TemplateCheck{} }, unchecked: 1},
		{desc: "last launch failed",
			edit: func(in *PreflightInput) {
				in.Activities = append(in.Activities, LaunchActivity{Start: latNow.Add(-time.Minute), Status: "Failed", Message: "VcpuLimitExceeded"},
					LaunchActivity{Start: latNow.Add(-30 * time.Second), Status: "InProgress"})
			},
			refusals: []PreflightRefusal{{PreflightFailedLaunches, "the group's last launch, at 11:59:00Z, failed: VcpuLimitExceeded (2 of its 3 finished launches in the last 30m0s failed)"}}},
		{desc: "a failure older than the window does not count",
			edit: func(in *PreflightInput) {
				in.Activities = []LaunchActivity{{Start: latNow.Add(-31 * time.Minute), Status: "Failed"}}
			},
			unchecked: 1},
		{desc: "a failure exactly at the window's start counts",
			edit: func(in *PreflightInput) {
				in.Activities = []LaunchActivity{{Start: latNow.Add(-30 * time.Minute), Status: "Failed"}}
			},
			refusals: []PreflightRefusal{{PreflightFailedLaunches, "the group's last launch, at 11:30:00Z, failed (1 of its 1 finished launches in the last 30m0s failed)"}}},
		{desc: "everything wrong: every refusal, in check order",
			edit: func(in *PreflightInput) {
				in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 0, Known: true}
				in.Subnets = []SubnetSpace{{ID: "subnet-a", AZ: "us-east-1a"}}
				in.Template.VersionExists = false
				in.Activities = []LaunchActivity{{Start: latNow.Add(-time.Minute), Status: "Failed"}}
			},
			refusals: []PreflightRefusal{
				{PreflightVCPUQuota, "the On-Demand Standard vCPU quota has 0 vCPUs left; a replacement needs 4 vCPUs (m5.xlarge)"},
				{PreflightSubnetAddresses, "the group's subnets have 0 free addresses (subnet-a in us-east-1a: 0); a replacement needs 1 address"},
				{PreflightLaunchTemplate, "launch template web-lt version 7 no longer exists"},
				{PreflightFailedLaunches, "the group's last launch, at 11:59:00Z, failed (1 of its 1 finished launches in the last 30m0s failed)"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			in := pfBase()
			tt.edit(&in)
			got := Preflight(in)
			if !reflect.DeepEqual(got.Refusals, tt.refusals) {
				t.Errorf("refusals:\n got %q\nwant %q", got.Refusals, tt.refusals)
			}
			if got.Allowed != (len(tt.refusals) == 0) {
				t.Errorf("Allowed %t with %d refusals", got.Allowed, len(tt.refusals))
			}
			if len(got.Unchecked) != tt.unchecked {
				t.Errorf("unchecked %q, want %d", got.Unchecked, tt.unchecked)
			}
		})
	}
}

func TestPreflightSummary(t *testing.T) {
	in := pfBase()
	in.VCPU["standard"] = VCPUHeadroom{Name: "On-Demand Standard", Left: 2, Known: true}
	want := "a replacement could not launch: the On-Demand Standard vCPU quota has 2 vCPUs left; a replacement needs 4 vCPUs (m5.xlarge)"
	if got := Preflight(in).Summary(); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := Preflight(pfBase()).Summary(); got != "a replacement can launch" {
		t.Errorf("allowed summary %q", got)
	}
}
