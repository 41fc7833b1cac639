package limits

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// This file holds the arithmetic: pure functions of figures and a clock
// passed in, table-tested in arith_test.go. Nothing here does I/O.

// State is how close a quota is to its limit.
type State int

const (
	StateUnknown  State = -1 // limit or usage unknown
	StateOK       State = 0
	StateWarning  State = 1
	StateCritical State = 2
	// StateNotInUse is a limit of 0 with nothing used: a fact, not an
	// emergency (exported as ok).
	StateNotInUse State = 3
)

func (s State) String() string {
	switch s {
	case StateOK:
		return "ok"
	case StateWarning:
		return "warning"
	case StateCritical:
		return "critical"
	case StateNotInUse:
		return "not_in_use"
	}
	return "unknown"
}

// Point is one usage figure at one time.
type Point struct {
	T time.Time
	V float64
}

// ThresholdState decides the state of usage against limit: critical when the
// used fraction is at or above critical, warning at or above warning. A
// limit of 0 with usage 0 is not in use (nothing can be created, nothing
// is); with usage > 0 it is critical (over the limit). Unknown figures give
// StateUnknown.
func ThresholdState(usage, limit float64, known bool, warning, critical float64) State {
	if !known || math.IsNaN(usage) || math.IsNaN(limit) || limit < 0 {
		return StateUnknown
	}
	if limit == 0 {
		if usage > 0 {
			return StateCritical
		}
		return StateNotInUse
	}
	r := usage / limit
	switch {
	case r >= critical:
		return StateCritical
	case r >= warning:
		return StateWarning
	}
	return StateOK
}

// HeadroomRatio is the unused fraction of the limit, (limit-usage)/limit,
// negative when over the limit. ok is false when limit is 0.
func HeadroomRatio(usage, limit float64) (float64, bool) {
	if limit <= 0 {
		return 0, false
	}
	return (limit - usage) / limit, true
}

func secs(s float64) time.Duration {
	if s > float64(math.MaxInt64)/1e9 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

func round(v float64) float64 { return math.Round(v*100) / 100 }

// Feasibility is whether a group can grow to its MaxSize within quotas.
type Feasibility struct {
	Known    bool
	Feasible bool
	Why      string
}

// GroupNeed is what growing one group to MaxSize draws on each quota:
// quota key (service/code, or a per-LB key) to the extra units needed.
type GroupNeed struct {
	Group string
	Need  map[string]float64
	// Unknown says why part of the need could not be counted.
	Unknown []string
}

// Remaining is the free units of a quota: limit - usage.
type Remaining struct {
	Units float64
	Known bool
	Name  string
}

// Feasible decides whether a group can reach its MaxSize: every quota it
// draws on must have at least the needed units free. A quota needed but
// unknown makes the answer unknown, unless another quota already makes it
// infeasible. Needing exactly the remaining units is feasible.
func Feasible(n GroupNeed, rem map[string]Remaining) Feasibility {
	keys := make([]string, 0, len(n.Need))
	for k := range n.Need {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var unknown []string
	for _, k := range keys {
		need := n.Need[k]
		if need <= 0 {
			continue
		}
		r, ok := rem[k]
		if !ok || !r.Known {
			unknown = append(unknown, k)
			continue
		}
		if need > r.Units {
			name := r.Name
			if name == "" {
				name = k
			}
			return Feasibility{Known: true, Feasible: false,
				Why: fmt.Sprintf("growing to max size needs %g more of %q, %g remain", need, name, math.Max(r.Units, 0))}
		}
	}
	var why []string
	if len(unknown) > 0 {
		why = append(why, fmt.Sprintf("headroom unknown for %s", strings.Join(unknown, ", ")))
	}
	why = append(why, n.Unknown...)
	if len(why) > 0 {
		return Feasibility{Why: "unknown: " + strings.Join(why, "; ")}
	}
	return Feasibility{Known: true, Feasible: true, Why: "every quota it draws on has room"}
}

// --- pre-warm ---

// Bucket is a load-balancer figure summed over one period.
type Bucket struct {
	T time.Time
	V float64
}

// Ramp is the outcome of ramp detection.
type Ramp struct {
	Detected bool
	// Ratio is the largest growth between consecutive 5-minute buckets.
	Ratio float64
	Why   string
}

// DetectRamp decides whether traffic grew faster than the load balancer
// scales: any 5-minute bucket more than maxRatio times the one before,
// where the later bucket is at least minCount (low traffic is noise) and
// the earlier one is positive. Buckets must be 5 minutes apart to compare;
// a missing bucket breaks the chain (a gap is not zero).
func DetectRamp(b []Bucket, maxRatio, minCount float64) Ramp {
	s := append([]Bucket(nil), b...)
	sort.Slice(s, func(i, j int) bool { return s[i].T.Before(s[j].T) })
	out := Ramp{}
	for i := 1; i < len(s); i++ {
		prev, cur := s[i-1], s[i]
		if cur.T.Sub(prev.T) != 5*time.Minute || prev.V <= 0 {
			continue
		}
		r := cur.V / prev.V
		if r > out.Ratio {
			out.Ratio = r
		}
		if r > maxRatio && cur.V >= minCount && !out.Detected {
			out.Detected = true
			out.Why = fmt.Sprintf("%g → %g in 5 minutes at %s (×%.2f, more than ×%g)", prev.V, cur.V, cur.T.UTC().Format(time.RFC3339), r, maxRatio)
		}
	}
	return out
}

// LCUDims are the rates an LCU is measured in.
type LCUDims struct {
	NewConnPerSec   float64 // ALB new connections per second
	ActiveConn      float64 // ALB concurrent connections per minute
	BytesPerHour    float64 // ALB processed bytes per hour
	RuleEvalsPerSec float64 // ALB billed rule evaluations per second (beyond the 10 free per request)
	PeakLCU         float64 // ALB/NLB PeakLCUs: AWS's own figure, its recommended sizing input
	Mbps            float64 // NLB peak throughput, megabits per second (from the busiest minute)
}

// Scale multiplies every rate by f.
func (d LCUDims) Scale(f float64) LCUDims {
	return LCUDims{NewConnPerSec: d.NewConnPerSec * f, ActiveConn: d.ActiveConn * f, BytesPerHour: d.BytesPerHour * f,
		RuleEvalsPerSec: d.RuleEvalsPerSec * f, PeakLCU: d.PeakLCU * f, Mbps: d.Mbps * f}
}

// Per-LCU capacities. ALB: the LCU dimensions of AWS's pricing page. NLB:
// AWS reserves throughput only, 1 LCU = 2.2 Mbps (the NLB LCU reservation
// page).
const (
	albNewConnPerLCU   = 25
	albActiveConnPerLU = 3000
	albBytesPerLCU     = 1e9 // 1 GB per hour (EC2 targets)
	albRuleEvalsPerLCU = 1000
	albFreeRuleEvals   = 10 // rule evaluations per request that are free
	nlbMbpsPerLCU      = 2.2
)

// LCUSizing is a sized capacity reservation with its arithmetic.
type LCUSizing struct {
	LCU   float64 // the forecast need, before headroom
	Units int     // ceil(LCU × headroom), capped at the ceiling
	// Capped is true when the ceiling lowered Units.
	Capped bool
	Steps  []string // the arithmetic, one line per step
}

// SizeLCU computes the LCUs to reserve for dims, times headroom, rounded
// up and capped at ceiling (0 means no ceiling):
//   - network: throughput only, Mbps ÷ 2.2 (what AWS reserves for NLBs);
//   - application: PeakLCUs when CloudWatch has it (AWS's recommended
//     input), else the largest LCU dimension. The dimensions are shown
//     either way; CloudWatch's connection counts include the
//     load-balancer-to-target side, so they over-state the client side
//     the LCU bills, and they decide only without PeakLCUs.
func SizeLCU(lbType string, d LCUDims, headroom float64, ceiling int) LCUSizing {
	out := LCUSizing{}
	if lbType == "network" {
		out.LCU = d.Mbps / nlbMbpsPerLCU
		out.Steps = append(out.Steps, fmt.Sprintf("throughput: %.4g Mbps / %g Mbps per LCU = %.2f LCU (NLB reservations are throughput only)", d.Mbps, nlbMbpsPerLCU, out.LCU))
	} else {
		dims := []struct {
			name   string
			v, per float64
		}{
			{"new connections/s (both sides)", d.NewConnPerSec, albNewConnPerLCU},
			{"active connections/min (both sides)", d.ActiveConn, albActiveConnPerLU},
			{"processed bytes/h", d.BytesPerHour, albBytesPerLCU},
			{"rule evaluations/s beyond 10 per request", d.RuleEvalsPerSec, albRuleEvalsPerLCU},
		}
		var most float64
		for _, x := range dims {
			l := x.v / x.per
			out.Steps = append(out.Steps, fmt.Sprintf("%s: %.4g / %g = %.2f LCU", x.name, x.v, x.per, l))
			most = math.Max(most, l)
		}
		if d.PeakLCU > 0 {
			out.LCU = d.PeakLCU
			out.Steps = append(out.Steps, fmt.Sprintf("PeakLCUs: %.4g LCU decides (AWS's figure; the dimensions above are a cross-check, %.2f LCU)", d.PeakLCU, most))
		} else {
			out.LCU = most
			out.Steps = append(out.Steps, fmt.Sprintf("no PeakLCUs: the largest dimension decides, %.2f LCU", most))
		}
	}
	u := math.Ceil(out.LCU*headroom - 1e-9)
	out.Steps = append(out.Steps, fmt.Sprintf("%.2f LCU × headroom %g = %.2f → %g", out.LCU, headroom, out.LCU*headroom, u))
	if ceiling > 0 && u > float64(ceiling) {
		out.Steps = append(out.Steps, fmt.Sprintf("capped at the ceiling %d", ceiling))
		u = float64(ceiling)
		out.Capped = true
	}
	out.Units = int(u)
	return out
}

// EventPhase says where now lies relative to a scheduled event.
type EventPhase int

const (
	PhaseBefore EventPhase = iota // more than the lead time ahead
	PhaseLead                     // within the lead time before start
	PhaseDuring                   // between start and end
	PhaseAfter                    // over
)

// PhaseOf decides the phase of an event [start, start+dur) at now given the
// lead time. Exactly at start-lead is the lead phase; exactly at the end is
// after.
func PhaseOf(start time.Time, dur, lead time.Duration, now time.Time) EventPhase {
	switch {
	case now.Before(start.Add(-lead)):
		return PhaseBefore
	case now.Before(start):
		return PhaseLead
	case now.Before(start.Add(dur)):
		return PhaseDuring
	}
	return PhaseAfter
}

// ReservationStep is what to do with a capacity reservation.
type ReservationStep struct {
	Op    string // "none", "increase", "decrease", "reset"
	Units int
	Why   string
	// NeedsPerson is set when medic cannot make the reservation happen:
	// it failed more often than the retries allow, or stayed pending past
	// the provisioning timeout.
	NeedsPerson bool
}

// ReservationNow is the reservation as DescribeCapacityReservation and
// medic's memory of it say.
type ReservationNow struct {
	Units int
	// State is the worst zonal state: provisioned, pending, rebalancing,
	// failed, or none.
	State, Reason string
	// PendingFor is how long it has been pending or rebalancing (0 if not).
	PendingFor time.Duration
	// Failures is how many times in a row medic's request failed.
	Failures int
	MedicSet bool
}

// ReservationRules are AWS's and the config's bounds on changes.
type ReservationRules struct {
	DecreasesLeft    int
	MaxRetries       int
	ProvisionTimeout time.Duration
	// RegionQuota is AWS's quota on reserved LCUs per Region (default
	// 0: every account must ask for it), when Service Quotas says it.
	RegionQuota      int
	RegionQuotaKnown bool
	RegionQuotaName  string
}

// overRegionQuota says why want cannot be requested: more than the
// Region's reserved-LCU quota allows (the request would fail).
func (rules ReservationRules) overRegionQuota(want int) (string, bool) {
	if !rules.RegionQuotaKnown || want <= rules.RegionQuota {
		return "", false
	}
	return fmt.Sprintf("%d LCU wanted, but AWS's quota %q is %d: not requested (it would fail); request a quota increase first",
		want, rules.RegionQuotaName, rules.RegionQuota), true
}

// PlanReservation decides the next reservation change from the units
// wanted now (0: none wanted) and the reservation now, in this order:
//  1. pending or rebalancing: wait (AWS takes a change only once the
//     previous one is provisioned or failed); past the provisioning
//     timeout a person is needed;
//  2. failed while units are wanted: request again, up to MaxRetries
//     failures in a row; then a person is needed;
//  3. more wanted than reserved: increase (AWS allows any number), unless
//     it is more than the Region's reserved-LCU quota (known from Service
//     Quotas): then a person is needed to raise the quota first;
//  4. less wanted: only a reservation medic made is lowered or reset, and
//     only while a decrease is left today.
func PlanReservation(want int, r ReservationNow, rules ReservationRules) ReservationStep {
	cur := r.Units
	switch r.State {
	case "pending", "rebalancing":
		if r.PendingFor > rules.ProvisionTimeout {
			return ReservationStep{Op: "none", Units: cur, NeedsPerson: true,
				Why: fmt.Sprintf("reservation of %d LCU %s for %s, longer than the provisioning timeout %s", cur, r.State, r.PendingFor.Round(time.Minute), rules.ProvisionTimeout)}
		}
		return ReservationStep{Op: "none", Units: cur, Why: fmt.Sprintf("reservation of %d LCU %s: waiting (AWS accepts a change once it is provisioned or failed)", cur, r.State)}
	case "failed":
		if want == 0 {
			return ReservationStep{Op: "none", Units: cur, Why: fmt.Sprintf("reservation failed (%s); none wanted now", r.Reason)}
		}
		if why, over := rules.overRegionQuota(want); over {
			return ReservationStep{Op: "none", Units: cur, NeedsPerson: true, Why: fmt.Sprintf("reservation failed (%s); %s", r.Reason, why)}
		}
		if r.Failures >= rules.MaxRetries {
			return ReservationStep{Op: "none", Units: cur, NeedsPerson: true,
				Why: fmt.Sprintf("reservation of %d LCU failed %d times (%s): not retried again", want, r.Failures, r.Reason)}
		}
		return ReservationStep{Op: "increase", Units: want,
			Why: fmt.Sprintf("reservation failed (%s): request %d LCU again, retry %d of %d", r.Reason, want, r.Failures+1, rules.MaxRetries)}
	}
	if why, over := rules.overRegionQuota(want); over && want > cur {
		return ReservationStep{Op: "none", Units: cur, NeedsPerson: true, Why: why}
	}
	switch {
	case want > cur:
		return ReservationStep{Op: "increase", Units: want, Why: fmt.Sprintf("reserve %d LCU (now %d)", want, cur)}
	case want == cur:
		return ReservationStep{Op: "none", Units: cur, Why: "reservation already as wanted"}
	case !r.MedicSet:
		return ReservationStep{Op: "none", Units: cur, Why: fmt.Sprintf("reservation of %d LCU was not made by medic: left alone", cur)}
	case rules.DecreasesLeft <= 0:
		return ReservationStep{Op: "none", Units: cur, Why: "no capacity decrease left today (AWS allows two a day): kept"}
	case want == 0:
		return ReservationStep{Op: "reset", Why: fmt.Sprintf("event over: reset the reservation of %d LCU", cur)}
	}
	return ReservationStep{Op: "decrease", Units: want, Why: fmt.Sprintf("lower the reservation from %d to %d LCU", cur, want)}
}
