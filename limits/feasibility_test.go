package limits

import (
	"strings"
	"testing"
)

func TestGrowthNeed(t *testing.T) {
	vc := map[string]int{"m5.large": 2, "m5.xlarge": 4, "c5.4xlarge": 16, "g5.xlarge": 4, "hpc7a.96xlarge": 192}
	const std, stdSpot, g = "ec2/L-1216C47A", "ec2/L-34B43A08", "ec2/L-DB2E81BA"
	one := func(t string) []TypeOption { return []TypeOption{{Type: t, Weight: 1}} }
	for _, tc := range []struct {
		desc      string
		spec      GroupSpec
		need      map[string]float64
		instances float64
		unknown   string // a substring of the reasons; "" for none
	}{
		{"group at zero grows from 0", GroupSpec{Max: 4, Types: one("m5.large"), OnDemandPercent: 100},
			map[string]float64{std: 8}, 4, ""},
		{"at max: nothing", GroupSpec{Max: 4, Current: 4, Types: one("c5.4xlarge"), OnDemandPercent: 100}, map[string]float64{}, 0, ""},
		{"over max: nothing", GroupSpec{Max: 4, Current: 5, Types: one("c5.4xlarge"), OnDemandPercent: 100}, map[string]float64{}, 0, ""},
		{"the largest type is the worst case", GroupSpec{Max: 3, Current: 1, OnDemandPercent: 100,
			Types: []TypeOption{{"m5.large", 1}, {"c5.4xlarge", 1}}}, map[string]float64{std: 32}, 2, ""},
		{"weights: 8 units of weight-4 c5.4xlarge is 2 instances", GroupSpec{Max: 8, OnDemandPercent: 100,
			Types: []TypeOption{{"m5.large", 1}, {"c5.4xlarge", 4}}}, map[string]float64{std: 32}, 8, ""},
		{"weights round up: 5 units of weight 4 is 2 instances", GroupSpec{Max: 5, OnDemandPercent: 100,
			Types: []TypeOption{{"c5.4xlarge", 4}}}, map[string]float64{std: 32}, 2, ""},
		{"Spot split: base 2 On-Demand, then 25%", GroupSpec{Max: 10, Current: 2, OnDemandBase: 2, OnDemandPercent: 25,
			Types: one("m5.large")}, map[string]float64{std: 4, stdSpot: 12}, 6, ""},
		{"all Spot from the launch template", GroupSpec{Max: 3, AllSpot: true, Types: one("m5.xlarge")},
			map[string]float64{stdSpot: 12}, 3, ""},
		{"two families, each its own quota", GroupSpec{Max: 2, OnDemandPercent: 100, Types: []TypeOption{{"m5.large", 1}, {"g5.xlarge", 1}}},
			map[string]float64{std: 4, g: 8}, 2, ""},
		{"a type DescribeInstanceTypes did not answer for", GroupSpec{Max: 2, OnDemandPercent: 100, Types: one("m9.large")},
			map[string]float64{}, 2, "vCPUs of m9.large unknown"},
		{"HPC as Spot has no quota", GroupSpec{Max: 2, AllSpot: true, Types: one("hpc7a.96xlarge")},
			map[string]float64{}, 2, "not offered as Spot"},
		{"mac: Dedicated Hosts", GroupSpec{Max: 1, OnDemandPercent: 100, Types: one("mac2.metal")},
			map[string]float64{}, 1, "Dedicated Hosts"},
		{"no type at all", GroupSpec{Max: 1, OnDemandPercent: 100}, map[string]float64{}, 0, "no instance type found"},
		{"requirements not resolved", GroupSpec{Max: 1, OnDemandPercent: 100, Unresolved: "attribute-based instance requirements could not be resolved: x"},
			map[string]float64{}, 0, "could not be resolved"},
	} {
		need, inst, unknown := GrowthNeed(tc.spec, vc)
		if len(need) != len(tc.need) || inst != tc.instances {
			t.Errorf("%s: need %v, %v instances; want %v, %v", tc.desc, need, inst, tc.need, tc.instances)
		}
		for k, v := range tc.need {
			if need[k] != v {
				t.Errorf("%s: %s needs %v, want %v", tc.desc, k, need[k], v)
			}
		}
		got := strings.Join(unknown, "; ")
		if (tc.unknown == "") != (got == "") || !strings.Contains(got, tc.unknown) {
			t.Errorf("%s: unknown %q, want one with %q", tc.desc, got, tc.unknown)
		}
	}
}

// An unknown part of the need makes the answer unknown, with the reason;
// a short quota still makes it infeasible.
func TestFeasibleWithReasons(t *testing.T) {
	rem := map[string]Remaining{"q": {Units: 4, Known: true, Name: "vCPUs"}}
	f := Feasible(GroupNeed{Need: map[string]float64{"q": 2}, Unknown: []string{"vCPUs of m9.large unknown"}}, rem)
	if f.Known || !strings.Contains(f.Why, "vCPUs of m9.large unknown") {
		t.Errorf("unknown part: %+v", f)
	}
	f = Feasible(GroupNeed{Need: map[string]float64{"q": 5}, Unknown: []string{"x"}}, rem)
	if !f.Known || f.Feasible {
		t.Errorf("short quota with an unknown part: %+v", f)
	}
}
