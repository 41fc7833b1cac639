package awsapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/awsapi"
	"github.com/medic-sre/medic/internal/emulator"
)

// setEnv points the SDK at endpoint with moto's dummy credentials.
func setEnv(t *testing.T, endpoint string) {
	for _, kv := range emulator.EnvFor(endpoint) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_MAX_ATTEMPTS", "")
	t.Setenv("AWS_RETRY_MODE", "")
}

func TestLoadConfigReachesEndpointAndCountsCalls(t *testing.T) {
	m := emulator.StartMotoT(t)
	setEnv(t, m.URL())
	reg := prometheus.NewPedanticRegistry()
	ctx := testkit.Context(t)

	cfg, id, err := awsapi.LoadConfig(ctx, awsapi.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != emulator.Region || id != (awsapi.Identity{}) {
		t.Errorf("region %q identity %+v; want %s and an empty identity", cfg.Region, id, emulator.Region)
	}
	if _, err := autoscaling.NewFromConfig(cfg).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
		t.Fatalf("autoscaling through AWS_ENDPOINT_URL: %v", err)
	}
	if _, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("ec2 through AWS_ENDPOINT_URL: %v", err)
	}
	// moto answers SetInstanceHealth on a missing instance with an error.
	_, err = autoscaling.NewFromConfig(cfg).SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
		InstanceId: aws.String("i-00000000000000000"), HealthStatus: aws.String("Unhealthy"),
	}, awsapi.NoRetry)
	if err == nil {
		t.Fatal("SetInstanceHealth on a missing instance succeeded")
	}
	want := `
# HELP medic_aws_api_calls_total AWS API calls, each attempt counted, by service (the SDK's service id), operation and result (success, throttled, error).
# TYPE medic_aws_api_calls_total counter
medic_aws_api_calls_total{operation="DescribeAutoScalingGroups",result="success",service="Auto Scaling"} 1
medic_aws_api_calls_total{operation="DescribeInstances",result="success",service="EC2"} 1
medic_aws_api_calls_total{operation="SetInstanceHealth",result="error",service="Auto Scaling"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "medic_aws_api_calls_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "medic_aws_api_call_duration_seconds"); n != 3 {
		t.Errorf("duration series = %d, want 3", n)
	}

	// A second config on the same registry shares the series.
	if _, _, err := awsapi.LoadConfig(ctx, awsapi.Options{Registerer: reg}); err != nil {
		t.Fatalf("second LoadConfig on one registry: %v", err)
	}

	// One operation name in two services makes two series. (moto answers
	// Auto Scaling's DescribeAccountLimits with a 500: the result does not
	// matter here, only that each service has its series.)
	_, _ = autoscaling.NewFromConfig(cfg).DescribeAccountLimits(ctx, &autoscaling.DescribeAccountLimitsInput{}, awsapi.NoRetry)
	_, _ = elasticloadbalancingv2.NewFromConfig(cfg).DescribeAccountLimits(ctx, &elasticloadbalancingv2.DescribeAccountLimitsInput{},
		func(o *elasticloadbalancingv2.Options) { o.RetryMaxAttempts = 1 })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "medic_aws_api_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["operation"] == "DescribeAccountLimits" {
				services[l["service"]] = true
			}
		}
	}
	if !services["Auto Scaling"] || !services["Elastic Load Balancing v2"] || len(services) != 2 {
		t.Errorf("DescribeAccountLimits series by service = %v, want Auto Scaling and Elastic Load Balancing v2", services)
	}
}

func TestLoadConfigRegion(t *testing.T) {
	setEnv(t, "http://127.0.0.1:1")
	ctx := testkit.Context(t)

	cfg, _, err := awsapi.LoadConfig(ctx, awsapi.Options{Region: "eu-west-1"})
	if err != nil || cfg.Region != "eu-west-1" {
		t.Errorf("Options.Region: got %q, %v; want eu-west-1", cfg.Region, err)
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "ap-south-1")
	cfg, _, err = awsapi.LoadConfig(ctx, awsapi.Options{})
	if err != nil || cfg.Region != "ap-south-1" {
		t.Errorf("AWS_DEFAULT_REGION: got %q, %v; want ap-south-1", cfg.Region, err)
	}
	t.Setenv("AWS_DEFAULT_REGION", "")
	if _, _, err := awsapi.LoadConfig(ctx, awsapi.Options{}); err == nil {
		t.Errorf("no region anywhere and metadata disabled: want an error")
	}
}

// fakeIMDS answers IMDSv2 on loopback like the EC2 metadata service.
func fakeIMDS(t *testing.T, hang bool) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			if r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			_, _ = w.Write([]byte("tok"))
		case r.Method == http.MethodGet && r.URL.Path == "/latest/dynamic/instance-identity/document":
			if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "tok" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			_, _ = w.Write([]byte(`{"region":"eu-central-1","availabilityZone":"eu-central-1b","instanceId":"i-0123456789abcdef0"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func TestIdentityFromIMDSv2(t *testing.T) {
	setEnv(t, "http://127.0.0.1:1")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakeIMDS(t, false).URL)

	cfg, id, err := awsapi.LoadConfig(testkit.Context(t), awsapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := awsapi.Identity{Region: "eu-central-1", AZ: "eu-central-1b", InstanceID: "i-0123456789abcdef0"}
	if id != want || cfg.Region != "eu-central-1" {
		t.Errorf("identity %+v region %q; want %+v and the region from metadata", id, cfg.Region, want)
	}

	// The environment's region wins over metadata; the identity stays.
	t.Setenv("AWS_REGION", "us-west-2")
	cfg, id, err = awsapi.LoadConfig(testkit.Context(t), awsapi.Options{})
	if err != nil || cfg.Region != "us-west-2" || id != want {
		t.Errorf("got region %q identity %+v err %v", cfg.Region, id, err)
	}
}

func TestIdentityTimeoutIsNotAnError(t *testing.T) {
	setEnv(t, "http://127.0.0.1:1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakeIMDS(t, true).URL)

	start := time.Now()
	cfg, id, err := awsapi.LoadConfig(testkit.Context(t), awsapi.Options{})
	if err != nil || id != (awsapi.Identity{}) || cfg.Region != emulator.Region {
		t.Errorf("got region %q identity %+v err %v", cfg.Region, id, err)
	}
	if d := time.Since(start); d > awsapi.IdentityTimeout+2*time.Second {
		t.Errorf("LoadConfig took %v with a hanging metadata service", d)
	}
}

func TestThrottlingCountedPerAttempt(t *testing.T) {
	m := emulator.StartMotoT(t)
	p, err := emulator.StartFaultProxy(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	setEnv(t, p.URL())
	reg := prometheus.NewPedanticRegistry()
	ctx := testkit.Context(t)
	cfg, _, err := awsapi.LoadConfig(ctx, awsapi.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	asg := autoscaling.NewFromConfig(cfg)

	// Every 2nd call is throttled: call 1 passes, call 2 is throttled and
	// the SDK's retryer makes it again as call 3, which passes.
	p.ThrottleFraction(0.5)
	for range 2 {
		if _, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
			t.Fatalf("read call with SDK retries: %v", err)
		}
	}
	if got := p.Count("DescribeAutoScalingGroups"); got != 3 {
		t.Errorf("proxy saw %d DescribeAutoScalingGroups, want 3", got)
	}

	// NoRetry: one attempt, the throttling error reaches the caller.
	p.ThrottleFraction(1)
	_, err = asg.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
		InstanceId: aws.String("i-00000000000000000"), HealthStatus: aws.String("Unhealthy"),
	}, awsapi.NoRetry)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "Throttling" {
		t.Errorf("SetInstanceHealth error = %v, want Throttling", err)
	}
	if got := p.Count("SetInstanceHealth"); got != 1 {
		t.Errorf("proxy saw %d SetInstanceHealth, want exactly 1 (no SDK retries)", got)
	}

	want := `
# HELP medic_aws_api_calls_total AWS API calls, each attempt counted, by service (the SDK's service id), operation and result (success, throttled, error).
# TYPE medic_aws_api_calls_total counter
medic_aws_api_calls_total{operation="DescribeAutoScalingGroups",result="success",service="Auto Scaling"} 2
medic_aws_api_calls_total{operation="DescribeAutoScalingGroups",result="throttled",service="Auto Scaling"} 1
medic_aws_api_calls_total{operation="SetInstanceHealth",result="throttled",service="Auto Scaling"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "medic_aws_api_calls_total"); err != nil {
		t.Error(err)
	}
}
