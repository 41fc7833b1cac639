package limits

import (
	"fmt"
	"math"
	"sort"
)

// This file decides what growing a group to its MaxSize draws on each
// vCPU quota: pure, from the group's launch spec and the vCPUs of its
// instance types, table-tested in feasibility_test.go.

// TypeOption is one instance type a group may launch, with its weight (the
// capacity units one instance counts for; 1 without weights).
type TypeOption struct {
	Type   string
	Weight float64
}

// GroupSpec is what feasibility needs of one Auto Scaling group, in
// capacity units (instances, unless the group uses weights).
type GroupSpec struct {
	Name    string
	Max     float64
	Current float64
	Types   []TypeOption
	// Unresolved says why some types could not be listed ("" when all
	// were): attribute-based requirements the API did not resolve, a
	// launch template that could not be read.
	Unresolved string
	// Spot split, from the mixed-instances distribution: the first
	// OnDemandBase units are On-Demand, then OnDemandPercent of the rest.
	// A group without a distribution is 100% On-Demand, or 100% Spot when
	// its launch template asks for Spot (AllSpot).
	OnDemandBase    float64
	OnDemandPercent float64
	AllSpot         bool
	// Subnets are the group's subnets (free addresses are a quota too).
	Subnets []string
}

// marketSplit is the capacity units of c that are On-Demand and Spot.
func (s GroupSpec) marketSplit(c float64) (od, spot float64) {
	if s.AllSpot {
		return 0, c
	}
	base := math.Min(c, s.OnDemandBase)
	od = base + math.Max(c-s.OnDemandBase, 0)*s.OnDemandPercent/100
	return od, c - od
}

// GrowthNeed decides, for growing s from Current to Max, the vCPUs each
// quota needs (quota key → vCPUs) and the instances launched at most. The
// worst case is taken per quota: all of a market's growth on the type of
// that quota with the most vCPUs per launch (ceil(units/weight) × vCPUs).
// unknown lists why some need could not be counted: a type without vCPUs
// from DescribeInstanceTypes, a family without a quota for the market,
// types not resolved. A group at zero grows from 0; one at or over its
// max needs nothing.
func GrowthNeed(s GroupSpec, vcpus map[string]int) (need map[string]float64, instances float64, unknown []string) {
	need = map[string]float64{}
	odMax, spotMax := s.marketSplit(s.Max)
	odNow, spotNow := s.marketSplit(s.Current)
	grow := map[Market]float64{OnDemand: math.Max(odMax-odNow, 0), Spot: math.Max(spotMax-spotNow, 0)}
	if grow[OnDemand]+grow[Spot] <= 0 {
		return need, 0, nil
	}
	if s.Unresolved != "" {
		unknown = append(unknown, s.Unresolved)
	}
	if len(s.Types) == 0 && s.Unresolved == "" {
		unknown = append(unknown, "no instance type found in the group's launch template, configuration or overrides")
	}
	for _, m := range []Market{OnDemand, Spot} {
		u := grow[m]
		if u <= 0 {
			continue
		}
		for _, t := range s.Types {
			w := t.Weight
			if w <= 0 {
				w = 1
			}
			n := math.Ceil(u/w - 1e-9)
			instances = math.Max(instances, n)
			key, why := QuotaFor(t.Type, m)
			if key == "" {
				unknown = append(unknown, why)
				continue
			}
			v, ok := vcpus[t.Type]
			if !ok {
				unknown = append(unknown, fmt.Sprintf("vCPUs of %s unknown (DescribeInstanceTypes did not answer for it)", t.Type))
				continue
			}
			need[key] = math.Max(need[key], n*float64(v))
		}
	}
	sort.Strings(unknown)
	return need, instances, dedupe(unknown)
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
