package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/internal/testkit"
	"github.com/medic-sre/medic/probes"
)

// seedDisc is a Discoverer whose fleets are three healthy instances per
// service and whose earlier marks the test sets; it records every
// RecentHealthCheckReplacements call.
type seedDisc struct {
	mu      sync.Mutex
	down    bool                   // Refresh fails whole
	marks   map[string][]time.Time // by service
	err     error                  // of RecentHealthCheckReplacements
	calls   [][]string             // services asked, per call
	sinceAt []time.Time
}

func (d *seedDisc) Refresh(_ context.Context, services []config.Service) (map[string]discovery.Snapshot, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, errors.New("aws down")
	}
	out := map[string]discovery.Snapshot{}
	for _, s := range services {
		snap := discovery.Snapshot{Service: s.Name}
		for _, g := range s.AutoScalingGroups {
			snap.Groups = append(snap.Groups, discovery.Group{Name: g, Min: 1, Max: 6, Desired: 3})
			for i := range 3 {
				snap.Instances = append(snap.Instances, discovery.Instance{
					ID: fmt.Sprintf("i-%s-%d", g, i), Group: g, AZ: "us-east-1a",
					LifecycleState: "InService", HealthStatus: "Healthy",
				})
			}
		}
		out[s.Name] = snap
	}
	return out, nil
}

func (d *seedDisc) RecentHealthCheckReplacements(_ context.Context, services []config.Service, since time.Time) (map[string][]time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	out := map[string][]time.Time{}
	for _, s := range services {
		names = append(names, s.Name)
		out[s.Name] = d.marks[s.Name]
	}
	d.calls = append(d.calls, names)
	d.sinceAt = append(d.sinceAt, since)
	return out, d.err
}

func (d *seedDisc) takeCalls() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.calls
	d.calls = nil
	return c
}

func seedConfig(t *testing.T, services ...string) *config.Config {
	t.Helper()
	y := "global: {region: us-east-1, allowed_networks: [127.0.0.0/8], discovery_interval: 1s}\nservices:\n"
	for _, s := range services {
		y += fmt.Sprintf("  - name: %s\n    auto_scaling_groups: [%s-asg]\n"+
			"    instance_probe: {type: http, port: 8080, path: /health, interval: 1s, timeout: 500ms}\n", s, s)
	}
	y += "  - name: static\n    static_targets: [127.0.0.1:1]\n" +
		"    instance_probe: {type: http, port: 8080, path: /health, interval: 1s, timeout: 500ms}\n"
	cfg, err := config.Parse([]byte(y), "seed.yml", probes.Names())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func lastHour(t *testing.T, reg *prometheus.Registry, want map[string]int) {
	t.Helper()
	exp := "# HELP medic_heal_actions_last_hour Marks in the sliding hour (rate-limit budget used).\n" +
		"# TYPE medic_heal_actions_last_hour gauge\n"
	for _, svc := range []string{"api", "new", "web"} {
		if n, ok := want[svc]; ok {
			exp += fmt.Sprintf("medic_heal_actions_last_hour{service=%q} %d\n", svc, n)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "medic_heal_actions_last_hour"); err != nil {
		t.Error(err)
	}
}

// The controller reads earlier marks back once per service — at its first
// successful discovery, and for a service a reload adds — and hands them to
// the healer before the service's first heal cycle.
func TestSeedOncePerService(t *testing.T) {
	now := time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)
	clk := func() time.Time { return now }
	disc := &seedDisc{down: true, marks: map[string][]time.Time{
		"web": {now.Add(-10 * time.Minute), now.Add(-20 * time.Minute)},
		"new": {now.Add(-5 * time.Minute)},
	}}
	reg := prometheus.NewRegistry()
	logs := &testkit.SyncBuffer{}
	c := New(Options{Config: seedConfig(t, "web", "api"), Discoverer: disc, Registerer: reg,
		Actuator: healer.DryRun(log.NewNopLogger()), Logger: log.NewLogfmtLogger(logs), Now: clk})
	ctx := context.Background()

	c.refresh(ctx)
	if calls := disc.takeCalls(); len(calls) != 0 {
		t.Fatalf("seeded before any fleet was read: %v", calls)
	}

	disc.down = false
	c.refresh(ctx)
	if calls := disc.takeCalls(); len(calls) != 1 || strings.Join(calls[0], ",") != "web,api" {
		t.Fatalf("calls after the first discovery = %v, want one for web,api (static has no group)", calls)
	}
	if got := disc.sinceAt[0]; !got.Equal(now.Add(-healer.RateWindow)) {
		t.Errorf("since = %v, want an hour before now", got)
	}
	lastHour(t, reg, map[string]int{"web": 2, "api": 0})
	c.healService(ctx, "web")
	if got := c.reports["web"].ActionsLastHour; got != 2 {
		t.Errorf("web's first cycle: ActionsLastHour = %d, want 2", got)
	}

	c.refresh(ctx)
	c.refresh(ctx)
	if calls := disc.takeCalls(); len(calls) != 0 {
		t.Fatalf("later refreshes read activities again: %v", calls)
	}

	c.Apply(seedConfig(t, "web", "api", "new"))
	c.refresh(ctx)
	if calls := disc.takeCalls(); len(calls) != 1 || strings.Join(calls[0], ",") != "new" {
		t.Fatalf("calls after a reload adding new = %v, want one for new only", calls)
	}
	lastHour(t, reg, map[string]int{"web": 2, "api": 0, "new": 1})

	// Removed and added back: its memory went with it, so it is read again.
	c.Apply(seedConfig(t, "api", "new"))
	c.Apply(seedConfig(t, "web", "api", "new"))
	c.refresh(ctx)
	if calls := disc.takeCalls(); len(calls) != 1 || strings.Join(calls[0], ",") != "web" {
		t.Fatalf("calls after web came back = %v, want one for web only", calls)
	}
	lastHour(t, reg, map[string]int{"web": 2, "api": 0, "new": 1})
	if strings.Contains(logs.String(), "level=warn msg=\"cannot read all earlier marks") {
		t.Errorf("warned without a failure:\n%s", logs)
	}
}

// A failed read is logged, not retried, and not fatal: the service heals
// with what was read.
func TestSeedFailureIsNotFatal(t *testing.T) {
	now := time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)
	disc := &seedDisc{
		marks: map[string][]time.Time{"web": {now.Add(-time.Minute)}},
		err:   errors.New("describe scaling activities of api-asg: AccessDenied"),
	}
	reg := prometheus.NewRegistry()
	logs := &testkit.SyncBuffer{}
	c := New(Options{Config: seedConfig(t, "web", "api"), Discoverer: disc, Registerer: reg,
		Actuator: healer.DryRun(log.NewNopLogger()), Logger: log.NewLogfmtLogger(logs),
		Now: func() time.Time { return now }})
	ctx := context.Background()

	c.refresh(ctx)
	c.refresh(ctx)
	if calls := disc.takeCalls(); len(calls) != 1 {
		t.Fatalf("calls = %v, want one (a failure is not retried)", calls)
	}
	lastHour(t, reg, map[string]int{"web": 1, "api": 0})
	if ok, why := c.Ready(); !ok {
		t.Errorf("not ready after a failed seed: %s", why)
	}
	out := logs.String()
	if !strings.Contains(out, "level=warn") || !strings.Contains(out, "may be larger than it should be for up to an hour") ||
		!strings.Contains(out, "AccessDenied") {
		t.Errorf("no warning about the budget:\n%s", out)
	}
}
