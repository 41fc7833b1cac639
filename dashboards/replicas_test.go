package dashboards_test

import (
	"github.com/medic-sre/medic/internal/testkit"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/dashboards"
)

// perReplica are the panels that show one value per medic replica on
// purpose (the replica's own health, leadership, its queues): with two
// replicas they show two.
var perReplica = map[string]bool{
	"medic ready": true, "Fleet age": true, "Config reload": true, "Running version": true,
	"Notification queues": true, "Leader by replica": true, "Leadership changes": true, "Lease calls failing": true,
}

// Two medic replicas (leader and standby) export the same fleet; every
// panel counts each instance, target, quota and load balancer once.
//
// The replicas are two small loopback servers serving metrics text
// fixtures (testdata/replica-metrics-*.prom, hand-written in the shape of
// medic's /metrics, not a live two-replica run on moto). A real Prometheus
// scrapes them as job "pair", and the leader's text alone as job
// "single". Every panel query, run on that Prometheus with $job=pair, must
// give what it gives with $job=single (job and instance labels aside),
// except the per-replica panels, which must show each replica.
func TestDashboardsCountEachInstanceOnceWithTwoReplicas(t *testing.T) {
	leader := serveMetrics(t, "testdata/replica-metrics-leader.prom")
	standby := serveMetrics(t, "testdata/replica-metrics-standby.prom")
	single := serveMetrics(t, "testdata/replica-metrics-leader.prom")
	prom := startPrometheus(t, map[string][]string{"pair": {leader, standby}, "single": {single}})

	waitForProm(t, "three scrapes of every target", func() bool {
		r := promQuery(t, prom, `min(count_over_time(up[1m])) >= 3 and count(up == 1) == 3`)
		return len(r) == 1
	})

	// The setup does duplicate: a naive sum counts every instance twice.
	if naive, once := promQuery(t, prom, `sum(medic_instances{job="pair"})`), promQuery(t, prom, `sum(medic_instances{job="single"})`); naive[""] != 2*once[""] || once[""] != 9 {
		t.Fatalf("naive sums: pair %v, single %v; want 18 and 9", naive, once)
	}

	checked := 0
	for _, pq := range dashboards.PanelQueries() {
		pair := promQuery(t, prom, withVars(pq.Expr, "pair"))
		one := promQuery(t, prom, withVars(pq.Expr, "single"))
		where := pq.Dashboard + " / " + pq.Panel
		if perReplica[pq.Panel] {
			np, no := len(promSeries(t, prom, withVars(pq.Expr, "pair"))), len(promSeries(t, prom, withVars(pq.Expr, "single")))
			if no > 0 && np <= no && !strings.Contains(pq.Expr, "count by (version)") {
				t.Errorf("%s: %d series for two replicas, %d for one: want one per replica\n%s", where, len(pair), len(one), pq.Expr)
			}
			continue
		}
		if fmt.Sprint(pair) != fmt.Sprint(one) {
			t.Errorf("%s: two replicas give %v, one gives %v\n%s", where, pair, one, pq.Expr)
		}
		if len(one) > 0 {
			checked++
		}
	}
	if checked < 15 {
		t.Errorf("only %d panel queries returned data to compare: the fixtures lack series", checked)
	}
	t.Logf("%d panel queries returned data and agree between one and two replicas", checked)

	byAZ := promQuery(t, prom, withVars(`sum by (az, state) (max by (job, service, az, state) (medic_instances{job=~"$job",instance=~"$instance",service=~"$service"}))`, "pair"))
	if byAZ["az=us-east-1a,state=healthy"] != 5 || byAZ["az=us-east-1b,state=bad"] != 1 {
		t.Errorf("instances by AZ and state with two replicas = %v", byAZ)
	}
}

// withVars replaces the dashboard variables: the given job, every replica
// and service, one-minute intervals, a one-hour range.
func withVars(expr, job string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h",
		"$service", ".+", "$instance", ".+", "$job", job,
	).Replace(expr)
}

// serveMetrics serves the file as /metrics on a loopback port and returns
// host:port.
func serveMetrics(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// startPrometheus runs the Debian package's Prometheus on a free loopback
// port, scraping each job's targets every second, until the test ends.
func startPrometheus(t *testing.T, jobs map[string][]string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (Debian package prometheus)")
	}
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n")
	names := make([]string, 0, len(jobs))
	for j := range jobs {
		names = append(names, j)
	}
	sort.Strings(names)
	for _, j := range names {
		tj, _ := json.Marshal(jobs[j])
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: %s\n", j, tj)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return testkit.StartDaemon(t, "prometheus", bin, func(addr, data string) []string {
		return []string{"--config.file=" + cfg, "--storage.tsdb.path=" + data, "--web.listen-address=" + addr, "--log.level=warn"}
	})
}

// promQuery runs an instant query and returns each series' value by its
// labels, job, instance and __name__ left out ("" for no labels).
func promQuery(t *testing.T, base, query string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, r := range promSeries(t, base, query) {
		out[dashboards.ReplicaFreeKey(r.labels)] = r.value
	}
	return out
}

type series struct {
	labels map[string]string
	value  float64
}

// promSeries runs an instant query and returns its series.
func promSeries(t *testing.T, base, query string) []series {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query",
		strings.NewReader(url.Values{"query": {query}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ans struct {
		Status, Error string
		Data          struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.Status != "success" {
		t.Fatalf("query %s: %s %s", query, ans.Error, body)
	}
	var out []series
	for _, r := range ans.Data.Result {
		var v float64
		if s, ok := r.Value[1].(string); ok {
			fmt.Sscan(s, &v)
		}
		out = append(out, series{labels: r.Metric, value: v})
	}
	return out
}

// waitForProm polls cond for at most about 30s (a bound, not a timing
// assertion).
func waitForProm(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, what, cond)
}
