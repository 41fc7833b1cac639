package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/emulator"
)

// latencyConfig is the world's config with an 800 ms instance probe timeout
// and a latency outlier policy short enough for a test: a 30 s window, 5
// samples, bad after 5 s of standing out.
func latencyConfig(w *world) string {
	cfg := strings.Replace(w.config(cfgOpts{}), "timeout: 500ms", "timeout: 800ms", 1)
	return strings.Replace(cfg, "max_actions_per_hour: 10", `max_actions_per_hour: 10
      latency_outliers:
        window: 30s
        min_samples: 5
        degraded_for: 5s`, 1)
}

// One instance answers 200 ok in 600 ms while its five peers answer at once
// (timeout 800 ms): it stands out from its peers by both margins, and after
// degraded_for it is marked, alone, with a reason that says so.
func TestE2ESlowButOKInstanceAmongFastPeersIsMarkedAlone(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(latencyConfig(w))
	insts := w.instances()
	victim := insts[len(insts)-1].ID
	if err := w.app(victim).Delay(600 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	m.waitMetric(30*time.Second, ge(3), "medic_latency_peer_ratio", "service", svc, "instance_id", victim)
	w.waitUnhealthy(victim, 30*time.Second)
	m.waitProbes(svc, 2*len(insts), 15*time.Second)
	w.assertOnlyUnhealthy(victim)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
	lines := m.logsWith("msg", "marking bad instance Unhealthy", "instance_id", victim)
	if len(lines) == 0 || !strings.Contains(fmt.Sprint(lines[0]["reason"]), "latency outlier") {
		t.Errorf("mark log lines %v, want a reason naming the latency outlier", lines)
	}
	if got := m.metrics().val("medic_detector_marks_total", "service", svc, "detector", "latency_outlier"); got != 1 {
		t.Errorf("medic_detector_marks_total{detector=latency_outlier} = %g, want 1", got)
	}
}

// Every instance answers in 600 ms: nobody stands out from peers just as
// slow; the service is reported slow, once, and nothing is marked.
func TestE2EEveryInstanceSlowMarksNothingAndReportsASlowService(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(latencyConfig(w))
	insts := w.instances()
	for _, in := range insts {
		if err := w.app(in.ID).Delay(600 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	m.waitMetric(30*time.Second, eq(1), "medic_latency_finding", "service", svc, "finding", "service_slow")
	m.waitProbes(svc, 10*len(insts), 30*time.Second) // past degraded_for
	w.assertMarkedNothing()
	if n := len(m.logsWith("reason", "service_slow")); n != 1 {
		t.Errorf("%d log lines with reason service_slow, want one (the start of the episode)", n)
	}
}

// The endpoint (through the load balancer) fails while every instance
// passes direct: a load balancer or routing problem, reported once, and
// no instance is marked for it.
func TestE2EEndpointFailingWhileInstancesPassIsALoadBalancerProblem(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{}))
	w.lb.setStatus(http.StatusServiceUnavailable)
	m.waitMetric(20*time.Second, eq(1), "medic_vantage", "service", svc, "verdict", "lb_or_routing_problem")
	m.waitProbes(svc, 3*len(w.instances()), 15*time.Second)
	w.assertMarkedNothing()
	if lines := m.logsWith("reason", "lb_or_routing_problem"); len(lines) != 1 || !strings.Contains(fmt.Sprint(lines[0]["msg"]), "vantage") {
		t.Errorf("log lines with reason lb_or_routing_problem: %v, want one vantage line", lines)
	}
	w.lb.setStatus(http.StatusOK)
	m.waitMetric(20*time.Second, eq(1), "medic_vantage", "service", svc, "verdict", "ok")
}

// The On-Demand Standard vCPU quota is set (in the limits config) far
// below what the fleet already runs: a replacement could not launch, so
// the bad instance is not marked, and the refusal names the quota.
func TestE2EGroupWhoseVCPUQuotaCannotHoldAReplacementIsNotMarked(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{}) + `limits:
  interval: 30s
  quotas:
    - {service_code: ec2, code: L-1216C47A, limit: 1}
`)
	m.waitMetric(90*time.Second, eq(1), "medic_quota_limit", "quota_code", "L-1216C47A")
	insts := w.instances()
	victim := insts[len(insts)-1].ID
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	m.waitMetric(20*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "preflight")
	m.waitProbes(svc, 2*len(insts), 15*time.Second)
	w.assertMarkedNothing()
	assertFirstRefusalSays(t, m, "preflight", "the On-Demand Standard vCPU quota has 0 vCPUs left; a replacement needs 2 vCPUs (t3.micro)")
	if got := m.metrics().val("medic_preflight_refusals_total", "service", svc, "reason", "vcpu_quota"); got < 1 {
		t.Errorf("medic_preflight_refusals_total{reason=vcpu_quota} = %g, want ≥ 1", got)
	}
}

// Two of the three instances of one zone fail (the guard refuses to churn
// them: az_correlated); the service opts in to zonal shifts, so medic starts
// one shift away from that zone on ARC — a FAKE of ARC here, moto lacks it
// (emulator.FakeARC) — and cancels it when the zone recovers.
func TestE2EFailuresClusteredInOneZoneStartOneZonalShiftAndCancelItOnRecovery(t *testing.T) {
	arc := emulator.StartFakeARCT(t, nil)
	t.Setenv("AWS_ENDPOINT_URL_ARC_ZONAL_SHIFT", arc.URL())
	const lbARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123456789abcdef"
	w := newWorld(t, fleetOpts{PerAZ: 3})
	m := w.steady(strings.Replace(w.config(cfgOpts{}), "max_actions_per_hour: 10", `max_actions_per_hour: 10
      zonal_shift: {enabled: true, expiry: 30m, load_balancer_arn: "`+lbARN+`"}`, 1))
	byAZ := map[string][]string{}
	for _, in := range w.instances() {
		byAZ[in.AZ] = append(byAZ[in.AZ], in.ID)
	}
	var zone string
	for az := range byAZ {
		if zone == "" || az < zone {
			zone = az
		}
	}
	broken := byAZ[zone][:2]
	for _, id := range broken {
		if err := w.app(id).Status(http.StatusInternalServerError); err != nil {
			t.Fatal(err)
		}
	}
	m.waitMetric(20*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "az_correlated")
	eventually(t, 20*time.Second, "a zonal shift started", func() (bool, string) {
		s := arc.Shifts()
		return len(s) == 1 && s[0].Status == "ACTIVE", fmt.Sprint(s)
	})
	s := arc.Shifts()[0]
	if s.Resource != lbARN || !strings.HasPrefix(s.Comment, "medic: ") {
		t.Errorf("shift = %+v, want one on %s with medic's comment", s, lbARN)
	}
	m.waitProbes(svc, 3*len(w.instances()), 15*time.Second)
	if n := len(arc.Shifts()); n != 1 {
		t.Errorf("%d shifts started, want 1: %v", n, arc.Shifts())
	}
	// (The first of the two may be marked before the second fails: the
	// guard's AZ rule needs two bad instances. That is the guard's business.)

	for _, id := range broken {
		if err := w.app(id).OK(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the zonal shift cancelled", func() (bool, string) {
		s := arc.Shifts()
		return len(s) == 1 && s[0].Status == "CANCELED", fmt.Sprint(s)
	})
	if lines := m.logsWith("reason", "zone_recovered"); len(lines) != 1 {
		t.Errorf("log lines with reason zone_recovered: %v, want one", lines)
	}
}

// assertMarkedNothing: no SetInstanceHealth call reached AWS and no
// instance is held Unhealthy.
func (w *world) assertMarkedNothing() {
	w.t.Helper()
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		w.t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
}
