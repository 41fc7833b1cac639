package limits

import (
	"fmt"
	"strings"
)

// vCPU quota families. Every EC2 instance type draws its On-Demand vCPUs
// from exactly one "Running On-Demand … instances" quota and its Spot vCPUs
// from one "All … Spot Instance Requests" quota, chosen by the family
// prefix of its name (docs/limits.md lists the table with its sources).

// VCPUFamily is one vCPU quota family.
type VCPUFamily struct {
	Name string
	// Prefixes are the instance-family prefixes it covers ("dl", "u-").
	Prefixes []string
	// OnDemand and Spot are the ec2 quota codes ("" when AWS offers no
	// such market for the family: Spot has no HPC or High Memory quota).
	OnDemand, Spot string
	// OnDemandName and SpotName are the quotas' names in Service Quotas.
	OnDemandName, SpotName string
	// Usage classes of the AWS/Usage metric (Resource vCPU), where known.
	OnDemandClass, SpotClass string
}

// VCPUFamilies is the family table. Longer prefixes are matched first
// (dl before d, inf before i, trn before t, hpc before h, p5 before p).
var VCPUFamilies = []VCPUFamily{
	{Name: "standard", Prefixes: []string{"a", "c", "d", "h", "i", "m", "r", "t", "z"},
		OnDemand: "L-1216C47A", OnDemandName: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
		Spot: "L-34B43A08", SpotName: "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests",
		OnDemandClass: "Standard/OnDemand", SpotClass: "Standard/Spot"},
	{Name: "g", Prefixes: []string{"g", "vt"},
		OnDemand: "L-DB2E81BA", OnDemandName: "Running On-Demand G and VT instances",
		Spot: "L-3819A6DF", SpotName: "All G and VT Spot Instance Requests"},
	{Name: "p", Prefixes: []string{"p"},
		OnDemand: "L-417A185B", OnDemandName: "Running On-Demand P instances",
		Spot: "L-7212CCBC", SpotName: "All P4, P3 and P2 Spot Instance Requests"},
	// P5 shares the On-Demand P quota but has its own Spot quota.
	{Name: "p5", Prefixes: []string{"p5"},
		OnDemand: "L-417A185B", OnDemandName: "Running On-Demand P instances",
		Spot: "L-C4BD4855", SpotName: "All P5 Spot Instance Requests"},
	{Name: "x", Prefixes: []string{"x"},
		OnDemand: "L-7295265B", OnDemandName: "Running On-Demand X instances",
		Spot: "L-E3A00192", SpotName: "All X Spot Instance Requests"},
	{Name: "f", Prefixes: []string{"f"},
		OnDemand: "L-74FC7D96", OnDemandName: "Running On-Demand F instances",
		Spot: "L-88CF9481", SpotName: "All F Spot Instance Requests"},
	{Name: "inf", Prefixes: []string{"inf"},
		OnDemand: "L-1945791B", OnDemandName: "Running On-Demand Inf instances",
		Spot: "L-B5D1601B", SpotName: "All Inf Spot Instance Requests"},
	{Name: "trn", Prefixes: []string{"trn"},
		OnDemand: "L-2C3B7624", OnDemandName: "Running On-Demand Trn instances",
		Spot: "L-6B0D517C", SpotName: "All Trn Spot Instance Requests"},
	{Name: "dl", Prefixes: []string{"dl"},
		OnDemand: "L-6E869C2A", OnDemandName: "Running On-Demand DL instances",
		Spot: "L-85EED4F7", SpotName: "All DL Spot Instance Requests"},
	{Name: "hpc", Prefixes: []string{"hpc"},
		OnDemand: "L-F7808C92", OnDemandName: "Running On-Demand HPC instances"},
	{Name: "high_memory", Prefixes: []string{"u"},
		OnDemand: "L-43DA4232", OnDemandName: "Running On-Demand High Memory instances"},
}

// Market is On-Demand or Spot.
type Market string

const (
	OnDemand Market = "on_demand"
	Spot     Market = "spot"
)

// instanceFamily is the leading letters of an instance type's name:
// "dl" of dl1.24xlarge, "u" of u-6tb1.metal and u7i-12tb.224xlarge,
// "p" of p6-b200.48xlarge; "p5" for P5 types (their own Spot quota).
func instanceFamily(instanceType string) string {
	name, _, _ := strings.Cut(strings.ToLower(instanceType), ".")
	i := 0
	for i < len(name) && name[i] >= 'a' && name[i] <= 'z' {
		i++
	}
	fam := name[:i]
	if fam == "p" && strings.HasPrefix(name, "p5") {
		return "p5"
	}
	return fam
}

// FamilyOf maps an instance type to its vCPU quota family. The whole
// leading run of letters is matched, longest prefix first, so dl1 is DL
// (not D, Standard) and inf2 is Inf (not I). ok is false, with the reason,
// for a family with no vCPU quota (mac: Dedicated Hosts only) or an
// unknown one.
func FamilyOf(instanceType string) (VCPUFamily, string, bool) {
	fam := instanceFamily(instanceType)
	if fam == "" {
		return VCPUFamily{}, fmt.Sprintf("instance type %q has no family prefix", instanceType), false
	}
	if fam == "mac" {
		return VCPUFamily{}, fmt.Sprintf("%s runs on Dedicated Hosts only: it draws on per-host quotas, not a vCPU quota", instanceType), false
	}
	// Exact multi-letter families first, then the single-letter table.
	for _, f := range VCPUFamilies {
		for _, p := range f.Prefixes {
			if len(p) > 1 && fam == p {
				return f, "", true
			}
		}
	}
	if len(fam) > 1 {
		// Multi-letter names of single-letter families: c7gn, im4gn,
		// is4gen, x2iedn, gr6, r8gd… share the first letter's quota.
		fam = fam[:1]
	}
	for _, f := range VCPUFamilies {
		for _, p := range f.Prefixes {
			if p == fam {
				return f, "", true
			}
		}
	}
	return VCPUFamily{}, fmt.Sprintf("instance family %q of %s is not in medic's family table", instanceFamily(instanceType), instanceType), false
}

// QuotaFor is the vCPU quota key (ec2/<code>) an instance type draws on in
// a market, or "" with the reason.
func QuotaFor(instanceType string, m Market) (string, string) {
	f, why, ok := FamilyOf(instanceType)
	if !ok {
		return "", why
	}
	code := f.OnDemand
	if m == Spot {
		code = f.Spot
	}
	if code == "" {
		return "", fmt.Sprintf("%s (%s family) is not offered as Spot: no Spot quota", instanceType, f.Name)
	}
	return "ec2/" + code, ""
}
