package healer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// This file wires the checks that see what simple health checks cannot
// (latency outliers, the load balancer's vantage against the instances',
// replacement pre-flight, per-detector scores) into Cycle. The decisions
// themselves live in outlier.go, vantage.go, preflight.go and score.go.

// Preflight refusal: a replacement could not launch, so the instance is
// not marked (see PreflightReason for the exact check that failed).
const PreflightRefused RefusalReason = "preflight"

// PreflightSource reads the facts a pre-flight check needs about one group
// (its instance types and vCPU quota headroom, subnets, launch template and
// image, recent launches). The controller builds one from PreflightReader
// and the limits snapshot. Replacements and Now are set by the healer.
type PreflightSource interface {
	PreflightInput(ctx context.Context, service, group string) (PreflightInput, error)
}

// Insight is what a cycle found beyond the verdicts, for the status page,
// the debug view and notifications.
type Insight struct {
	// Latency is the cycle's standing of every judged instance against its
	// peers; Outliers the instances standing out, with since when.
	Latency  LatencyReport
	Outliers []OutlierState
	// Vantage compares the endpoint, the instances and the load balancer.
	Vantage Vantage
	// Scores per detector, and the marks whose outcome settled this cycle
	// with ScoreSummary the line for the recovery notification.
	Scores       []DetectorScore
	Settled      []Settled
	ScoreSummary string
	// Preflight results of this cycle, by group (only groups where the
	// guard wanted to mark).
	Preflight map[string]PreflightResult
}

// insightState is the per-service memory of the insight checks.
type insightState struct {
	outliers  *OutlierTracker
	preflight map[string]preflightSeen // by group
	slow      bool                     // a service_slow episode is on
	vantage   VantageVerdict           // last cycle's verdict
}

// preflightSeen is a group's last pre-flight result, reused for
// PreflightReuse while the guard keeps asking for the same number of marks.
type preflightSeen struct {
	at  time.Time
	n   int
	res PreflightResult
}

// PreflightReuse is how long a group's pre-flight result stands before the
// facts are read again from AWS (5-6 calls a group): a refused mark is asked
// for again at every cycle.
const PreflightReuse = 30 * time.Second

// OutlierPolicyFrom turns the config's latency_outliers into the detector's
// policy.
func OutlierPolicyFrom(c config.LatencyOutliers) OutlierPolicy {
	return OutlierPolicy{Enabled: c.Enabled, Window: c.Window.D(), Quantile: c.Quantile, MinSamples: c.MinSamples,
		MinPeers: c.MinPeers, RelativeMargin: c.RelativeMargin, AbsoluteMargin: c.AbsoluteMargin.D(),
		SlowService: c.SlowService.D(), DegradedFor: c.DegradedFor.D()}
}

// latency updates the service's latency standing and returns the verdicts
// with the instances bad by latency turned Bad (ApplyLatency).
func (h *Healer) latency(logger log.Logger, svc string, st *serviceState, in CycleInput, verdicts []Verdict, now time.Time) ([]Verdict, LatencyReport, []OutlierState) {
	if in.History != nil {
		h.lat.ObserveHistory(svc, in.History)
	}
	var ids []string
	for _, v := range verdicts {
		switch v.State {
		case Healthy, Suspect, Bad:
			ids = append(ids, v.Instance.ID)
		}
	}
	pol := OutlierPolicyFrom(in.Policy.LatencyOutliers)
	rep := DetectLatencyOutliers(DetectInput{Windows: h.lat.Windows(svc, ids), Policy: pol,
		ProbeTimeout: in.Probe.Timeout.D(), Now: now})
	states := st.ins.outliers.Update(rep, pol.DegradedFor, now)
	h.ins.SetLatency(svc, rep)

	slow := rep.Finding == FindingServiceSlow
	switch {
	case slow && !st.ins.slow:
		level.Warn(logger).Log(logkeys.Msg, "service slow: "+rep.Reason, logkeys.Reason, string(FindingServiceSlow))
	case !slow && st.ins.slow:
		level.Info(logger).Log(logkeys.Msg, "service no longer slow: "+rep.Reason, logkeys.Reason, string(FindingServiceSlow))
	}
	st.ins.slow = slow
	return ApplyLatency(verdicts, states), rep, states
}

// vantage compares the three views and logs a change to a verdict that
// says marks cannot help.
func (h *Healer) vantage(logger log.Logger, svc string, st *serviceState, ep EndpointState, verdicts []Verdict) Vantage {
	v := CompareVantage(ep, verdicts)
	h.ins.SetVantage(svc, v)
	if v.Verdict != st.ins.vantage && VantageNotifies(v.Verdict) {
		level.Warn(logger).Log(logkeys.Msg, "vantage: "+v.Evidence, logkeys.Reason, string(v.Verdict))
	} else if v.Verdict != st.ins.vantage && VantageNotifies(st.ins.vantage) {
		level.Info(logger).Log(logkeys.Msg, "vantage no longer "+string(st.ins.vantage)+": "+v.Evidence, logkeys.Reason, string(v.Verdict))
	}
	st.ins.vantage = v.Verdict
	return v
}

// VantageNotifies reports whether a vantage verdict is one people are told
// about when it starts and ends: the fault is not the instances'.
func VantageNotifies(v VantageVerdict) bool {
	return v == VantageLBOrRouting || v == VantageServiceDown || v == VantageMedic
}

// preflight checks, per group with instances to mark, that the group can
// launch their replacements; a group that cannot keeps its instances, with
// a preflight refusal naming the cause. Missing facts never refuse.
func (h *Healer) preflight(ctx context.Context, logger log.Logger, svc string, st *serviceState, dec Decision, now time.Time) (Decision, map[string]PreflightResult) {
	if h.pre == nil || len(dec.Mark) == 0 {
		return dec, nil
	}
	if st.ins.preflight == nil {
		st.ins.preflight = map[string]preflightSeen{}
	}
	byGroup := map[string][]Verdict{}
	var groups []string
	for _, v := range dec.Mark {
		if _, ok := byGroup[v.Instance.Group]; !ok {
			groups = append(groups, v.Instance.Group)
		}
		byGroup[v.Instance.Group] = append(byGroup[v.Instance.Group], v)
	}
	results := map[string]PreflightResult{}
	refused := map[string]bool{}
	for _, g := range groups {
		res, fresh := h.preflightOf(ctx, logger, svc, st, g, len(byGroup[g]), now)
		results[g] = res
		if res.Allowed {
			continue
		}
		if fresh {
			h.ins.PreflightRefused(svc, res)
		}
		r := Refusal{Reason: PreflightRefused, Group: g,
			Detail: fmt.Sprintf("a replacement could not launch in %s: %s; marking would only take capacity away", g, res.Summary())}
		for _, v := range byGroup[g] {
			r.Instances = append(r.Instances, v.Instance.ID)
			refused[v.Instance.ID] = true
		}
		for _, pr := range res.Refusals {
			r.Evidence = append(r.Evidence, string(pr.Reason)+": "+pr.Detail)
		}
		sort.Strings(r.Instances)
		dec.Refusals = append(dec.Refusals, r)
	}
	if len(refused) > 0 {
		kept := make([]Verdict, 0, len(dec.Mark))
		for _, v := range dec.Mark {
			if !refused[v.Instance.ID] {
				kept = append(kept, v)
			}
		}
		dec.Mark = kept
	}
	return dec, results
}

// preflightOf is the group's pre-flight result for n replacements: the last
// one when younger than PreflightReuse and for as many, else read afresh
// (fresh true).
func (h *Healer) preflightOf(ctx context.Context, logger log.Logger, svc string, st *serviceState, g string, n int, now time.Time) (PreflightResult, bool) {
	if seen, ok := st.ins.preflight[g]; ok && seen.n == n && now.Sub(seen.at) < PreflightReuse {
		return seen.res, false
	}
	in, err := h.pre.PreflightInput(ctx, svc, g)
	if err != nil {
		level.Warn(logger).Log(logkeys.Msg, "pre-flight facts partly unread; checking what was read", logkeys.Group, g, logkeys.Err, err)
	}
	in.Group, in.Replacements, in.Now = g, n, now
	res := Preflight(in)
	st.ins.preflight[g] = preflightSeen{at: now, n: n, res: res}
	return res, true
}

// score settles the service's pending marks and returns the scores.
func (h *Healer) score(svc string, in CycleInput, verdicts []Verdict, now time.Time) ([]Settled, string, []DetectorScore) {
	settled := h.scorer.Settle(svc, ServiceRecovered(verdicts, in.Snapshot.Groups, in.Endpoint), now)
	summary := ""
	if len(settled) > 0 {
		summary = h.scorer.Summary(svc, settled)
	}
	return settled, summary, h.scorer.Scores(svc)
}

// detectorOf is the detector to credit with a mark.
func detectorOf(v Verdict) DetectorKind {
	if v.Detector == "" {
		return DetectorConsecutiveFailures
	}
	return v.Detector
}

// StandingOf returns the instance's latency standing from an insight, and
// whether it has one; a line for the debug view.
func (i Insight) StandingOf(id string) (LatencyStanding, OutlierState, bool) {
	var os OutlierState
	for _, o := range i.Outliers {
		if o.InstanceID == id {
			os = o
		}
	}
	for _, s := range i.Latency.Standings {
		if s.InstanceID == id {
			return s, os, true
		}
	}
	return LatencyStanding{}, os, false
}

// ScoreLine is the scores in one line for the status page.
func (i Insight) ScoreLine() string {
	var parts []string
	for _, sc := range i.Scores {
		p := fmt.Sprintf("%s: %s, %d recovered, %d not", sc.Detector, plural(sc.Marks, "mark"), sc.Recovered, sc.NotRecovered)
		if sc.Pending > 0 {
			p += fmt.Sprintf(", %d pending", sc.Pending)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// ReportZonal exports a service's zonal shift decision
// (medic_zonal_shift_decision); the controller decides and acts on zonal
// shifts, for it holds the ARC client.
func (h *Healer) ReportZonal(service string, d ZonalDecision) { h.ins.SetZonal(service, d) }
