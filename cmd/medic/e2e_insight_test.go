package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
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
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
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
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
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
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", n)
	}
	w.assertOnlyUnhealthy()
	assertFirstRefusalSays(t, m, "preflight", "the On-Demand Standard vCPU quota has 0 vCPUs left; a replacement needs 2 vCPUs (t3.micro)")
	if got := m.metrics().val("medic_preflight_refusals_total", "service", svc, "reason", "vcpu_quota"); got < 1 {
		t.Errorf("medic_preflight_refusals_total{reason=vcpu_quota} = %g, want ≥ 1", got)
	}
}
