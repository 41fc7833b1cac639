package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/probes"
)

// isoDisc is seedDisc whose AWS does not report the groups in missing: the
// services naming one get no snapshot and one *discovery.ServiceError each,
// joined, as discovery.Refresh reports them.
type isoDisc struct {
	seedDisc
	missing map[string]bool
}

func (d *isoDisc) Refresh(ctx context.Context, services []config.Service) (map[string]discovery.Snapshot, error) {
	snaps, err := d.seedDisc.Refresh(ctx, services)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, s := range services {
		for _, g := range s.AutoScalingGroups {
			if d.missing[g] {
				delete(snaps, s.Name)
				errs = append(errs, &discovery.ServiceError{Service: s.Name, Group: g, Err: discovery.ErrGroupNotFound})
			}
		}
	}
	return snaps, errors.Join(errs...)
}

// A group AWS does not report refuses its own service only: the others
// heal, and readiness says which service refuses and why.
func TestMissingGroupRefusesItsServiceOnly(t *testing.T) {
	rows := []struct {
		desc       string
		missing    []string
		wantReady  bool
		wantWhy    string
		wantFrozen map[string]bool
	}{
		{desc: "every group found", wantReady: true, wantWhy: "ok",
			wantFrozen: map[string]bool{"web": false, "api": false}},
		{desc: "api's group gone: api refuses, web heals, medic ready", missing: []string{"api-asg"}, wantReady: true,
			wantWhy: "ok; refusing: api: group api-asg not found", wantFrozen: map[string]bool{"web": false, "api": true}},
		{desc: "every service's group gone: not ready", missing: []string{"api-asg", "web-asg"}, wantReady: false,
			wantWhy:    "every service refuses: web: group web-asg not found; api: group api-asg not found",
			wantFrozen: map[string]bool{"web": true, "api": true}},
	}
	for _, row := range rows {
		t.Run(row.desc, func(t *testing.T) {
			disc := &isoDisc{missing: map[string]bool{}}
			for _, g := range row.missing {
				disc.missing[g] = true
			}
			c := New(Options{Config: seedConfig(t, "web", "api"), Discoverer: disc,
				Actuator: healer.DryRun(log.NewNopLogger())})
			ctx := context.Background()
			c.refresh(ctx)
			ok, why := c.Ready()
			if ok != row.wantReady || why != row.wantWhy {
				t.Errorf("Ready() = %v, %q; want %v, %q", ok, why, row.wantReady, row.wantWhy)
			}
			for svc, want := range row.wantFrozen {
				c.healService(ctx, svc)
				rep, ran := c.reports[svc]
				if !ran {
					t.Errorf("%s: no heal cycle ran (a refusing service still reports)", svc)
					continue
				}
				if rep.Frozen != want {
					t.Errorf("%s: Frozen = %v, want %v", svc, rep.Frozen, want)
				}
			}
		})
	}
}

// A reload that removes a group stops acting on its instances at once,
// before the next refresh; one that removes the service stops its cycles.
func TestReloadRemovingGroupStopsActingOnIt(t *testing.T) {
	two := func(groups string) *config.Config {
		y := "global: {region: us-east-1, allowed_networks: [127.0.0.0/8], discovery_interval: 1s}\nservices:\n"
		if groups != "" {
			y += "  - name: web\n    auto_scaling_groups: [" + groups + "]\n" +
				"    instance_probe: {type: http, port: 8080, interval: 1s, timeout: 500ms}\n"
		}
		y += "  - name: api\n    auto_scaling_groups: [api-asg]\n" +
			"    instance_probe: {type: http, port: 8080, interval: 1s, timeout: 500ms}\n"
		cfg, err := config.Parse([]byte(y), "two.yml", probes.Names())
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	c := New(Options{Config: two("web-a, web-b"), Discoverer: &seedDisc{},
		Actuator: healer.DryRun(log.NewNopLogger())})
	ctx := context.Background()
	c.refresh(ctx)
	groups := func() []string {
		var gs []string
		for _, v := range c.reports["web"].Verdicts {
			if !slices.Contains(gs, v.Instance.Group) {
				gs = append(gs, v.Instance.Group)
			}
		}
		slices.Sort(gs)
		return gs
	}
	c.healService(ctx, "web")
	if got := strings.Join(groups(), ","); got != "web-a,web-b" {
		t.Fatalf("before the reload, judged groups %q, want web-a,web-b", got)
	}

	c.Apply(two("web-a"))
	c.healService(ctx, "web") // no refresh in between
	if got := strings.Join(groups(), ","); got != "web-a" {
		t.Errorf("after a reload removing web-b, judged groups %q, want web-a only", got)
	}

	c.Apply(two(""))
	c.healService(ctx, "web")
	if _, ok := c.reports["web"]; ok {
		t.Errorf("a cycle ran for web after a reload removed it")
	}
}

// A group a reload adds is not acted on until it has been read: the
// service's cycle is frozen, saying so, rather than judging half a fleet.
func TestReloadAddingGroupWaitsForItsRead(t *testing.T) {
	c := New(Options{Config: seedConfig(t, "web"), Discoverer: &seedDisc{},
		Actuator: healer.DryRun(log.NewNopLogger())})
	ctx := context.Background()
	c.refresh(ctx)
	cfg := seedConfig(t, "web")
	cfg.Services[0].AutoScalingGroups = append(cfg.Services[0].AutoScalingGroups, "web-new")
	c.Apply(cfg)
	c.healService(ctx, "web")
	if !c.reports["web"].Frozen {
		t.Errorf("cycle with a group not read yet was not frozen")
	}
	c.refresh(ctx)
	c.healService(ctx, "web")
	if c.reports["web"].Frozen {
		t.Errorf("cycle still frozen after the new group was read")
	}
}

// A probe result wakes the heal loop of its own service only, and only for
// instances and endpoints: a static target's result costs the heal loops
// nothing.
func TestObserveWakesOnlyItsService(t *testing.T) {
	c := New(Options{Config: seedConfig(t, "web", "api"), Discoverer: &seedDisc{},
		Actuator: healer.DryRun(log.NewNopLogger())})
	loops := map[string]*serviceLoop{}
	for _, s := range []string{"web", "api"} {
		loops[s] = &serviceLoop{name: s, wake: make(chan struct{}, 1)}
	}
	c.loops.Store(&loops)
	woken := func() string {
		var ws []string
		for _, s := range []string{"web", "api"} {
			select {
			case <-loops[s].wake:
				ws = append(ws, s)
			default:
			}
		}
		return strings.Join(ws, ",")
	}
	r := probes.Result{Start: time.Now(), Reason: "status 500"}
	rows := []struct {
		desc string
		t    probes.Target
		want string
	}{
		{desc: "static target: nobody", t: probes.Target{Key: "static/static/127.0.0.1:1", Service: "static", Address: "127.0.0.1:1"}},
		{desc: "web's instance: web", t: probes.Target{Key: instanceKey("web", "i-1"), Service: "web", InstanceID: "i-1"}, want: "web"},
		{desc: "api's endpoint: api", t: probes.Target{Key: endpointKey("api"), Service: "api", Address: "http://127.0.0.1:1/"}, want: "api"},
		{desc: "a service with no heal loop: nobody", t: probes.Target{Key: instanceKey("gone", "i-2"), Service: "gone", InstanceID: "i-2"}},
	}
	for _, row := range rows {
		c.observe(row.t, r)
		if got := woken(); got != row.want {
			t.Errorf("%s: woke %q, want %q", row.desc, got, row.want)
		}
	}
	// Wakes coalesce: many results, one pending cycle.
	for range 5 {
		c.observe(probes.Target{Key: instanceKey("web", "i-1"), Service: "web", InstanceID: "i-1"}, r)
	}
	if got := woken(); got != "web" {
		t.Errorf("after five results: woke %q, want web once", got)
	}
}
