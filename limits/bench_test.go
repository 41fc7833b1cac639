package limits

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/medic-sre/medic/config"
)

// BenchmarkRefresh: one full refresh on the emulator with 50 watched
// groups and 20 pre-warmed load balancers; reports AWS calls per refresh.
func BenchmarkRefresh(b *testing.B) {
	cfg := startMoto(b)
	ctx := context.Background()
	ec := ec2.NewFromConfig(cfg)
	as := autoscaling.NewFromConfig(cfg)
	lb := elbv2.NewFromConfig(cfg)
	vpc, err := ec.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("127.0.0.0/16")})
	if err != nil {
		b.Fatal(err)
	}
	var subnets []string
	for i, az := range []string{"us-east-1a", "us-east-1b"} {
		s, err := ec.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String(fmt.Sprintf("127.0.%d.0/24", i+1)), AvailabilityZone: aws.String(az)})
		if err != nil {
			b.Fatal(err)
		}
		subnets = append(subnets, *s.Subnet.SubnetId)
	}
	if _, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("bench"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-12c6146b"), InstanceType: "t3.micro"}}); err != nil {
		b.Fatal(err)
	}
	var pw []config.PrewarmLoadBalancer
	var tgs []string
	for i := 0; i < 20; i++ {
		out, err := lb.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{Name: aws.String(fmt.Sprintf("bench-%d", i)), Subnets: subnets})
		if err != nil {
			b.Fatal(err)
		}
		arn := *out.LoadBalancers[0].LoadBalancerArn
		tg, err := lb.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{Name: aws.String(fmt.Sprintf("bench-%d", i)), Protocol: "HTTP",
			Port: aws.Int32(80), VpcId: vpc.Vpc.VpcId})
		if err != nil {
			b.Fatal(err)
		}
		tgArn := *tg.TargetGroups[0].TargetGroupArn
		if _, err := lb.CreateListener(ctx, &elbv2.CreateListenerInput{LoadBalancerArn: &arn, Protocol: "HTTP", Port: aws.Int32(80),
			DefaultActions: []elbv2types.Action{{Type: "forward", TargetGroupArn: &tgArn}}}); err != nil {
			b.Fatal(err)
		}
		tgs = append(tgs, tgArn)
		pw = append(pw, config.PrewarmLoadBalancer{Name: fmt.Sprintf("bench-%d", i), Type: "application", ARN: arn, MaxCapacityUnits: 100})
	}
	var groups []string
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("bench-%02d", i)
		if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name),
			MinSize: aws.Int32(0), MaxSize: aws.Int32(10), DesiredCapacity: aws.Int32(0), VPCZoneIdentifier: aws.String(subnets[0]),
			TargetGroupARNs: []string{tgs[i%len(tgs)]},
			LaunchTemplate:  &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("bench"), Version: aws.String("$Latest")}}); err != nil {
			b.Fatal(err)
		}
		groups = append(groups, name)
	}
	l := defaults(config.Limits{Prewarm: config.Prewarm{LoadBalancers: pw}})
	w := New(Options{Config: l, AWS: cfg, Groups: groups})
	w.RefreshOnce(ctx) // the first refresh reads 8 days of AWS/Usage history
	b.ResetTimer()
	var calls int64
	var failed int
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s := w.RefreshOnce(ctx)
		calls += s.Calls
		for _, src := range s.Sources {
			if !src.OK {
				failed++
			}
		}
	}
	b.ReportMetric(float64(calls)/float64(b.N), "aws_calls/op")
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/refresh")
	b.ReportMetric(float64(failed)/float64(b.N), "failed_sources/op")
}
