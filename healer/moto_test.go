package healer

// A smoke test of the AWS actuator against the emulator (moto), through the
// real SDK client: that the one-call option and the request shape are
// accepted, that a mark shows in the group, and what the emulator answers
// for an instance that does not exist. The healer's full loop on the
// emulator is the e2e suite's.

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/go-kit/log"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
)

func TestAWSActuatorOnMoto(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto_server")
	}
	moto := emulator.StartMotoT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fleet, err := emulator.BuildFleet(ctx, moto.Config(), emulator.FleetSpec{Group: "healer-asg", AZs: []string{"us-east-1a"}, PerAZ: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	insts, err := fleet.Instances(ctx)
	if err != nil || len(insts) != 2 {
		t.Fatalf("fleet instances = %+v, %v; want 2", insts, err)
	}

	act := NewAWSActuator(autoscaling.NewFromConfig(moto.Config()), log.NewNopLogger(), 10*time.Second)
	victim := discovery.Instance{ID: insts[0].ID, Group: "healer-asg", AZ: insts[0].AZ, LifecycleState: "InService", HealthStatus: "Healthy"}
	if o := act.MarkUnhealthy(ctx, victim, "moto-1"); o.Result != ResultMarked || o.Attempts != 1 {
		t.Fatalf("mark %s = %+v, want marked after 1 attempt", victim.ID, o)
	}
	if h, err := fleet.Health(ctx, victim.ID); err != nil || h != "Unhealthy" {
		t.Errorf("%s health = %q, %v; want Unhealthy", victim.ID, h, err)
	}
	if h, err := fleet.Health(ctx, insts[1].ID); err != nil || h != "Healthy" {
		t.Errorf("bystander %s health = %q, %v; want Healthy", insts[1].ID, h, err)
	}

	ghost := discovery.Instance{ID: "i-0123456789abcdef0", Group: "healer-asg", HealthStatus: "Healthy"}
	if o := act.MarkUnhealthy(ctx, ghost, "moto-2"); o.Result != ResultGone || o.Attempts != 1 {
		t.Errorf("mark of a made-up instance = %+v, want gone after 1 attempt", o)
	}
}
