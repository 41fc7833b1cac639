package discovery_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
)

var moto *emulator.Moto

func TestMain(m *testing.M) { emulator.MainWithMoto(m, &moto) }

// proxied returns clients that reach moto through a fault proxy, so the
// test can count calls per refresh.
func proxied(t *testing.T) (*emulator.FaultProxy, *autoscaling.Client, *ec2.Client) {
	p, cfg := emulator.FaultProxyT(t, moto.URL())
	return p, autoscaling.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
}

func build(t *testing.T, spec emulator.FleetSpec) *emulator.Fleet {
	t.Helper()
	f, err := emulator.BuildFleet(testkit.Context(t), moto.Config(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func ipsOf(t *testing.T, fleets ...*emulator.Fleet) map[string]netip.Addr {
	t.Helper()
	out := map[string]netip.Addr{}
	for _, f := range fleets {
		insts, err := f.Instances(testkit.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			out[in.ID] = in.IP
		}
	}
	return out
}

func TestRefreshReadsFleetsInTwoCalls(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	a := build(t, emulator.FleetSpec{Group: "two-calls-a", PerAZ: 2, GracePeriod: 45 * time.Second})
	b := build(t, emulator.FleetSpec{Group: "two-calls-b", AZs: []string{"us-east-1c"}, PerAZ: 1})
	w := build(t, emulator.FleetSpec{Group: "two-calls-web", PerAZ: 3})
	p, asg, ec := proxied(t)
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	// With an ELB client: these groups have no target group, so no
	// DescribeTargetHealth (TestRefreshReadsTargetHealthOnMoto has some).
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec, ELB: elbVia(p), Now: clk.Now})

	services := []config.Service{
		{Name: "api", AutoScalingGroups: []string{"two-calls-a", "two-calls-b"}},
		{Name: "web", AutoScalingGroups: []string{"two-calls-web"}},
		{Name: "shared", AutoScalingGroups: []string{"two-calls-web"}},
		{Name: "static-only"},
	}
	snaps, err := d.Refresh(ctx, services)
	if err != nil {
		t.Fatal(err)
	}
	// The first refresh also asks each group for an instance refresh in
	// progress; later ones within InstanceRefreshEvery make the two calls.
	if got := p.Counts(); len(got) != 3 || got["DescribeAutoScalingGroups"] != 1 || got["DescribeInstances"] != 1 ||
		got["DescribeInstanceRefreshes"] != 3 {
		t.Errorf("AWS calls of the first refresh = %v, want one DescribeAutoScalingGroups, one DescribeInstances and one DescribeInstanceRefreshes per group (3)", got)
	}
	p.ResetCounts()
	if _, err := d.Refresh(ctx, services); err != nil {
		t.Fatal(err)
	}
	if got := p.Counts(); len(got) != 2 || got["DescribeAutoScalingGroups"] != 1 || got["DescribeInstances"] != 1 {
		t.Errorf("AWS calls per later refresh = %v, want one DescribeAutoScalingGroups and one DescribeInstances", got)
	}
	if len(snaps) != 4 {
		t.Fatalf("got %d snapshots, want 4", len(snaps))
	}

	api := snaps["api"]
	if len(api.Groups) != 2 || api.Groups[0].Name != "two-calls-a" || api.Groups[1].Name != "two-calls-b" {
		t.Fatalf("api groups = %+v", api.Groups)
	}
	if g := api.Groups[0]; g.GracePeriod != 45*time.Second || g.Min != 0 || g.Max != 8 || g.Desired != 4 {
		t.Errorf("group a = %+v, want grace 45s, min 0, max 8, desired 4", g)
	}
	if len(api.Instances) != 5 || !api.At.Equal(clk.Now()) {
		t.Errorf("api: %d instances at %v, want 5 at %v", len(api.Instances), api.At, clk.Now())
	}
	want := ipsOf(t, a, b, w)
	for _, s := range []discovery.Snapshot{snaps["api"], snaps["web"], snaps["shared"]} {
		for _, in := range s.Instances {
			if !in.PrivateIP.IsValid() || in.PrivateIP != want[in.ID] {
				t.Errorf("%s/%s: IP %v, want %v", s.Service, in.ID, in.PrivateIP, want[in.ID])
			}
			if in.LaunchTime.IsZero() || in.AZ == "" || in.LifecycleState != "InService" || in.HealthStatus != "Healthy" || in.LBHealth != nil {
				t.Errorf("%s/%s: incomplete %+v", s.Service, in.ID, in)
			}
		}
	}
	if len(snaps["web"].Instances) != 6 || len(snaps["shared"].Instances) != 6 {
		t.Errorf("web/shared: %d/%d instances, want 6 each", len(snaps["web"].Instances), len(snaps["shared"].Instances))
	}
	if s := snaps["static-only"]; len(s.Groups) != 0 || len(s.Instances) != 0 {
		t.Errorf("static-only: %+v", s)
	}
	if !d.LastSuccess().Equal(clk.Now()) {
		t.Errorf("LastSuccess = %v", d.LastSuccess())
	}
}

func TestRefreshMissingGroupIsPartial(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	build(t, emulator.FleetSpec{Group: "partial-ok", AZs: []string{"us-east-1a"}, PerAZ: 1})
	_, asg, ec := proxied(t)
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	reg := prometheus.NewPedanticRegistry()
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec, Now: clk.Now, Registerer: reg})

	clk.Set(clk.Now().Add(10 * time.Second))
	snaps, err := d.Refresh(ctx, []config.Service{
		{Name: "fine", AutoScalingGroups: []string{"partial-ok"}},
		{Name: "broken", AutoScalingGroups: []string{"partial-ok", "partial-gone"}},
	})
	if len(snaps) != 1 || len(snaps["fine"].Instances) != 1 {
		t.Errorf("snapshots = %+v, want only fine's", snaps)
	}
	var se *discovery.ServiceError
	if !errors.Is(err, discovery.ErrGroupNotFound) || !errors.As(err, &se) || se.Service != "broken" || se.Group != "partial-gone" {
		t.Errorf("err = %v, want ServiceError{broken, partial-gone, ErrGroupNotFound}", err)
	}
	if !d.LastSuccess().IsZero() {
		t.Errorf("a partial refresh moved LastSuccess to %v", d.LastSuccess())
	}
	// Never a whole read: age counts from New.
	wantMetrics := `
# HELP medic_discovery_age_seconds DEPRECATED, removed in the next release: use time() - medic_discovery_last_success_timestamp_seconds. Seconds since the fleet was last read whole (since start if never).
# TYPE medic_discovery_age_seconds gauge
medic_discovery_age_seconds 10
# HELP medic_discovery_last_success_timestamp_seconds When the fleet was last read whole (Unix seconds; 0 if never).
# TYPE medic_discovery_last_success_timestamp_seconds gauge
medic_discovery_last_success_timestamp_seconds 0
# HELP medic_discovery_refreshes_total Fleet refreshes by result: success when every service's fleet was read whole, failure otherwise.
# TYPE medic_discovery_refreshes_total counter
medic_discovery_refreshes_total{result="failure"} 1
medic_discovery_refreshes_total{result="success"} 0
`
	names := []string{"medic_discovery_age_seconds", "medic_discovery_last_success_timestamp_seconds", "medic_discovery_refreshes_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantMetrics), names...); err != nil {
		t.Error(err)
	}

	if _, err := d.Refresh(ctx, []config.Service{{Name: "fine", AutoScalingGroups: []string{"partial-ok"}}}); err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(7 * time.Second))
	wantMetrics = `
# HELP medic_discovery_age_seconds DEPRECATED, removed in the next release: use time() - medic_discovery_last_success_timestamp_seconds. Seconds since the fleet was last read whole (since start if never).
# TYPE medic_discovery_age_seconds gauge
medic_discovery_age_seconds 7
# HELP medic_discovery_last_success_timestamp_seconds When the fleet was last read whole (Unix seconds; 0 if never).
# TYPE medic_discovery_last_success_timestamp_seconds gauge
medic_discovery_last_success_timestamp_seconds 1.70000001e+09
# HELP medic_discovery_refreshes_total Fleet refreshes by result: success when every service's fleet was read whole, failure otherwise.
# TYPE medic_discovery_refreshes_total counter
medic_discovery_refreshes_total{result="failure"} 1
medic_discovery_refreshes_total{result="success"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantMetrics), names...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "medic_discovery_duration_seconds"); n != 1 {
		t.Errorf("duration series = %d", n)
	}
}

func TestRefreshFollowsReplacements(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	f := build(t, emulator.FleetSpec{Group: "churn", PerAZ: 1})
	_, asg, ec := proxied(t)
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec})
	services := []config.Service{{Name: "churn", AutoScalingGroups: []string{"churn"}}}

	before, err := d.Refresh(ctx, services)
	if err != nil {
		t.Fatal(err)
	}
	victim := before["churn"].Instances[0].ID
	if _, err := autoscaling.NewFromConfig(moto.Config()).SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
		InstanceId: aws.String(victim), HealthStatus: aws.String("Unhealthy"),
	}); err != nil {
		t.Fatal(err)
	}
	mid, err := d.Refresh(ctx, services)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range mid["churn"].Instances {
		if in.ID == victim && in.HealthStatus != "Unhealthy" {
			t.Errorf("victim health = %q, want Unhealthy", in.HealthStatus)
		}
	}
	if _, err := f.PlayASG(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := d.Refresh(ctx, services)
	if err != nil {
		t.Fatal(err)
	}
	got := after["churn"].Instances
	if len(got) != 2 {
		t.Fatalf("after replacement: %+v", got)
	}
	for _, in := range got {
		if in.ID == victim {
			t.Errorf("victim still listed: %+v", in)
		}
		if !netip.MustParsePrefix("127.0.0.0/8").Contains(in.PrivateIP) {
			t.Errorf("%s: IP %v", in.ID, in.PrivateIP)
		}
	}
}

// vanishing wraps the EC2 client and asks, in its first call, also for an
// instance EC2 has never heard of — what discovery sees when an instance
// is listed by its group but not (yet, or any more) by EC2.
type vanishing struct {
	discovery.DescribeInstancesAPI
	mu    sync.Mutex
	calls []*ec2.DescribeInstancesInput
}

func (v *vanishing) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	v.mu.Lock()
	first := len(v.calls) == 0
	v.calls = append(v.calls, in)
	v.mu.Unlock()
	if first && len(in.InstanceIds) > 0 {
		c := *in
		c.InstanceIds = append(append([]string{}, in.InstanceIds...), "i-0000000000000dead")
		in = &c
	}
	return v.DescribeInstancesAPI.DescribeInstances(ctx, in, opts...)
}

func TestRefreshToleratesInstancesUnknownToEC2(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	build(t, emulator.FleetSpec{Group: "unknown-ids", AZs: []string{"us-east-1a"}, PerAZ: 2})
	_, asg, ec := proxied(t)
	v := &vanishing{DescribeInstancesAPI: ec}
	d := discovery.New(discovery.Options{ASG: asg, EC2: v})

	snaps, err := d.Refresh(ctx, []config.Service{{Name: "s", AutoScalingGroups: []string{"unknown-ids"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range snaps["s"].Instances {
		if !in.PrivateIP.IsValid() {
			t.Errorf("%s has no IP after the filter fallback", in.ID)
		}
	}
	if len(v.calls) != 2 || len(v.calls[1].Filters) != 1 {
		t.Errorf("DescribeInstances calls = %d (want 2: by ids, then by filter)", len(v.calls))
	}
}

func TestRefreshAWSDownFailsWhole(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	build(t, emulator.FleetSpec{Group: "down", AZs: []string{"us-east-1a"}, PerAZ: 1})
	p, asg, ec := proxied(t)
	reg := prometheus.NewPedanticRegistry()
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec, Registerer: reg})
	services := []config.Service{{Name: "s", AutoScalingGroups: []string{"down"}}}

	p.SetDown(true)
	snaps, err := d.Refresh(ctx, services)
	if err == nil || snaps != nil {
		t.Errorf("AWS unreachable: got %v, %v; want nil and an error", snaps, err)
	}
	p.SetDown(false)
	p.ThrottleFraction(1)
	if _, err := d.Refresh(ctx, services); err == nil || !strings.Contains(err.Error(), "Throttling") {
		t.Errorf("throttled: err = %v", err)
	}
	want := `
# HELP medic_discovery_refreshes_total Fleet refreshes by result: success when every service's fleet was read whole, failure otherwise.
# TYPE medic_discovery_refreshes_total counter
medic_discovery_refreshes_total{result="failure"} 2
medic_discovery_refreshes_total{result="success"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "medic_discovery_refreshes_total"); err != nil {
		t.Error(err)
	}
}

func TestRefreshRefusesIPsOutsideAllowedNetworks(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	build(t, emulator.FleetSpec{Group: "allowed", AZs: []string{"us-east-1a"}, PerAZ: 1})
	_, asg, ec := proxied(t)
	services := []config.Service{{Name: "s", AutoScalingGroups: []string{"allowed"}}}
	for _, tc := range []struct {
		desc    string
		allowed []netip.Prefix
		wantIP  bool
	}{
		{desc: "no bound", wantIP: true},
		{desc: "inside", allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, wantIP: true},
		{desc: "outside", allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, wantIP: false},
	} {
		d := discovery.New(discovery.Options{ASG: asg, EC2: ec, AllowedNetworks: tc.allowed})
		snaps, err := d.Refresh(ctx, services)
		if err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		in := snaps["s"].Instances[0]
		if in.PrivateIP.IsValid() != tc.wantIP || in.LaunchTime.IsZero() {
			t.Errorf("%s: IP %v launch %v, want IP: %v", tc.desc, in.PrivateIP, in.LaunchTime, tc.wantIP)
		}
	}
}
