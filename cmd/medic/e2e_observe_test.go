package main

// End-to-end tests of how people see medic (issue 4, "How it is checked"):
// a real Prometheus (Debian package prometheus) scraping the real binary
// and loading the rule file, every dashboard and rule query sent to its
// query API; and the status page in headless Chromium (Debian package
// chromium). Helpers here are prefixed prom or page to keep clear of the
// core suite's names.

import (
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
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/medic-sre/medic/alerts/rules"
	"github.com/medic-sre/medic/dashboards"
)

// withMaxActions returns cfg (from world.config) with max_actions_per_hour set
// to n.
func withMaxActions(t *testing.T, cfg string, n int) string {
	t.Helper()
	const line = "max_actions_per_hour: 10"
	if !strings.Contains(cfg, line) {
		t.Fatalf("the harness config no longer holds %q:\n%s", line, cfg)
	}
	return strings.Replace(cfg, line, fmt.Sprintf("max_actions_per_hour: %d", n), 1)
}

// promWithLease returns cfg (from world.config) with global.lease in the
// table it creates on the emulator (docs/lease.md), so that the lease
// metrics exist.
func promWithLease(t *testing.T, w *world, cfg string) string {
	t.Helper()
	const table = "medic-lease"
	c := dynamodb.NewFromConfig(w.moto.Config())
	if _, err := c.CreateTable(w.ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("name"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("name"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	const line = "  discovery_interval: 1s\n"
	if !strings.Contains(cfg, line) {
		t.Fatalf("the harness config no longer holds %q:\n%s", line, cfg)
	}
	return strings.Replace(cfg, line, line+"  lease: {table: "+table+"}\n", 1)
}

// ---- Prometheus ----

// promServer is a Prometheus started by the test.
type promServer struct {
	base string
	proc *notifyProcess
}

// promStart runs the Debian package's Prometheus on a free loopback port,
// scraping target (host:port) as job "medic" every second and evaluating
// ruleFile every second, until the test ends.
func promStart(t *testing.T, target, ruleFile string) *promServer {
	t.Helper()
	return promStartTargets(t, ruleFile, target)
}

// promStartTargets is promStart scraping every target (host:port) as job
// "medic": the replicas of one deployment.
func promStartTargets(t *testing.T, ruleFile string, targets ...string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (Debian package prometheus: apt-get install -y prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	text := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: medic
    static_configs:
      - targets: %s
`, ruleFile, promQuoted(targets))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		addr := fmt.Sprintf("127.0.0.1:%d", notifyFreePort(t))
		p := notifyStartProcess(t, "prometheus", bin,
			"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, fmt.Sprint("data", try)),
			"--web.listen-address="+addr, "--web.enable-lifecycle", "--log.level=warn")
		base := "http://" + addr
		if p.waitReady(base+"/-/ready", 30*time.Second) {
			return &promServer{base: base, proc: p}
		}
		if try == 3 {
			t.Fatalf("prometheus did not start:\n%s", p.out.String())
		}
	}
}

// promQuoted is a YAML flow list of strings.
func promQuoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// promAnswer is the envelope of Prometheus's HTTP API.
type promAnswer struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (p *promServer) get(t *testing.T, path string, q url.Values) promAnswer {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	u := p.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a promAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("GET %s: HTTP %d, not a Prometheus answer: %s", path, resp.StatusCode, b)
	}
	return a
}

// promSample is one series of an instant query's answer.
type promSample struct {
	labels map[string]string
	value  float64
}

// vector runs an instant query and returns its series.
func (p *promServer) vector(t *testing.T, query string) []promSample {
	t.Helper()
	a := p.get(t, "/api/v1/query", url.Values{"query": {query}})
	if a.Status != "success" {
		t.Fatalf("query %q: %s: %s", query, a.ErrorType, a.Error)
	}
	var d struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(a.Data, &d); err != nil {
		return nil
	}
	out := make([]promSample, 0, len(d.Result))
	for _, r := range d.Result {
		var v float64
		if s, ok := r.Value[1].(string); ok {
			fmt.Sscan(s, &v)
		}
		out = append(out, promSample{labels: r.Metric, value: v})
	}
	return out
}

// value runs an instant query and returns the first sample's value and
// how many series came back.
func (p *promServer) value(t *testing.T, query string) (float64, int) {
	t.Helper()
	ss := p.vector(t, query)
	if len(ss) == 0 {
		return 0, 0
	}
	return ss[0].value, len(ss)
}

// promWaitScrapes waits until Prometheus has scraped medic successfully at
// least n times.
func promWaitScrapes(t *testing.T, prom *promServer, n float64) {
	t.Helper()
	eventually(t, 30*time.Second, "Prometheus scraping medic", func() (bool, string) {
		up, _ := prom.value(t, `up{job="medic"}`)
		c, _ := prom.value(t, `sum_over_time(up{job="medic"}[1m])`)
		return up == 1 && c >= n, fmt.Sprintf("up %v, %v successful scrapes", up, c)
	})
}

// promCreateALB creates an application load balancer in the fleet's
// subnets on the emulator and returns its ARN.
func promCreateALB(t *testing.T, w *world, name string) string {
	t.Helper()
	var subnets []string
	for _, id := range w.fleet.Subnets {
		subnets = append(subnets, id)
	}
	sort.Strings(subnets)
	c := elasticloadbalancingv2.NewFromConfig(w.moto.Config())
	out, err := c.CreateLoadBalancer(w.ctx, &elasticloadbalancingv2.CreateLoadBalancerInput{
		Name: aws.String(name), Subnets: subnets,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.LoadBalancers) != 1 {
		t.Fatalf("CreateLoadBalancer returned %d load balancers", len(out.LoadBalancers))
	}
	return aws.ToString(out.LoadBalancers[0].LoadBalancerArn)
}

// promPutALBMetrics puts an hour of steady traffic for the load balancer
// into the emulator's CloudWatch (AWS/ApplicationELB, 5-minute buckets),
// so that medic's pre-warm has data: a ramp ratio and a forecast.
func promPutALBMetrics(t *testing.T, w *world, arn string) {
	t.Helper()
	i := strings.Index(arn, ":loadbalancer/")
	if i < 0 {
		t.Fatalf("not a load balancer ARN: %s", arn)
	}
	dim := cwtypes.Dimension{Name: aws.String("LoadBalancer"), Value: aws.String(arn[i+len(":loadbalancer/"):])}
	// On the query protocol, as medic's own client (moto 5.2.1 does not
	// speak the SDK's default RPC v2 CBOR for CloudWatch).
	c := cloudwatch.NewFromConfig(w.moto.Config(), func(o *cloudwatch.Options) {
		o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
	})
	now := time.Now().Truncate(5 * time.Minute)
	for _, m := range []struct {
		name  string
		value float64
	}{
		{"RequestCount", 30000}, {"NewConnectionCount", 6000}, {"ActiveConnectionCount", 9000},
		{"ProcessedBytes", 5e7}, {"RuleEvaluations", 30000}, {"PeakLCUs", 3},
	} {
		var data []cwtypes.MetricDatum
		for k := 12; k >= 1; k-- {
			data = append(data, cwtypes.MetricDatum{MetricName: aws.String(m.name), Dimensions: []cwtypes.Dimension{dim},
				Timestamp: aws.Time(now.Add(-time.Duration(k) * 5 * time.Minute).Add(time.Minute)), Value: aws.Float64(m.value)})
		}
		if _, err := c.PutMetricData(w.ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/ApplicationELB"), MetricData: data}); err != nil {
			t.Fatalf("PutMetricData %s: %v", m.name, err)
		}
	}
}

// promWebhook is a webhook receiver answering 200, counting requests.
func promWebhook(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// promMetricsWithoutData are the metrics the rules or dashboards name that
// cannot have a series in this scenario, each with the reason. Any other
// name must be in medic's /metrics output.
var promMetricsWithoutData = map[string]string{}

// promPanelsWithoutData are panel queries (as in the dashboard, Grafana
// variables unreplaced) that may return no data in this scenario, each with
// the reason; every other panel query must return data.
var promPanelsWithoutData = map[string]string{
	`sum by (sink) (increase(medic_notifications_dropped_total{job=~"$job",instance=~"$instance"}[$__rate_interval])) > 0`:                                             "nothing is dropped: the webhook answers at once",
	`sum by (service, operation, result) (rate(medic_aws_api_calls_total{job=~"$job",instance=~"$instance",result!="success"}[$__rate_interval])) > 0`:                 "every AWS call succeeds (no fault is injected at the proxy)",
	`sum by (service, reason) (rate(medic_probe_skipped_total{job=~"$job",instance=~"$instance",service=~"$service"}[$__rate_interval])) > 0`:                          "no probe slot is skipped: probes finish well within the interval",
	`sum by (instance) (increase(medic_lease_transitions_total{job=~"$job",instance=~"$instance"}[$__rate_interval])) > 0`:                                             "the one transition (this replica becoming leader) precedes Prometheus's first scrape; no handover here",
	`sum by (instance, operation, result) (increase(medic_lease_operations_total{job=~"$job",instance=~"$instance",result=~"error|throttled"}[$__rate_interval])) > 0`: "no lease call fails",
}

// 4. A real Prometheus scrapes medic through a heal episode (a replacement
// that recovers) and a guard refusal (rate limit); every dashboard and rule
// query parses and, where this scenario makes its metrics exist, returns
// data; every metric a rule or panel names exists in medic's output; the
// rule file loads with every rule healthy.
func TestE2EPrometheusScrapesAndDashboardsQuery(t *testing.T) {
	ruleFile, err := filepath.Abs(filepath.Join("..", "..", "alerts", "rules", "medic.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ruleFile); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, fleetOpts{PerAZ: 2})
	albARN := promCreateALB(t, w, "e2e-web-alb")
	promPutALBMetrics(t, w, albARN)
	hook, hookCalls := promWebhook(t)
	hookFile := w.writeConfig("hook-url", hook.URL+"/medic\n")
	// Limits: moto knows no EC2 quotas, so the vCPU limit is given (scale-out
	// feasibility becomes known); the Auto Scaling groups quota is set at its
	// usage (this world's one group), so its forecast is known ("at_limit");
	// a scheduled event gives the load balancer a next event.
	eventStart := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	cfg := promWithLease(t, w, withMaxActions(t, w.config(cfgOpts{}), 1)) + fmt.Sprintf(`notifications:
  retry: {max_attempts: 2, initial_interval: 100ms, max_interval: 200ms}
  sinks:
    - {name: hook, type: webhook, url_file: %q}
limits:
  interval: 30s
  quotas:
    - {service_code: ec2, code: L-1216C47A, limit: 1000}
    - {service_code: autoscaling, code: L-CDE20ADC, limit: 1}
  prewarm:
    load_balancers:
      - {name: web-alb, type: application, arn: %q}
    events:
      - {name: launch, start: %q, duration: 1h, multiplier: 8, load_balancers: [web-alb]}
`, hookFile, albARN, eventStart)
	m := notifyStartMedic(t, w, svc, cfg)
	m.waitMetric(20*time.Second, eq(1), "medic_lease_leader")
	prom := promStart(t, m.addr, ruleFile)
	// Prometheus scrapes medic before anything happens, so that counters
	// are seen rising.
	promWaitScrapes(t, prom, 3)
	// The outcome counters exist at 0 before the first replacement, so
	// the dashboards' increase() sees it.
	for _, outcome := range []string{"recovered", "not_recovered"} {
		if v, ok := m.metrics().sum("medic_replacements_total", "service", svc, "outcome", outcome); !ok || v != 0 {
			t.Errorf(`before any fault, medic_replacements_total{outcome=%q} = %v (exists: %t), want 0`, outcome, v, ok)
		}
	}
	notifyPlayASG(t, w)

	// A heal episode: marked, replaced, recovered.
	insts := w.instances()
	notifyBreak(t, w, insts[0].ID)
	notifyWaitRecovered(t, m, svc, 40*time.Second)
	// A guard refusal: the hour's one action is spent.
	m.waitJudged(svc, "healthy", len(insts), 20*time.Second)
	notifyBreak(t, w, insts[len(insts)-1].ID)
	m.waitMetric(20*time.Second, eq(1), "medic_guard_refusing", "service", svc, "reason", "rate_limit")

	// Prometheus has scraped medic since the refusal.
	eventually(t, 30*time.Second, "Prometheus seeing the refusal", func() (bool, string) {
		r, _ := prom.value(t, `max(medic_guard_refusing{reason="rate_limit"})`)
		return r == 1, fmt.Sprintf("guard refusing %v", r)
	})
	n, _ := prom.value(t, `count_over_time(up{job="medic"}[1m])`)
	t.Logf("Prometheus scraped medic %v times in the last minute", n)
	t.Logf("webhook received %d notifications", hookCalls.Load())

	// (1) Every metric a rule, panel or variable names exists in medic's
	// output (a # TYPE line; a histogram's series count as its name).
	raw := m.metrics().raw
	typed := map[string]string{}
	for _, line := range strings.Split(raw, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			typed[f[2]] = f[3]
		}
	}
	var missing []string
	for _, name := range dashboards.AllMetricNames() {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && (typed[b] == "histogram" || typed[b] == "summary") {
				base = b
			}
		}
		_, exists := typed[base]
		why, excused := promMetricsWithoutData[name]
		switch {
		case !exists && !excused:
			missing = append(missing, name)
		case !exists:
			t.Logf("%s: no series in this scenario: %s", name, why)
		case excused:
			t.Logf("%s is listed as without data (%s) but exists: the list can shrink", name, why)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d metrics named by rules or dashboards are not in medic's /metrics: %v", len(missing), missing)
	}

	// (2) Every panel and rule query parses; panel queries and recording
	// rules return data unless listed; alert expressions are conditions
	// that do not hold in a healthy run, so they need only parse.
	ctx, cancel := context.WithTimeout(w.ctx, 60*time.Second)
	defer cancel()
	if err := dashboards.CheckQueries(ctx, nil, prom.base); err != nil {
		t.Errorf("queries Prometheus refused:\n%v", err)
	}
	// Queries() is the panel targets (Grafana variables replaced) in
	// PanelQueries' order, then the rules in file order.
	panels := dashboards.PanelQueries()
	var ruleList []rules.Rule
	for _, g := range rules.Generate(rules.Default()).Groups {
		ruleList = append(ruleList, g.Rules...)
	}
	queries := dashboards.Queries()
	if len(queries) != len(panels)+len(ruleList) {
		t.Fatalf("%d queries, want %d panel targets + %d rules", len(queries), len(panels), len(ruleList))
	}
	results, err := dashboards.RunQueries(ctx, nil, prom.base, queries)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(queries) {
		t.Fatalf("%d results for %d queries", len(results), len(queries))
	}
	mustHaveData, empty := 0, 0
	for i, r := range results {
		var where string
		if i < len(panels) {
			pq := panels[i]
			if why, ok := promPanelsWithoutData[pq.Expr]; ok {
				t.Logf("panel %s / %q may have no data here (%s); it returned %d series", pq.Dashboard, pq.Panel, why, r.Series)
				continue
			}
			where = "panel " + pq.Dashboard + " / " + pq.Panel
		} else if rr := ruleList[i-len(panels)]; rr.Record != "" {
			where = "recording rule " + rr.Record
		} else {
			continue // an alert's condition
		}
		mustHaveData++
		if r.Status == "success" && r.Series == 0 {
			empty++
			t.Errorf("no data: %s: %s", where, r.Query)
		}
	}
	t.Logf("%d queries (%d panel targets, %d rules) sent; %d must return data, %d of those returned none",
		len(results), len(panels), len(ruleList), mustHaveData, empty)

	// (3) The rules load, each group is there and every rule evaluates.
	var groups []struct {
		Name  string `json:"name"`
		File  string `json:"file"`
		Rules []struct {
			Name      string `json:"name"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
			Type      string `json:"type"`
		} `json:"rules"`
	}
	want := rules.Generate(rules.Default()).Groups
	eventually(t, 20*time.Second, "every rule evaluated", func() (bool, string) {
		a := prom.get(t, "/api/v1/rules", nil)
		var d struct {
			Groups json.RawMessage `json:"groups"`
		}
		if a.Status != "success" || json.Unmarshal(a.Data, &d) != nil || json.Unmarshal(d.Groups, &groups) != nil {
			return false, fmt.Sprintf("/api/v1/rules: %s %s", a.Status, a.Error)
		}
		var pending []string
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					pending = append(pending, fmt.Sprintf("%s/%s: %s %s", g.Name, r.Name, r.Health, r.LastError))
				}
			}
		}
		return len(groups) == len(want) && len(pending) == 0, fmt.Sprintf("%d groups (want %d); not ok: %v", len(groups), len(want), pending)
	})
	nRules := 0
	loaded := map[string]int{}
	for _, g := range groups {
		nRules += len(g.Rules)
		loaded[g.Name] = len(g.Rules)
	}
	for _, g := range want {
		if loaded[g.Name] != len(g.Rules) {
			t.Errorf("group %s: Prometheus loaded %d rules, want %d", g.Name, loaded[g.Name], len(g.Rules))
		}
	}
	t.Logf("Prometheus loaded %d groups, %d rules, all healthy", len(groups), nRules)
}

// ---- the status page in Chromium ----

var pageReasonRE = regexp.MustCompile(`[0-9]+ consecutive failed probes \((last [0-9]+: )?status 500, status 500, status 500`)

// 5. The real binary's status page in headless Chromium: it shows the
// broken instance with its reason, the service name with markup in it as
// text, the refusal among the recent events, and a screenshot is kept.
func TestE2EStatusPageInChromium(t *testing.T) {
	bin := testkit.Chromium(t)
	const name = `web<b>x</b>`
	w := newWorld(t, fleetOpts{PerAZ: 2})
	// max_actions_per_hour 0: monitor only, so the broken instance stays
	// in the fleet, judged bad, with its reason.
	cfg := withMaxActions(t, w.config(cfgOpts{Service: name}), 0)
	m := notifyStartMedic(t, w, name, cfg)
	victim := w.instances()[1].ID
	notifyBreak(t, w, victim)
	m.waitJudged(name, "bad", 1, 15*time.Second)
	m.waitMetric(10*time.Second, eq(1), "medic_guard_refusing", "service", name, "reason", "rate_limit")

	url := "http://" + m.addr + "/"
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("medic not on loopback: %s", url)
	}
	var dom string
	eventually(t, 20*time.Second, "the page showing the reason", func() (bool, string) {
		dom = string(testkit.RunChromium(t, bin, "--dump-dom", url))
		return strings.Contains(dom, "</html>") && strings.Contains(dom, "status 500"), "no 'status 500' in the DOM yet"
	})
	for _, want := range []struct{ desc, s string }{
		{"the broken instance", victim},
		{"the service name as text", "web&lt;b&gt;x&lt;/b&gt;"},
		{"the guard's refusal", "rate_limit"},
		// The controller's reporter made the event; the page only shows it.
		{"the refusal among the recent events", `<span class="tag suspect">mark_refused</span>`},
	} {
		if !strings.Contains(dom, want.s) {
			t.Errorf("%s: DOM lacks %q", want.desc, want.s)
		}
	}
	// The reason grows by one probe per second (past maxEvidence it quotes
	// the last few): match its shape.
	if !pageReasonRE.MatchString(dom) {
		t.Errorf("its reason: DOM lacks a match for %s", pageReasonRE)
	}
	if strings.Contains(strings.ToLower(dom), "<b>x</b>") {
		t.Errorf("the markup in the service name became an element")
	}
	if n := w.proxy.Count("SetInstanceHealth"); n != 0 {
		t.Errorf("SetInstanceHealth calls = %d under max_actions_per_hour 0", n)
	}

	testkit.Screenshot(t, bin, url, "e2e-statuspage.png")
}
