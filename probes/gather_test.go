package probes

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/medic-sre/medic/internal/gather"
)

// perTarget are the families Scheduler.Gather serves, with their help.
var perTarget = map[string]string{
	"medic_probe_duration_seconds":            "Duration of the target's last probe.",
	"medic_probe_success":                     "1 if the target's last probe passed.",
	"medic_probe_targets":                     "Targets scheduled.",
	"medic_service_endpoint_duration_seconds": "Duration of the last probe through the load balancer.",
	"medic_service_endpoint_success":          "1 if the last probe through the load balancer passed.",
}

// withHeaders is the exposition of samples (lines of the text format, each
// family's together) with the HELP and TYPE lines of their families.
func withHeaders(samples string) string {
	var b strings.Builder
	family := ""
	for line := range strings.Lines(strings.TrimSpace(samples)) {
		if name, _, _ := strings.Cut(line, "{"); name != family {
			family = name
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, perTarget[name], name)
		}
		b.WriteString(strings.TrimSpace(line) + "\n")
	}
	return b.String()
}

// outcome is a target's last result in TestSchedulerGather.
type outcome struct {
	ok     bool
	micros int32
}

// TestSchedulerGather: the scheduler's families are the series a Registry
// would serve — consistent (client_golang's checks of names, label names,
// values and duplicates pass), sorted as the Registry sorts them, no name
// also in the registry — and hold the last result of each target.
func TestSchedulerGather(t *testing.T) {
	inst := func(svc, id, az string) Target {
		return Target{Key: svc + "/" + id, Service: svc, InstanceID: id, AZ: az, Address: "127.0.0.1:8080", Settings: probeSettings()}
	}
	static := func(key, svc, addr string) Target {
		return Target{Key: key, Service: svc, Address: addr, Settings: probeSettings()}
	}
	endpoint := func(key, svc, url string) Target {
		return Target{Key: key, Service: svc, Address: url, Settings: probeSettings()}
	}
	for _, tc := range []struct {
		desc    string
		targets []Target
		results map[string]outcome // by Key; a target not here is not probed yet
		want    string             // samples (withHeaders)
	}{
		{desc: "empty scheduler: no families at all"},
		{
			desc:    "targets not probed yet: counted, no series",
			targets: []Target{inst("web", "i-1", "eu-west-1a"), static("web/static", "web", "127.0.0.5:80"), endpoint("web/lb", "web", "http://lb/")},
			want: `
medic_probe_targets{scope="endpoint",service="web"} 1
medic_probe_targets{scope="instance",service="web"} 2
`,
		},
		{
			desc: "instance targets, sorted by az, then instance_id, then service",
			targets: []Target{inst("web", "i-2", "eu-west-1a"), inst("web", "i-1", "eu-west-1b"),
				inst("api", "i-1", "eu-west-1b"), inst("web", "i-3", "eu-west-1a")},
			results: map[string]outcome{"web/i-1": {true, 1500}, "web/i-2": {false, 2000000}, "api/i-1": {true, 250}, "web/i-3": {true, 10}},
			want: `
medic_probe_duration_seconds{az="eu-west-1a",instance_id="i-2",service="web"} 2
medic_probe_duration_seconds{az="eu-west-1a",instance_id="i-3",service="web"} 1e-05
medic_probe_duration_seconds{az="eu-west-1b",instance_id="i-1",service="api"} 0.00025
medic_probe_duration_seconds{az="eu-west-1b",instance_id="i-1",service="web"} 0.0015
medic_probe_success{az="eu-west-1a",instance_id="i-2",service="web"} 0
medic_probe_success{az="eu-west-1a",instance_id="i-3",service="web"} 1
medic_probe_success{az="eu-west-1b",instance_id="i-1",service="api"} 1
medic_probe_success{az="eu-west-1b",instance_id="i-1",service="web"} 1
medic_probe_targets{scope="instance",service="api"} 1
medic_probe_targets{scope="instance",service="web"} 3
`,
		},
		{
			desc:    "static targets: the address as instance_id, no az, before instances",
			targets: []Target{static("web/b", "web", "127.0.0.6:80"), static("web/a", "web", "127.0.0.5:80"), inst("web", "i-1", "eu-west-1a")},
			results: map[string]outcome{"web/a": {true, 1000}, "web/b": {false, 3000}, "web/i-1": {true, 2000}},
			want: `
medic_probe_duration_seconds{az="",instance_id="127.0.0.5:80",service="web"} 0.001
medic_probe_duration_seconds{az="",instance_id="127.0.0.6:80",service="web"} 0.003
medic_probe_duration_seconds{az="eu-west-1a",instance_id="i-1",service="web"} 0.002
medic_probe_success{az="",instance_id="127.0.0.5:80",service="web"} 1
medic_probe_success{az="",instance_id="127.0.0.6:80",service="web"} 0
medic_probe_success{az="eu-west-1a",instance_id="i-1",service="web"} 1
medic_probe_targets{scope="instance",service="web"} 3
`,
		},
		{
			desc:    "endpoints: families of their own, by service",
			targets: []Target{endpoint("web/lb", "web", "http://web-lb/"), endpoint("api/lb", "api", "https://api-lb/health"), static("web/a", "web", "127.0.0.5:80")},
			results: map[string]outcome{"web/lb": {false, 4000}, "api/lb": {true, 5000}, "web/a": {true, 1000}},
			want: `
medic_probe_duration_seconds{az="",instance_id="127.0.0.5:80",service="web"} 0.001
medic_probe_success{az="",instance_id="127.0.0.5:80",service="web"} 1
medic_probe_targets{scope="endpoint",service="api"} 1
medic_probe_targets{scope="endpoint",service="web"} 1
medic_probe_targets{scope="instance",service="web"} 1
medic_service_endpoint_duration_seconds{service="api"} 0.005
medic_service_endpoint_duration_seconds{service="web"} 0.004
medic_service_endpoint_success{service="api"} 1
medic_service_endpoint_success{service="web"} 0
`,
		},
		{
			desc:    "one static target listed twice: one series, the first Key's",
			targets: []Target{static("web/b", "web", "127.0.0.5:80"), static("web/a", "web", "127.0.0.5:80")},
			results: map[string]outcome{"web/a": {true, 1000}, "web/b": {false, 2000}},
			want: `
medic_probe_duration_seconds{az="",instance_id="127.0.0.5:80",service="web"} 0.001
medic_probe_success{az="",instance_id="127.0.0.5:80",service="web"} 1
medic_probe_targets{scope="instance",service="web"} 2
`,
		},
		{
			desc:    "listed twice, the first not probed yet: the probed one's",
			targets: []Target{static("web/a", "web", "127.0.0.5:80"), static("web/b", "web", "127.0.0.5:80")},
			results: map[string]outcome{"web/b": {false, 2000}},
			want: `
medic_probe_duration_seconds{az="",instance_id="127.0.0.5:80",service="web"} 0.002
medic_probe_success{az="",instance_id="127.0.0.5:80",service="web"} 0
medic_probe_targets{scope="instance",service="web"} 2
`,
		},
		{
			desc:    "two endpoints of one service: one series, the first Key's",
			targets: []Target{endpoint("web/lb2", "web", "http://web-lb2/"), endpoint("web/lb1", "web", "http://web-lb1/")},
			results: map[string]outcome{"web/lb1": {true, 1000}, "web/lb2": {false, 2000}},
			want: `
medic_probe_targets{scope="endpoint",service="web"} 2
medic_service_endpoint_duration_seconds{service="web"} 0.001
medic_service_endpoint_success{service="web"} 1
`,
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := NewScheduler(Options{Registerer: reg})
			s.Update(tc.targets)
			s.mu.Lock()
			for key, o := range tc.results {
				e := s.entries[key]
				e.hist[0] = record{start: time.Now().UnixNano(), duration: o.micros, success: o.ok}
				e.n = 1
			}
			s.mu.Unlock()

			if err := testutil.GatherAndCompare(s, strings.NewReader(withHeaders(tc.want)), slices.Collect(maps.Keys(perTarget))...); err != nil {
				t.Error(err)
			}
			// The checks /metrics skips: client_golang's, over the
			// scheduler's families alone and merged with the registry's.
			for _, g := range []struct {
				name string
				g    prometheus.Gatherer
			}{{"scheduler", s}, {"merged with the registry", gather.Merge(reg, s)}} {
				checked, err := prometheus.Gatherers{g.g}.Gather()
				if err != nil {
					t.Fatalf("%s: inconsistent families: %v", g.name, err)
				}
				got, err := g.g.Gather()
				if err != nil {
					t.Fatalf("%s: %v", g.name, err)
				}
				if got, want := exposition(t, got), exposition(t, checked); got != want {
					t.Errorf("%s: not in the Registry's order:\n%s\nwant\n%s", g.name, got, want)
				}
			}
			if mfs, _ := s.Gather(); tc.want == "" && len(mfs) != 0 {
				t.Errorf("Gather returned %d families, want none", len(mfs))
			}
		})
	}
}

// exposition is mfs in the text format, in the order given.
func exposition(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
