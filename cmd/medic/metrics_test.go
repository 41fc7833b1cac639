package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/testkit"
	"github.com/medic-sre/medic/probes"
)

// noFleet is a Discoverer of services without groups.
type noFleet struct{}

func (noFleet) Refresh(_ context.Context, services []config.Service) (map[string]discovery.Snapshot, error) {
	out := map[string]discovery.Snapshot{}
	for _, s := range services {
		out[s.Name] = discovery.Snapshot{Service: s.Name}
	}
	return out, nil
}

func (noFleet) RecentHealthCheckReplacements(context.Context, []config.Service, time.Time) (map[string][]time.Time, error) {
	return nil, nil
}

// TestMetricsServesProbeSeries: /metrics serves the registry's families
// and the probe scheduler's per-target ones together, in the text format
// and in OpenMetrics.
func TestMetricsServesProbeSeries(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(app.Close)
	addr := app.Listener.Addr().String()
	y := fmt.Sprintf("global: {region: us-east-1, allowed_networks: [127.0.0.0/8]}\nservices:\n"+
		"  - name: static\n    static_targets: [%q]\n"+
		"    instance_probe: {type: http, path: /, interval: 1s, timeout: 500ms}\n", addr)
	cfg, err := config.Parse([]byte(y), "medic.yml", probes.Names())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ctrl := controller.New(controller.Options{Config: cfg, Discoverer: noFleet{}, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewServer(routes("", ctrl, http.NotFoundHandler(), http.NotFoundHandler(), reg, false))
	t.Cleanup(srv.Close)

	scrape := func(accept string) (string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		req.Header.Set("Accept", accept)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d %v\n%s", resp.StatusCode, err, body)
		}
		return resp.Header.Get("Content-Type"), string(body)
	}
	success := fmt.Sprintf(`medic_probe_success{az="",instance_id=%q,service="static"} 1`, addr)
	testkit.WaitFor(t, 20*time.Second, "the static target's series on /metrics", func() bool {
		_, body := scrape("text/plain")
		return strings.Contains(body, success)
	})

	_, text := scrape("text/plain")
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"medic_probe_success", "medic_probe_duration_seconds", "medic_probe_targets"} {
		if n := len(mfs[name].GetMetric()); n != 1 {
			t.Errorf("/metrics has %d %s series, want 1", n, name)
		}
	}
	if len(mfs["medic_probes_total"].GetMetric()) == 0 {
		t.Error("/metrics has no medic_probes_total series: the registry's families are missing")
	}
	ct, om := scrape("application/openmetrics-text; version=1.0.0")
	if !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.Contains(om, success) || !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("OpenMetrics scrape: Content-Type %q, body:\n%s", ct, om)
	}
}
