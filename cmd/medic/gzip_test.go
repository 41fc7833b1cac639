package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"identity"}, false},
		{[]string{"br, gzip;q=0.5"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"gzip;q=0.001"}, true},
		{[]string{"*"}, true},
		{[]string{"zstd", "gzip"}, true},
		{[]string{"x-gzip"}, false},
	} {
		if got := acceptsGzip(tc.values); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
}

// TestMetricsGzip: /metrics as Prometheus asks for it (gzip) decodes to
// the same exposition as without compression.
func TestMetricsGzip(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medic_test_total", Help: "A test counter."}, []string{"instance_id"})
	reg.MustRegister(c)
	for i := range 2000 {
		c.WithLabelValues(fmt.Sprintf("i-%017x", i)).Add(float64(i))
	}
	h := gzipFast(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, DisableCompression: true}))
	get := func(ae string) *http.Response {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	plain := get("")
	if ce := plain.Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("no Accept-Encoding: Content-Encoding %q", ce)
	}
	want, _ := io.ReadAll(plain.Body)

	zipped := get("gzip")
	if ce := zipped.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Accept-Encoding gzip: Content-Encoding %q, want gzip", ce)
	}
	if v := zipped.Header.Get("Vary"); v != "Accept-Encoding" {
		t.Errorf("Vary = %q, want Accept-Encoding", v)
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("gzipped body differs from the plain one (%d vs %d bytes)", len(got), len(want))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(got)))
	if err != nil {
		t.Fatalf("gzipped exposition does not parse: %v", err)
	}
	if n := len(mfs["medic_test_total"].GetMetric()); n != 2000 {
		t.Errorf("series = %d, want 2000", n)
	}
}
