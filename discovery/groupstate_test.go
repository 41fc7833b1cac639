package discovery_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
	"github.com/medic-sre/medic/internal/testkit"
)

// TestRefreshReadsGroupState: the group's own state and the instances'
// facts reach the snapshot from the calls a refresh already makes. moto
// does not implement DescribeInstanceRefreshes (it answers HTTP 500 with an
// HTML page): the failure is logged once, taken as "none", and the call is
// not made again before InstanceRefreshEvery.
func TestRefreshReadsGroupState(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	f := build(t, emulator.FleetSpec{Group: "state-asg", AZs: []string{"us-east-1a"}, PerAZ: 2})
	p, asg, ec := proxied(t)
	if _, err := asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{
		AutoScalingGroupName: aws.String("state-asg"), ScalingProcesses: []string{"ReplaceUnhealthy"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := asg.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{
		ResourceId: aws.String("state-asg"), ResourceType: aws.String("auto-scaling-group"),
		Key: aws.String("medic:pause"), Value: aws.String("deploy 42"),
	}}}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec, Logger: log.NewLogfmtLogger(log.NewSyncWriter(&logs)),
		InstanceRefreshEvery: time.Hour})
	svcs := []config.Service{{Name: "state", AutoScalingGroups: []string{"state-asg"}}}

	p.ResetCounts()
	snaps, err := d.Refresh(ctx, svcs)
	if err != nil {
		t.Fatal(err)
	}
	g := snaps["state"].Groups[0]
	if len(g.SuspendedProcesses) != 1 || g.SuspendedProcesses[0] != "ReplaceUnhealthy" {
		t.Errorf("SuspendedProcesses = %v, want [ReplaceUnhealthy]", g.SuspendedProcesses)
	}
	if g.Tags["medic:pause"] != "deploy 42" {
		t.Errorf("Tags = %v, want medic:pause", g.Tags)
	}
	if g.LaunchTemplate != f.LaunchTemplate || g.LaunchTemplateVersion != "$Latest" {
		t.Errorf("launch template = %q %q, want %q $Latest", g.LaunchTemplate, g.LaunchTemplateVersion, f.LaunchTemplate)
	}
	if g.InstanceRefresh != "" || g.HasWarmPool {
		t.Errorf("InstanceRefresh %q, warm pool %v; want none", g.InstanceRefresh, g.HasWarmPool)
	}
	for _, in := range snaps["state"].Instances {
		if in.InstanceType != emulator.InstanceType || in.ImageID != emulator.ImageID {
			t.Errorf("%s: type %q image %q, want %s %s", in.ID, in.InstanceType, in.ImageID, emulator.InstanceType, emulator.ImageID)
		}
		// Already InService at medic's first look: grace from launch.
		if in.InServiceSince.IsZero() || !in.InServiceSince.Equal(in.LaunchTime) {
			t.Errorf("%s: InServiceSince %v, want its launch time %v", in.ID, in.InServiceSince, in.LaunchTime)
		}
	}
	// Two calls for the fleet, one DescribeInstanceRefreshes (unsupported).
	if got := p.Count("DescribeInstanceRefreshes"); got != 1 {
		t.Errorf("DescribeInstanceRefreshes calls = %d, want 1", got)
	}
	if _, err := d.Refresh(ctx, svcs); err != nil {
		t.Fatal(err)
	}
	if got := p.Count("DescribeInstanceRefreshes"); got != 1 {
		t.Errorf("DescribeInstanceRefreshes calls within InstanceRefreshEvery of a failed one = %d, want still 1", got)
	}
	if n := strings.Count(logs.String(), "cannot read instance refreshes"); n != 1 {
		t.Errorf("unsupported warning logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestRefreshInServiceSinceFromStandby: an instance seen in Standby and
// then InService gets its grace from the refresh that saw it return.
func TestRefreshInServiceSinceFromStandby(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	f := build(t, emulator.FleetSpec{Group: "standby-back", AZs: []string{"us-east-1a"}, PerAZ: 2})
	_, asg, ec := proxied(t)
	clk := testkit.NewClock(time.Unix(1_800_000_000, 0))
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec, Now: clk.Now})
	svcs := []config.Service{{Name: "sb", AutoScalingGroups: []string{"standby-back"}}}
	insts, err := f.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := insts[0].ID
	byID := func() discovery.Instance {
		t.Helper()
		snaps, err := d.Refresh(ctx, svcs)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range snaps["sb"].Instances {
			if in.ID == id {
				return in
			}
		}
		t.Fatalf("%s not in the snapshot", id)
		return discovery.Instance{}
	}
	first := byID()
	if _, err := asg.EnterStandby(ctx, &autoscaling.EnterStandbyInput{AutoScalingGroupName: aws.String("standby-back"),
		InstanceIds: []string{id}, ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	if in := byID(); in.InService() || !in.InServiceSince.IsZero() {
		t.Errorf("in Standby: %s since %v, want Standby and no InServiceSince", in.LifecycleState, in.InServiceSince)
	}
	if _, err := asg.ExitStandby(ctx, &autoscaling.ExitStandbyInput{AutoScalingGroupName: aws.String("standby-back"),
		InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	back := clk.Now()
	if in := byID(); !in.InService() || !in.InServiceSince.Equal(back) {
		t.Errorf("back: %s since %v, want InService since %v (the refresh that saw it return); first look: since %v",
			in.LifecycleState, in.InServiceSince, back, first.InServiceSince)
	}
	clk.Advance(10 * time.Second)
	if in := byID(); !in.InServiceSince.Equal(back) {
		t.Errorf("a later refresh moved InServiceSince to %v, want %v", in.InServiceSince, back)
	}
}

// TestFailedServices: a service naming a missing group fails alone; the
// others' refresh counts for them (LastSuccessFor).
func TestFailedServices(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	build(t, emulator.FleetSpec{Group: "iso-ok", AZs: []string{"us-east-1a"}, PerAZ: 1})
	_, asg, ec := proxied(t)
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec, Now: clk.Now})
	snaps, err := d.Refresh(ctx, []config.Service{
		{Name: "fine", AutoScalingGroups: []string{"iso-ok"}},
		{Name: "broken", AutoScalingGroups: []string{"iso-ok", "iso-gone", "iso-gone-too"}},
		{Name: "lost", AutoScalingGroups: []string{"iso-gone"}},
	})
	failed := discovery.FailedServices(err)
	if len(snaps) != 1 || len(failed) != 2 || failed["fine"] != nil {
		t.Fatalf("snapshots %v, failed %v; want fine's snapshot, broken and lost failed", snaps, failed)
	}
	if !errors.Is(failed["broken"], discovery.ErrGroupNotFound) || !strings.Contains(failed["broken"].Error(), "iso-gone-too") ||
		!strings.Contains(failed["lost"].Error(), "service lost: group iso-gone") {
		t.Errorf("failed = %v", failed)
	}
	if got := d.LastSuccessFor("fine"); !got.Equal(clk.Now()) {
		t.Errorf("LastSuccessFor(fine) = %v, want %v", got, clk.Now())
	}
	if !d.LastSuccessFor("broken").IsZero() || !d.LastSuccess().IsZero() {
		t.Error("a failed service or the whole refresh counted as a success")
	}
	if discovery.FailedServices(nil) != nil || discovery.FailedServices(errors.New("describe auto scaling groups: down")) != nil {
		t.Error("FailedServices names services for nil or a whole failure")
	}
}
