package discovery_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/awsapi"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
)

// elbVia is an elbv2 client reaching moto through p, without retries.
func elbVia(p *emulator.FaultProxy) *elbv2.Client {
	cfg := emulator.ConfigFor(p.URL())
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	return elbv2.NewFromConfig(cfg)
}

// targetGroup creates, in moto, an instance target group in f's VPC on
// the fleet's app port, attaches it to f's group (moto registers the
// group's instances in it) and returns its ARN.
func targetGroup(t *testing.T, f *emulator.Fleet, name string) string {
	t.Helper()
	ctx := testkit.Context(t)
	port := f.AppPort()
	if port == 0 {
		var err error
		if port, err = f.StartApps(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	out, err := elbv2.NewFromConfig(moto.Config()).CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{
		Name:       aws.String(name),
		Protocol:   elbv2types.ProtocolEnumHttp,
		Port:       aws.Int32(int32(port)),
		VpcId:      aws.String(f.VPCID),
		TargetType: elbv2types.TargetTypeEnumInstance,
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.TargetGroups[0].TargetGroupArn)
	attach(t, f.Spec.Group, arn)
	return arn
}

func attach(t *testing.T, group string, arns ...string) {
	t.Helper()
	if _, err := autoscaling.NewFromConfig(moto.Config()).AttachLoadBalancerTargetGroups(testkit.Context(t),
		&autoscaling.AttachLoadBalancerTargetGroupsInput{AutoScalingGroupName: aws.String(group), TargetGroupARNs: arns}); err != nil {
		t.Fatal(err)
	}
}

func lb(tg, state, reason string) discovery.TargetHealth {
	return discovery.TargetHealth{TargetGroup: tg, State: state, Reason: reason}
}

// TestRefreshReadsTargetHealthOnMoto: one DescribeTargetHealth per distinct
// target group, whatever the number of groups and instances, and each
// instance gets what moto reports. moto 5.2.1 runs no health checks: it
// reports every registered running instance "healthy" with no reason code,
// loopback IP or not, and that is what is asserted.
func TestRefreshReadsTargetHealthOnMoto(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	a := build(t, emulator.FleetSpec{Group: "lb-a", PerAZ: 1})
	build(t, emulator.FleetSpec{Group: "lb-b", AZs: []string{"us-east-1c"}, PerAZ: 2})
	build(t, emulator.FleetSpec{Group: "lb-none", AZs: []string{"us-east-1a"}, PerAZ: 1})
	shared := targetGroup(t, a, "lb-shared")
	attach(t, "lb-b", shared)
	targetGroup(t, a, "lb-a-admin")

	p, asg, ec := proxied(t)
	reg := prometheus.NewPedanticRegistry()
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec, ELB: elbVia(p), Registerer: reg})
	services := []config.Service{
		{Name: "api", AutoScalingGroups: []string{"lb-a", "lb-b"}},
		{Name: "b-too", AutoScalingGroups: []string{"lb-b"}},
		{Name: "plain", AutoScalingGroups: []string{"lb-none"}},
	}
	snaps, err := d.Refresh(ctx, services)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"DescribeAutoScalingGroups": 1, "DescribeInstances": 1, "DescribeTargetHealth": 2,
		"DescribeInstanceRefreshes": 3} // the first refresh asks each group once
	if got := p.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("AWS calls per refresh = %v, want %v (one DescribeTargetHealth per distinct target group)", got, want)
	}
	wantLB := map[string][]discovery.TargetHealth{
		"lb-a":    {lb("lb-shared", "healthy", ""), lb("lb-a-admin", "healthy", "")},
		"lb-b":    {lb("lb-shared", "healthy", "")},
		"lb-none": nil,
	}
	n := 0
	for _, s := range snaps {
		for _, in := range s.Instances {
			n++
			if !reflect.DeepEqual(in.LBHealth, wantLB[in.Group]) {
				t.Errorf("%s/%s in %s: LBHealth %+v, want %+v", s.Service, in.ID, in.Group, in.LBHealth, wantLB[in.Group])
			}
		}
	}
	if n != 2+2+2+1 {
		t.Errorf("%d instances over the snapshots, want 7", n)
	}

	// A group without a target group costs no DescribeTargetHealth.
	p.ResetCounts()
	if _, err := d.Refresh(ctx, services[2:]); err != nil {
		t.Fatal(err)
	}
	if got := p.Counts(); len(got) != 2 || got["DescribeAutoScalingGroups"] != 1 || got["DescribeInstances"] != 1 {
		t.Errorf("AWS calls per refresh without target groups = %v, want 2", got)
	}

	// One target group's call fails on the wire: counted by the AWS call
	// metrics, the refresh still succeeds, and the fleet is whole, without
	// that target group's view.
	calls := awsapi.NewMetrics(reg)
	cfg := emulator.ConfigFor(p.URL())
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	cfg.APIOptions = append(cfg.APIOptions, calls.AddMiddleware)
	d = discovery.New(discovery.Options{ASG: asg, EC2: ec, ELB: elbv2.NewFromConfig(cfg)})
	p.OnAction("DescribeTargetHealth", func(w http.ResponseWriter, r *http.Request) bool {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		v, _ := url.ParseQuery(string(body))
		if v.Get("TargetGroupArn") != shared {
			return false
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
		return true
	})
	t.Cleanup(func() { p.OnAction("DescribeTargetHealth", nil) })
	snaps, err = d.Refresh(ctx, services)
	if err != nil {
		t.Fatalf("a failing DescribeTargetHealth failed the refresh: %v", err)
	}
	if d.LastSuccess().IsZero() {
		t.Error("a failing DescribeTargetHealth kept LastSuccess from moving")
	}
	wantLB = map[string][]discovery.TargetHealth{
		"lb-a": {lb("lb-a-admin", "healthy", "")}, "lb-b": nil, "lb-none": nil,
	}
	for _, s := range snaps {
		for _, in := range s.Instances {
			if !in.PrivateIP.IsValid() || in.LaunchTime.IsZero() {
				t.Errorf("%s/%s: fleet not whole: %+v", s.Service, in.ID, in)
			}
			if !reflect.DeepEqual(in.LBHealth, wantLB[in.Group]) {
				t.Errorf("after the failure, %s/%s in %s: LBHealth %+v, want %+v", s.Service, in.ID, in.Group, in.LBHealth, wantLB[in.Group])
			}
		}
	}
	if len(snaps) != 3 || len(snaps["api"].Instances) != 4 {
		t.Errorf("snapshots after the failure: %d services, api with %d instances", len(snaps), len(snaps["api"].Instances))
	}
	wantMetrics := `
# HELP medic_aws_api_calls_total AWS API calls, each attempt counted, by service (the SDK's service id), operation and result (success, throttled, error).
# TYPE medic_aws_api_calls_total counter
medic_aws_api_calls_total{operation="DescribeTargetHealth",result="error",service="Elastic Load Balancing v2"} 1
medic_aws_api_calls_total{operation="DescribeTargetHealth",result="success",service="Elastic Load Balancing v2"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantMetrics), "medic_aws_api_calls_total"); err != nil {
		t.Error(err)
	}
}

// fakeTargetHealth is a small in-memory fake of DescribeTargetHealth,
// because moto reports every registered target healthy and never gives a
// reason code: it answers, per target group ARN, the descriptions or the
// error it holds, and records the calls.
type fakeTargetHealth struct {
	mu    sync.Mutex
	descs map[string][]elbv2types.TargetHealthDescription
	errs  map[string]error
	calls []*elbv2.DescribeTargetHealthInput
}

func (f *fakeTargetHealth) DescribeTargetHealth(_ context.Context, in *elbv2.DescribeTargetHealthInput,
	_ ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	arn := aws.ToString(in.TargetGroupArn)
	if err := f.errs[arn]; err != nil {
		return nil, err
	}
	descs, ok := f.descs[arn]
	if !ok {
		return nil, errors.New("TargetGroupNotFound: " + arn)
	}
	return &elbv2.DescribeTargetHealthOutput{TargetHealthDescriptions: descs}, nil
}

func desc(id string, port int32, state elbv2types.TargetHealthStateEnum, reason elbv2types.TargetHealthReasonEnum) elbv2types.TargetHealthDescription {
	return elbv2types.TargetHealthDescription{
		Target:       &elbv2types.TargetDescription{Id: aws.String(id), Port: aws.Int32(port)},
		TargetHealth: &elbv2types.TargetHealth{State: state, Reason: reason},
	}
}

// TestRefreshMapsTargetHealth: the groups and instances come from moto, the
// target groups' answers from fakeTargetHealth. Each row says what each
// target group answers for the fleet's two instances, by index.
func TestRefreshMapsTargetHealth(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	f := build(t, emulator.FleetSpec{Group: "lb-map", PerAZ: 1})
	web := targetGroup(t, f, "lb-map-web")
	admin := targetGroup(t, f, "lb-map-admin")
	insts, err := f.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id0, id1 := insts[0].ID, insts[1].ID
	_, asg, ec := proxied(t)
	services := []config.Service{{Name: "s", AutoScalingGroups: []string{"lb-map"}}}
	throttled := errors.New("Throttling: Rate exceeded")

	for _, tc := range []struct {
		desc  string
		descs map[string][]elbv2types.TargetHealthDescription
		errs  map[string]error
		want  [2][]discovery.TargetHealth // by instance index
	}{
		{desc: "unhealthy with its reason; healthy in the other target group, in the group's order",
			descs: map[string][]elbv2types.TargetHealthDescription{
				web:   {desc(id0, 8080, "unhealthy", "Target.ResponseCodeMismatch"), desc(id1, 8080, "healthy", "")},
				admin: {desc(id1, 9090, "healthy", ""), desc(id0, 9090, "healthy", "")},
			},
			want: [2][]discovery.TargetHealth{
				{lb("lb-map-web", "unhealthy", "Target.ResponseCodeMismatch"), lb("lb-map-admin", "healthy", "")},
				{lb("lb-map-web", "healthy", ""), lb("lb-map-admin", "healthy", "")},
			}},
		{desc: "every other state passes through verbatim",
			descs: map[string][]elbv2types.TargetHealthDescription{
				web:   {desc(id0, 8080, "initial", "Elb.RegistrationInProgress"), desc(id1, 8080, "draining", "Target.DeregistrationInProgress")},
				admin: {desc(id0, 9090, "unused", "Target.NotInUse"), desc(id1, 9090, "unavailable", "Target.HealthCheckDisabled")},
			},
			want: [2][]discovery.TargetHealth{
				{lb("lb-map-web", "initial", "Elb.RegistrationInProgress"), lb("lb-map-admin", "unused", "Target.NotInUse")},
				{lb("lb-map-web", "draining", "Target.DeregistrationInProgress"), lb("lb-map-admin", "unavailable", "Target.HealthCheckDisabled")},
			}},
		{desc: "registered on two ports: one entry each; not listed: no entry; other targets ignored",
			descs: map[string][]elbv2types.TargetHealthDescription{
				web: {desc(id0, 8080, "healthy", ""), desc(id0, 8081, "unhealthy", "Target.Timeout"),
					desc("127.0.9.9", 8080, "healthy", ""), {Target: &elbv2types.TargetDescription{Id: aws.String(id1)}}},
				admin: {},
			},
			want: [2][]discovery.TargetHealth{
				{lb("lb-map-web", "healthy", ""), lb("lb-map-web", "unhealthy", "Target.Timeout")},
				nil,
			}},
		{desc: "one target group's call fails: its view is missing, the other's is there",
			descs: map[string][]elbv2types.TargetHealthDescription{
				admin: {desc(id0, 9090, "unhealthy", "Target.FailedHealthChecks"), desc(id1, 9090, "healthy", "")},
			},
			errs: map[string]error{web: throttled},
			want: [2][]discovery.TargetHealth{
				{lb("lb-map-admin", "unhealthy", "Target.FailedHealthChecks")},
				{lb("lb-map-admin", "healthy", "")},
			}},
		{desc: "every call fails: no view, the fleet still whole",
			errs: map[string]error{web: throttled, admin: throttled},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fake := &fakeTargetHealth{descs: tc.descs, errs: tc.errs}
			var logs bytes.Buffer
			d := discovery.New(discovery.Options{ASG: asg, EC2: ec, ELB: fake, Logger: log.NewLogfmtLogger(log.NewSyncWriter(&logs))})
			snaps, err := d.Refresh(ctx, services)
			if err != nil || d.LastSuccess().IsZero() {
				t.Fatalf("refresh: %v (LastSuccess %v); the load balancers' view must never fail it", err, d.LastSuccess())
			}
			got := snaps["s"].Instances
			if len(got) != 2 {
				t.Fatalf("instances: %+v", got)
			}
			for _, in := range got {
				i := 0
				if in.ID == id1 {
					i = 1
				}
				if !in.PrivateIP.IsValid() || in.LaunchTime.IsZero() || in.LifecycleState != "InService" {
					t.Errorf("%s: fleet not whole: %+v", in.ID, in)
				}
				if !reflect.DeepEqual(in.LBHealth, tc.want[i]) {
					t.Errorf("%s: LBHealth %+v, want %+v", in.ID, in.LBHealth, tc.want[i])
				}
			}
			for arn := range tc.errs {
				line := `msg="cannot read target health; its instances show no load balancer view" target_group=` + discovery.TargetGroupName(arn)
				if !strings.Contains(logs.String(), line) {
					t.Errorf("the failure of %s is not logged; logs:\n%s", arn, logs.String())
				}
			}
			// One call per target group, for all its registered targets.
			if len(fake.calls) != 2 {
				t.Errorf("%d DescribeTargetHealth calls, want 2", len(fake.calls))
			}
			for _, c := range fake.calls {
				if len(c.Targets) != 0 || (aws.ToString(c.TargetGroupArn) != web && aws.ToString(c.TargetGroupArn) != admin) {
					t.Errorf("call %+v, want one per target group ARN, without Targets", c)
				}
			}
		})
	}
}

func TestTargetGroupName(t *testing.T) {
	for _, tc := range []struct{ desc, arn, want string }{
		{"an ARN", "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/50dc6c495c0c9188", "web-tg"},
		{"another partition", "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:targetgroup/a/1", "a"},
		{"not a target group ARN: kept whole", "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1", "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1"},
		{"empty name: kept whole", "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup//1", "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup//1"},
		{"empty", "", ""},
	} {
		if got := discovery.TargetGroupName(tc.arn); got != tc.want {
			t.Errorf("%s: TargetGroupName(%q) = %q, want %q", tc.desc, tc.arn, got, tc.want)
		}
	}
}
