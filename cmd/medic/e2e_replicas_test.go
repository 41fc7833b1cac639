package main

// End-to-end check of issue 11 item 6: with two medic replicas under one
// lease (leader and standby export the same fleet), the dashboards' panel
// queries and the alert rules, run on a real Prometheus scraping both,
// count each instance and each fleet fact once.

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/dashboards"
)

// replicasPerReplicaRE matches the panel queries that show one value per
// replica on purpose (its readiness, fleet age, reloads, queues,
// leadership): they group by the scrape's instance label.
var replicasPerReplicaRE = regexp.MustCompile(`by \(instance\b`)

// replicasEventRE matches queries over counters (rates, increases): their
// values depend on when each replica's events fell, so they are compared
// by their series only, or not at all when filtered by "> 0".
var replicasEventRE = regexp.MustCompile(`\b(rate|increase|histogram_quantile|[a-z]+_over_time)\(`)

// replicasVector runs an instant query and returns each series' value by
// its labels, job, instance and __name__ left out ("" for none).
func replicasVector(t *testing.T, p *promServer, query string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, r := range p.vector(t, query) {
		out[dashboards.ReplicaFreeKey(r.labels)] = r.value
	}
	return out
}

// replicasVars replaces a panel's Grafana variables: job medic, the
// replicas matching instance, every service, one-minute intervals.
func replicasVars(expr, instance string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m", "$__interval", "1m", "$__range", "5m",
		"$service", ".+", "$instance", instance, "$job", "medic",
	).Replace(expr)
}

func replicasSum(v map[string]float64, label string) map[string]float64 {
	out := map[string]float64{}
	for k, x := range v {
		for _, kv := range strings.Split(k, ",") {
			if l, val, ok := strings.Cut(kv, "="); ok && l == label {
				out[val] += x
			}
		}
	}
	return out
}

func replicasTotal(v map[string]float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

func replicasKeys(v map[string]float64) []string {
	ks := make([]string, 0, len(v))
	for k := range v {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Two replicas share a lease on the emulator's DynamoDB; one instance of
// four answers 500 and, with max_actions_per_hour 0, stays bad (the guard
// refuses: rate_limit). A real Prometheus scrapes both replicas as job
// medic. The fleet panels count four instances (3 healthy + 1 bad, two per
// AZ), not eight; every other fleet panel gives with both replicas what it
// gives with the leader alone ($instance); the per-replica panels show
// both; each fleet alert is pending once, not once per replica.
func TestE2ETwoReplicasDashboardsCountEachInstanceOnce(t *testing.T) {
	ruleFile, err := filepath.Abs(filepath.Join("..", "..", "alerts", "rules", "medic.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, fleetOpts{PerAZ: 2})
	w.createLeaseTable()
	insts := w.instances()
	fleet := float64(len(insts))
	cfg := w.writeConfig("medic.yml", leaseConfig(withMaxActions(t, w.config(cfgOpts{}), 0))+`limits:
  interval: 30s
  quotas:
    - {service_code: ec2, code: L-1216C47A, limit: 1000}
    - {service_code: autoscaling, code: L-CDE20ADC, limit: 1}
`)

	leader := w.startMedic(cfg)
	leader.waitReady()
	leader.waitMetric(20*time.Second, eq(1), "medic_lease_leader")
	standby := w.startMedic(cfg)
	standby.waitReady()
	standby.waitJudged(svc, "healthy", len(insts), 30*time.Second)
	if v := standby.metrics().val("medic_lease_leader"); v != 0 {
		t.Fatalf("the second replica leads (%v) while the first does", v)
	}

	victim := insts[0]
	notifyBreak(t, w, victim.ID)
	for _, m := range []*medic{leader, standby} {
		m.waitJudged(svc, "bad", 1, 20*time.Second)
	}

	prom := promStartTargets(t, ruleFile, leader.addr, standby.addr)
	// Prometheus holds both replicas' view of the broken fleet: each
	// condition holds for two series, one per replica.
	conds := []string{
		`up{job="medic"} == 1`,
		`medic_instances{job="medic",state="bad"} == 1`,
		`medic_probe_success{job="medic"} == 0`,
		`medic_guard_refusing{job="medic",reason="rate_limit"} == 1`,
		`medic_quota_headroom_ratio{job="medic",quota_code="L-CDE20ADC"}`,
		`sum_over_time(up{job="medic"}[1m]) >= 3`,
	}
	eventually(t, 60*time.Second, "Prometheus holding both replicas' view", func() (bool, string) {
		for _, c := range conds {
			if n, _ := prom.value(t, "count("+c+")"); n != 2 {
				return false, fmt.Sprintf("count(%s) = %v, want 2", c, n)
			}
		}
		return true, ""
	})

	// The trap is there: a plain sum counts every instance twice.
	if naive, _ := prom.value(t, `sum(medic_instances{job="medic"})`); naive != 2*fleet {
		t.Fatalf(`sum(medic_instances{job="medic"}) = %v, want %v (two replicas reporting %v instances each)`, naive, 2*fleet, fleet)
	}

	byTitle := map[string][]dashboards.PanelQuery{}
	for _, pq := range dashboards.PanelQueries() {
		byTitle[pq.Panel] = append(byTitle[pq.Panel], pq)
	}
	panel := func(title string) map[string]float64 {
		t.Helper()
		pqs := byTitle[title]
		if len(pqs) != 1 {
			t.Fatalf("panel %q has %d queries, want 1", title, len(pqs))
		}
		return replicasVector(t, prom, replicasVars(pqs[0].Expr, ".+"))
	}

	// (1) The instance counts: the fleet's size, per AZ its share, per
	// state 3 healthy and 1 bad.
	perAZ := map[string]float64{}
	for _, in := range insts {
		perAZ[in.AZ]++
	}
	for _, title := range []string{"Instances by state per AZ", "Instances now, per AZ"} {
		v := panel(title)
		if got := replicasTotal(v); got != fleet {
			t.Errorf("%s: %v instances in all, want the fleet's %v: %v", title, got, fleet, v)
		}
		got := replicasSum(v, "state")
		for state, n := range got {
			if n == 0 {
				delete(got, state) // the states exported at 0
			}
		}
		if want := map[string]float64{"healthy": fleet - 1, "bad": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: per state %v, want %v", title, got, want)
		}
		if got := replicasSum(v, "az"); fmt.Sprint(got) != fmt.Sprint(perAZ) {
			t.Errorf("%s: per AZ %v, want %v", title, got, perAZ)
		}
		t.Logf("%s with two replicas: %v", title, v)
	}
	if v := replicasSum(panel("Targets"), "scope"); v["instance"] != fleet || v["endpoint"] != 1 {
		t.Errorf("Targets: %v, want %v instance targets and 1 endpoint", v, fleet)
	}
	if v := panel("Failing now, per AZ"); replicasTotal(v) != 1 || v["az="+victim.AZ+",service="+svc] != 1 {
		t.Errorf("Failing now, per AZ: %v, want 1 in %s", v, victim.AZ)
	}
	if v := panel("Guard refusing"); v["reason=rate_limit,service="+svc] != 1 {
		t.Errorf("Guard refusing: %v, want rate_limit at 1", v)
	}
	if v := panel("Leaders"); replicasTotal(v) != 1 || len(v) != 1 {
		t.Errorf("Leaders: %v, want 1", v)
	}
	if v := panel("Running version"); replicasTotal(v) != 2 {
		t.Errorf("Running version: %v, want the two replicas counted", v)
	}

	// (2) Every other panel query: with both replicas it gives what the
	// leader alone gives, its series always, its values unless it is over
	// counters or durations; the per-replica panels show both replicas.
	only := leader.addr
	compared, valued := 0, 0
	for _, pq := range dashboards.PanelQueries() {
		where := pq.Dashboard + " / " + pq.Panel
		both := replicasVector(t, prom, replicasVars(pq.Expr, ".+"))
		one := replicasVector(t, prom, replicasVars(pq.Expr, only))
		if replicasPerReplicaRE.MatchString(pq.Expr) {
			bs := len(prom.vector(t, replicasVars(pq.Expr, ".+")))
			lone := len(prom.vector(t, replicasVars(pq.Expr, only)))
			if lone > 0 && bs != 2*lone {
				t.Errorf("%s: %d series for both replicas, %d for the leader: want one per replica\n%s", where, bs, lone, pq.Expr)
			}
			continue
		}
		events := replicasEventRE.MatchString(pq.Expr)
		if events {
			// Over each replica's own counters (its probes, its AWS and
			// lease calls; a standby reads the lease, the leader writes it):
			// not a fleet fact.
			continue
		}
		if len(one) == 0 {
			continue
		}
		compared++
		if fmt.Sprint(replicasKeys(both)) != fmt.Sprint(replicasKeys(one)) {
			t.Errorf("%s: series with both replicas %v, with the leader %v\n%s", where, replicasKeys(both), replicasKeys(one), pq.Expr)
			continue
		}
		durations := false
		for _, name := range dashboards.MetricNames([]string{pq.Expr}) {
			durations = durations || strings.HasSuffix(name, "_seconds")
		}
		if durations || pq.Panel == "Running version" {
			continue
		}
		valued++
		if fmt.Sprint(both) != fmt.Sprint(one) {
			t.Errorf("%s: both replicas give %v, the leader alone %v\n%s", where, both, one, pq.Expr)
		}
	}
	if valued < 10 {
		t.Errorf("only %d panel queries had values to compare", valued)
	}
	t.Logf("%d panel queries give the same series with both replicas as with the leader alone; %d of them the same values", compared, valued)

	// (3) The rules: each fleet fact's alert is pending (or firing) once,
	// whichever replicas report it.
	eventually(t, 20*time.Second, "MedicGuardRefusing pending", func() (bool, string) {
		n, _ := prom.value(t, `count(ALERTS{alertname="MedicGuardRefusing"})`)
		return n > 0, "no MedicGuardRefusing in ALERTS yet"
	})
	alerts := replicasVector(t, prom, `count by (alertname, alertstate, service, reason) (ALERTS{alertname="MedicGuardRefusing"})`)
	if want := map[string]float64{"alertname=MedicGuardRefusing,alertstate=pending,reason=rate_limit,service=" + svc: 1}; fmt.Sprint(alerts) != fmt.Sprint(want) {
		t.Errorf("MedicGuardRefusing with two replicas: %v, want one pending alert", alerts)
	}
	if n, _ := prom.value(t, `count(ALERTS{alertname="MedicGuardRefusing",instance!=""})`); n != 0 {
		t.Errorf("MedicGuardRefusing carries a replica's instance label: one alert per replica")
	}
}
