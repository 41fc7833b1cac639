package healer

// The AWS actuator against the emulator (moto) through the real SDK client,
// behind the fault proxy: that the no-retry option and the request shape
// are accepted, that a mark shows in the group and is confirmed there, the
// pre-check's skips on the group's real answers, and retries of dropped
// connections and throttling, asserted on what the emulator records (the
// instance's health) and what the proxy counted (SetInstanceHealth calls).
// The healer's full loop on the emulator is the e2e suite's.

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/go-kit/log"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
)

// motoFleet starts moto, a fault proxy in front of it and a group of n
// instances; it returns the actuator's client (through the proxy), the
// proxy, the fleet and the instances as the actuator is handed them.
func motoFleet(t *testing.T, group string, n int) (*autoscaling.Client, *emulator.FaultProxy, *emulator.Fleet, []discovery.Instance) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts moto_server")
	}
	moto := emulator.StartMotoT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fleet, err := emulator.BuildFleet(ctx, moto.Config(), emulator.FleetSpec{Group: group, AZs: []string{"us-east-1a"}, PerAZ: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	insts, err := fleet.Instances(ctx)
	if err != nil || len(insts) != n {
		t.Fatalf("fleet instances = %+v, %v; want %d", insts, err, n)
	}
	proxy, err := emulator.StartFaultProxy(moto.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	var out []discovery.Instance
	for _, in := range insts {
		out = append(out, discovery.Instance{ID: in.ID, Group: group, AZ: in.AZ,
			LifecycleState: discovery.LifecycleInService, HealthStatus: discovery.HealthHealthy})
	}
	return autoscaling.NewFromConfig(emulator.ConfigFor(proxy.URL())), proxy, fleet, out
}

func TestAWSActuatorOnMoto(t *testing.T) {
	c, proxy, fleet, insts := motoFleet(t, "healer-asg", 2)
	ctx := context.Background()
	act := NewAWSActuator(c, log.NewNopLogger(), 10*time.Second)

	victim := insts[0]
	if o := act.MarkUnhealthy(ctx, victim, "moto-1"); o.Result != ResultMarked || o.Attempts != 1 {
		t.Fatalf("mark %s = %+v, want marked after 1 attempt", victim.ID, o)
	}
	if h, err := fleet.Health(ctx, victim.ID); err != nil || h != "Unhealthy" {
		t.Errorf("%s health = %q, %v; want Unhealthy", victim.ID, h, err)
	}
	if h, err := fleet.Health(ctx, insts[1].ID); err != nil || h != "Healthy" {
		t.Errorf("bystander %s health = %q, %v; want Healthy", insts[1].ID, h, err)
	}
	// One re-read before, one confirmation after.
	if got := proxy.Count("DescribeAutoScalingInstances"); got != 2 {
		t.Errorf("DescribeAutoScalingInstances calls = %d, want 2", got)
	}

	// Marked already (the fleet view is stale): the re-read says so, nothing called.
	proxy.ResetCounts()
	if o := act.MarkUnhealthy(ctx, victim, "moto-2"); o.Result != ResultAlreadyUnhealthy || o.Attempts != 0 {
		t.Errorf("second mark of %s = %+v, want already_unhealthy, no call", victim.ID, o)
	}
	ghost := discovery.Instance{ID: "i-0123456789abcdef0", Group: "healer-asg", HealthStatus: "Healthy"}
	if o := act.MarkUnhealthy(ctx, ghost, "moto-3"); o.Result != ResultGone || o.Attempts != 0 {
		t.Errorf("mark of a made-up instance = %+v, want gone, no call", o)
	}
	if got := proxy.Count("SetInstanceHealth"); got != 0 {
		t.Errorf("SetInstanceHealth calls after the pre-checks = %d, want 0", got)
	}
}

// TestAWSActuatorSkipsStandbyOnMoto: an instance put in Standby after the
// fleet view was taken is not marked: the re-read sees it.
func TestAWSActuatorSkipsStandbyOnMoto(t *testing.T) {
	c, proxy, fleet, insts := motoFleet(t, "standby-asg", 2)
	ctx := context.Background()
	if _, err := c.EnterStandby(ctx, &autoscaling.EnterStandbyInput{
		AutoScalingGroupName: aws.String("standby-asg"), InstanceIds: []string{insts[0].ID},
		ShouldDecrementDesiredCapacity: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	proxy.ResetCounts()
	o := NewAWSActuator(c, log.NewNopLogger(), 10*time.Second).MarkUnhealthy(ctx, insts[0], "moto-standby")
	if o.Result != ResultSkipped || o.Reason != "no longer InService: Standby" || o.Attempts != 0 {
		t.Errorf("mark of a Standby instance = %+v, want skipped, no longer InService: Standby", o)
	}
	if got := proxy.Count("SetInstanceHealth"); got != 0 {
		t.Errorf("SetInstanceHealth calls = %d, want 0", got)
	}
	if h, err := fleet.Health(ctx, insts[0].ID); err != nil || h != "Healthy" {
		t.Errorf("%s health = %q, %v; want Healthy", insts[0].ID, h, err)
	}
}

// TestAWSActuatorRetriesOnMoto: dropped connections and throttling are
// retried with backoff (200 ms, growing to 2 s) and the mark lands.
func TestAWSActuatorRetriesOnMoto(t *testing.T) {
	c, proxy, fleet, insts := motoFleet(t, "retry-asg", 2)
	ctx := context.Background()
	act := NewAWSActuator(c, log.NewNopLogger(), 20*time.Second)

	// The first two SetInstanceHealth calls lose their connection before
	// reaching the emulator; the third gets through.
	var dropped atomic.Int32
	proxy.OnAction("SetInstanceHealth", func(w http.ResponseWriter, _ *http.Request) bool {
		if dropped.Add(1) <= 2 {
			emulator.DropConnection(w)
			return true
		}
		return false
	})
	start := time.Now()
	o := act.MarkUnhealthy(ctx, insts[0], "moto-drop")
	if o.Result != ResultMarked || o.Attempts != 3 {
		t.Errorf("mark through two dropped connections = %+v, want marked after 3 attempts", o)
	}
	if got := proxy.Count("SetInstanceHealth"); got != 3 {
		t.Errorf("SetInstanceHealth calls counted by the proxy = %d, want 3", got)
	}
	if h, err := fleet.Health(ctx, insts[0].ID); err != nil || h != "Unhealthy" {
		t.Errorf("%s health = %q, %v; want Unhealthy", insts[0].ID, h, err)
	}
	t.Logf("marked through 2 dropped connections in %s", time.Since(start))
	proxy.OnAction("SetInstanceHealth", nil)

	// Every other call throttled, describes and marks alike.
	proxy.ResetCounts()
	proxy.ThrottleFraction(0.5)
	o = act.MarkUnhealthy(ctx, insts[1], "moto-throttle")
	if o.Result != ResultMarked {
		t.Errorf("mark under throttling = %+v, want marked", o)
	}
	if proxy.Throttled() == 0 {
		t.Error("the proxy throttled nothing")
	}
	if h, err := fleet.Health(ctx, insts[1].ID); err != nil || h != "Unhealthy" {
		t.Errorf("%s health = %q, %v; want Unhealthy", insts[1].ID, h, err)
	}
}
