package dashboards

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/medic-sre/medic/alerts/rules"
)

// grafanaVars are the Grafana variables panel queries use, with values that
// make them plain PromQL: every service, and fixed intervals.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$__range", "1h",
	"${service}", ".+",
	"$service", ".+",
	"${instance}", ".+",
	"$instance", ".+",
	"${job}", ".+",
	"$job", ".+",
)

// PanelQuery is one panel target's expression.
type PanelQuery struct {
	Dashboard, Panel string
	Expr             string // as in the dashboard, with Grafana variables
}

// PanelQueries lists every target of every dashboard, in dashboard order.
func PanelQueries() []PanelQuery {
	var qs []PanelQuery
	for _, d := range All() {
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			for _, t := range p.Targets {
				qs = append(qs, PanelQuery{Dashboard: d.UID, Panel: p.Title, Expr: t.Expr})
			}
		}
	}
	return qs
}

// Queries returns every panel expression (Grafana variables replaced: all
// services, 1m intervals, a 1h range) and every expression of the default
// rule file, ready for Prometheus's /api/v1/query.
func Queries() []string {
	var qs []string
	for _, pq := range PanelQueries() {
		qs = append(qs, grafanaVars.Replace(pq.Expr))
	}
	return append(qs, rules.Queries()...)
}

// VariableQueries are the template variables' Grafana queries
// (label_values(...)): not PromQL, but the metrics they name must exist.
func VariableQueries() []string {
	var qs []string
	for _, d := range All() {
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				qs = append(qs, v.Query)
			}
		}
	}
	return qs
}

var (
	stringLit  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	identifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// MetricNames returns the sorted, distinct medic metric names that the
// queries name: identifiers starting with "medic_", outside string literals,
// as written (a histogram's _bucket series keeps its suffix). Recorded series
// (names with a colon) and non-medic series (up) are left out.
func MetricNames(queries []string) []string {
	seen := map[string]bool{}
	for _, q := range queries {
		for _, id := range identifier.FindAllString(stringLit.ReplaceAllString(q, `""`), -1) {
			if strings.HasPrefix(id, "medic_") && !strings.Contains(id, ":") {
				seen[id] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AllMetricNames is MetricNames of every panel, variable and rule query.
func AllMetricNames() []string {
	return MetricNames(append(Queries(), VariableQueries()...))
}

var docRow = regexp.MustCompile("(?m)^\\|\\s*`(medic_[a-z0-9_]+)`\\s*\\|\\s*([a-z]+)\\s*\\|")

// DocumentedMetrics reads the metric tables of docs/metrics.md: name → type
// (counter, gauge, histogram, summary).
func DocumentedMetrics(md []byte) map[string]string {
	m := map[string]string{}
	for _, row := range docRow.FindAllSubmatch(md, -1) {
		m[string(row[1])] = string(row[2])
	}
	return m
}

// Undocumented returns the names among names that docs (from
// DocumentedMetrics) does not list; a histogram's _bucket, _sum and _count
// series count as its name.
func Undocumented(names []string, docs map[string]string) []string {
	var missing []string
	for _, n := range names {
		if _, ok := docs[n]; ok {
			continue
		}
		found := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && (docs[base] == "histogram" || (suffix != "_bucket" && docs[base] == "summary")) {
				found = true
			}
		}
		if !found {
			missing = append(missing, n)
		}
	}
	return missing
}

// ReplicaFreeKey names a series by its labels other than job, instance
// (the replica) and __name__, sorted, as "k=v,k=v" ("" for none): the same
// fact reported by two replicas has one key.
func ReplicaFreeKey(labels map[string]string) string {
	var keys []string
	for k, v := range labels {
		if k != "job" && k != "instance" && k != "__name__" {
			keys = append(keys, k+"="+v)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// QueryResult is what Prometheus answered to one query.
type QueryResult struct {
	Query     string
	Status    string // "success" or "error"
	ErrorType string
	Error     string
	Series    int // vector/matrix length; 1 for a scalar or string
}

// RunQueries sends each query to the Prometheus at baseURL
// (/api/v1/query, evaluated now) and reports what came back. err is only
// for a Prometheus that cannot be reached or answers garbage; a query
// Prometheus refuses is a result with Status "error".
func RunQueries(ctx context.Context, client *http.Client, baseURL string, queries []string) ([]QueryResult, error) {
	if client == nil {
		client = http.DefaultClient
	}
	endpoint := strings.TrimSuffix(baseURL, "/") + "/api/v1/query"
	var out []QueryResult
	for _, q := range queries {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(url.Values{"query": {q}}.Encode()))
		if err != nil {
			return out, fmt.Errorf("query %q: %w", q, err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return out, fmt.Errorf("query %q: %w", q, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return out, fmt.Errorf("query %q: reading answer: %w", q, err)
		}
		var ans struct {
			Status    string `json:"status"`
			ErrorType string `json:"errorType"`
			Error     string `json:"error"`
			Data      struct {
				ResultType string          `json:"resultType"`
				Result     json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			return out, fmt.Errorf("query %q: HTTP %d, not a Prometheus answer: %w", q, resp.StatusCode, err)
		}
		r := QueryResult{Query: q, Status: ans.Status, ErrorType: ans.ErrorType, Error: ans.Error}
		switch ans.Data.ResultType {
		case "vector", "matrix":
			var series []json.RawMessage
			if err := json.Unmarshal(ans.Data.Result, &series); err == nil {
				r.Series = len(series)
			}
		case "scalar", "string":
			r.Series = 1
		}
		out = append(out, r)
	}
	return out, nil
}

// CheckQueries runs every query of Queries() against the Prometheus at
// baseURL and returns one error naming each query it did not answer with
// status success. The end-to-end test calls it once Prometheus has scraped
// medic.
func CheckQueries(ctx context.Context, client *http.Client, baseURL string) error {
	results, err := RunQueries(ctx, client, baseURL, Queries())
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range results {
		if r.Status != "success" {
			errs = append(errs, fmt.Errorf("query %q: status %q: %s: %s", r.Query, r.Status, r.ErrorType, r.Error))
		}
	}
	return errors.Join(errs...)
}
