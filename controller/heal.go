package controller

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/probes"
)

// serviceLoop is one service's heal loop: a goroutine that runs a heal
// cycle when woken, and at least every HealInterval.
type serviceLoop struct {
	name   string
	wake   chan struct{} // coalesced: at most one cycle pending
	ctx    context.Context
	cancel context.CancelFunc
}

// syncLoops starts a heal loop for every configured service with groups
// that has none, and stops the loops of the others (their cycle in flight
// sees its context cancelled, so a mark not yet sent is not sent). Before
// Run and after it ends it does nothing. Callers hold c.mu.
func (c *Controller) syncLoops() {
	if c.runCtx == nil || c.stopped {
		return
	}
	cur := *c.loops.Load()
	next := make(map[string]*serviceLoop, len(c.cfg.Services))
	for _, svc := range c.cfg.Services {
		if len(svc.AutoScalingGroups) == 0 {
			continue
		}
		if l, ok := cur[svc.Name]; ok {
			next[svc.Name] = l
			continue
		}
		ctx, cancel := context.WithCancel(c.runCtx)
		l := &serviceLoop{name: svc.Name, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
		next[svc.Name] = l
		c.loopWG.Add(1)
		go c.runLoop(l)
	}
	for name, l := range cur {
		if next[name] != l {
			l.cancel()
		}
	}
	c.loops.Store(&next)
}

func (c *Controller) runLoop(l *serviceLoop) {
	defer c.loopWG.Done()
	defer l.cancel()
	t := time.NewTicker(c.healIvl)
	defer t.Stop()
	poke(l.wake) // a first cycle at once
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		case <-l.wake:
		}
		c.healService(l.ctx, l.name)
	}
}

// observe is the scheduler's OnResult: it hands an instance's or an
// endpoint's result to the healer, O(1), and wakes that service's loop
// when the healer says a verdict may change. Static targets, and services
// without groups, cost nothing here.
func (c *Controller) observe(t probes.Target, r probes.Result) {
	if t.InstanceID == "" && t.Key != endpointKey(t.Service) {
		return
	}
	l := (*c.loops.Load())[t.Service]
	if l == nil {
		return
	}
	if c.healer.Observe(t.Service, t, r) {
		poke(l.wake)
	}
}

// wakeAll asks every service for a cycle (the fleet was re-read).
func (c *Controller) wakeAll() {
	for _, l := range *c.loops.Load() {
		poke(l.wake)
	}
}

// healService runs one heal cycle of the named service, with the config
// as it is now: a service or group a reload removed is not acted on, and
// only this service's probe histories are read.
func (c *Controller) healService(ctx context.Context, name string) {
	c.mu.Lock()
	cfg := c.cfg
	svcp := cfg.Service(name)
	if svcp == nil || len(svcp.AutoScalingGroups) == 0 {
		c.mu.Unlock()
		return
	}
	svc := *svcp
	now := c.now()
	snap, read := c.snapshots[name]
	refusal := c.refusalLocked(svc, now)
	_, refused := c.svcErr[name]
	c.mu.Unlock()
	if !read && !refused {
		return // nothing read yet: nothing to judge, nothing to report
	}
	if !read {
		snap = discovery.Snapshot{Service: name}
	}
	snap, missing := currentGroups(snap, svc.AutoScalingGroups)
	if refusal == "" && len(missing) > 0 && read {
		refusal = "group " + strings.Join(missing, ", ") + " not read yet"
	}

	self := c.sched.SelfHealth()
	in := healer.CycleInput{
		Service:   name,
		Snapshot:  snap,
		Endpoint:  c.endpoint(svc),
		Policy:    svc.Policy,
		Probe:     svc.InstanceProbe,
		Self:      healer.SelfHealth{Unwell: self.Unwell, Reason: self.Reason},
		RequestID: newRequestID(),
	}
	if refusal != "" {
		in.Frozen, in.FrozenReason = true, "the fleet cannot be acted on: "+refusal
	}
	rep := c.healer.Cycle(ctx, in)
	if ctx.Err() != nil {
		return // removed by a reload, or stopping: report nothing
	}
	at := c.now()
	c.mu.Lock()
	if c.cfg.Service(name) == nil {
		c.mu.Unlock()
		return
	}
	c.reports[name] = rep
	c.mu.Unlock()
	c.outcomes.observe(svc, snap, rep, in.Endpoint, at)
	c.zonal.run(ctx, svc, rep, serviceState(rep, in.Endpoint), at)
}

// endpoint reads the service endpoint's latest results: the one history a
// cycle copies. Instances are judged on what the healer observed result by
// result (Healer.Observe), not on copies of their histories.
func (c *Controller) endpoint(svc config.Service) healer.EndpointState {
	if svc.Endpoint == "" {
		return endpointState(svc, nil)
	}
	ek := endpointKey(svc.Name)
	return endpointState(svc, c.sched.Histories([]string{ek})[ek])
}

// currentGroups keeps of snap only the groups the service names now (a
// reload may have removed one since it was read) and their instances, and
// lists the groups it names that snap lacks (added since, not read yet).
func currentGroups(snap discovery.Snapshot, groups []string) (discovery.Snapshot, []string) {
	var missing []string
	for _, g := range groups {
		if !slices.ContainsFunc(snap.Groups, func(x discovery.Group) bool { return x.Name == g }) {
			missing = append(missing, g)
		}
	}
	keep := func(g string) bool { return slices.Contains(groups, g) }
	if len(snap.Groups) == len(groups)-len(missing) {
		return snap, missing // nothing removed
	}
	out := snap
	out.Groups = make([]discovery.Group, 0, len(snap.Groups))
	for _, g := range snap.Groups {
		if keep(g.Name) {
			out.Groups = append(out.Groups, g)
		}
	}
	out.Instances = make([]discovery.Instance, 0, len(snap.Instances))
	for _, in := range snap.Instances {
		if keep(in.Group) {
			out.Instances = append(out.Instances, in)
		}
	}
	return out, missing
}
