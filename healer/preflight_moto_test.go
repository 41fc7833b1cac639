package healer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/medic-sre/medic/internal/emulator"
)

// TestPreflightReaderOnMoto reads a group's pre-flight facts from the
// emulator through the real SDK clients, then: with 1 vCPU of quota left the
// replacement of a t3.micro (2 vCPUs) is refused naming the quota; once the
// group's image is deregistered, that is refused too.
func TestPreflightReaderOnMoto(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto_server")
	}
	moto := emulator.StartMotoT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fleet, err := emulator.BuildFleet(ctx, moto.Config(), emulator.FleetSpec{Group: "preflight-asg", AZs: []string{"us-east-1a", "us-east-1b"}, PerAZ: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	ec2c := ec2.NewFromConfig(moto.Config())
	r := PreflightReader{EC2: ec2c, ASG: autoscaling.NewFromConfig(moto.Config()),
		ClassOf: func(string) string { return "standard" }}

	in, err := r.Read(ctx, "preflight-asg")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Types) != 1 || in.Types[0] != (LaunchType{InstanceType: emulator.InstanceType, VCPUs: 2, QuotaClass: "standard"}) {
		t.Errorf("types %+v", in.Types)
	}
	if tc := in.Template; !tc.Checked || !tc.VersionExists || tc.ImageID != emulator.ImageID || !tc.ImageExists || tc.Name != fleet.LaunchTemplate {
		t.Errorf("template %+v", tc)
	}
	if len(in.Subnets) != 2 || in.Subnets[0].Free <= 0 || in.Purchase != OnDemand {
		t.Errorf("subnets %+v, purchase %s", in.Subnets, in.Purchase)
	}

	in.Now = time.Now()
	in.VCPU = map[string]VCPUHeadroom{"standard": {Name: VCPUQuotaNames["standard"], Left: 1, Known: true}}
	res := Preflight(in)
	want := "the On-Demand Standard vCPU quota has 1 vCPU left; a replacement needs 2 vCPUs (t3.micro)"
	if res.Allowed || len(res.Refusals) != 1 || res.Refusals[0].Detail != want {
		t.Errorf("with 1 vCPU left: %+v\nwant %q", res, want)
	}

	if _, err := ec2c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(emulator.ImageID)}); err != nil {
		t.Fatal(err)
	}
	in, err = r.Read(ctx, "preflight-asg")
	if err != nil {
		t.Fatal(err)
	}
	in.Now = time.Now()
	res = Preflight(in)
	if res.Allowed || !strings.Contains(res.Summary(), "image "+emulator.ImageID+" of launch template") {
		t.Errorf("after deregistering the image: %s", res.Summary())
	}
}

func TestGroupTemplateAndPurchase(t *testing.T) {
	spec := &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web-lt"), Version: aws.String("3")}
	mixed := func(base, pct int32, types ...string) astypes.AutoScalingGroup {
		var ov []astypes.LaunchTemplateOverrides
		for _, ty := range types {
			ov = append(ov, astypes.LaunchTemplateOverrides{InstanceType: aws.String(ty)})
		}
		return astypes.AutoScalingGroup{MixedInstancesPolicy: &astypes.MixedInstancesPolicy{
			LaunchTemplate:        &astypes.LaunchTemplate{LaunchTemplateSpecification: spec, Overrides: ov},
			InstancesDistribution: &astypes.InstancesDistribution{OnDemandBaseCapacity: aws.Int32(base), OnDemandPercentageAboveBaseCapacity: aws.Int32(pct)},
		}}
	}
	tests := []struct {
		desc     string
		g        astypes.AutoScalingGroup
		template bool
		types    string
		purchase PurchaseOption
	}{
		{"plain launch template", astypes.AutoScalingGroup{LaunchTemplate: spec}, true, "", OnDemand},
		{"launch configuration: no template", astypes.AutoScalingGroup{LaunchConfigurationName: aws.String("lc")}, false, "", OnDemand},
		{"mixed, all Spot", mixed(0, 0, "m5.large", "m5a.large", "m5.large"), true, "m5.large,m5a.large", Spot},
		{"mixed, an On-Demand base", mixed(1, 0, "m5.large"), true, "m5.large", OnDemand},
		{"mixed, half On-Demand above base", mixed(0, 50, "c5.large"), true, "c5.large", OnDemand},
	}
	for _, tt := range tests {
		lt, types := groupTemplate(tt.g)
		if (lt != nil) != tt.template || strings.Join(types, ",") != tt.types || purchaseOf(tt.g) != tt.purchase {
			t.Errorf("%s: template %v, types %v, purchase %s", tt.desc, lt, types, purchaseOf(tt.g))
		}
	}
}
