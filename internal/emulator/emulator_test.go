package emulator_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/medic-sre/medic/internal/emulator"
)

// moto is shared by the tests of this package; each test uses its own
// group names, and BuildFleet gives each fleet its own subnets.
var moto *emulator.Moto

func TestMain(m *testing.M) { emulator.MainWithMoto(m, &moto) }

func buildFleet(t *testing.T, spec emulator.FleetSpec) *emulator.Fleet {
	t.Helper()
	f, err := emulator.BuildFleet(testkit.Context(t), moto.Config(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func TestBuildFleetSixInTwoAZs(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	f := buildFleet(t, emulator.FleetSpec{Group: "six", AZs: []string{"us-east-1a", "us-east-1b"}, PerAZ: 3})
	// A second fleet in the same moto must not share a subnet or an IP.
	g := buildFleet(t, emulator.FleetSpec{Group: "other", AZs: []string{"us-east-1a", "us-east-1b"}, PerAZ: 1, GracePeriod: 30 * time.Second})

	insts, err := f.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 6 {
		t.Fatalf("got %d instances, want 6: %+v", len(insts), insts)
	}
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	perAZ := map[string]int{}
	thirdOctet := map[string]map[byte]bool{}
	seen := map[netip.Addr]string{}
	for _, in := range insts {
		if !loopback.Contains(in.IP) {
			t.Errorf("%s: IP %v not in %v", in.ID, in.IP, loopback)
		}
		if other, dup := seen[in.IP]; dup {
			t.Errorf("%s and %s share IP %v", in.ID, other, in.IP)
		}
		seen[in.IP] = in.ID
		perAZ[in.AZ]++
		if thirdOctet[in.AZ] == nil {
			thirdOctet[in.AZ] = map[byte]bool{}
		}
		thirdOctet[in.AZ][in.IP.As4()[2]] = true
		if in.Health != "Healthy" || in.Lifecycle != "InService" {
			t.Errorf("%s: %s/%s, want Healthy/InService", in.ID, in.Health, in.Lifecycle)
		}
	}
	if perAZ["us-east-1a"] != 3 || perAZ["us-east-1b"] != 3 {
		t.Errorf("instances per AZ = %v, want 3 and 3", perAZ)
	}
	if len(thirdOctet["us-east-1a"]) != 1 || len(thirdOctet["us-east-1b"]) != 1 {
		t.Errorf("each AZ should use one subnet: %v", thirdOctet)
	}

	others, err := g.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range others {
		if id, dup := seen[in.IP]; dup {
			t.Errorf("fleets collide: %s and %s both have %v", in.ID, id, in.IP)
		}
	}
	for az, sub := range g.Subnets {
		if f.Subnets[az] == sub {
			t.Errorf("fleets share subnet %s in %s", sub, az)
		}
	}

	// Grace period: 0 must stay 0 (moto makes it 300 at creation), 30s is 30.
	out, err := autoscaling.NewFromConfig(moto.Config()).DescribeAutoScalingGroups(ctx,
		&autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"six", "other"}})
	if err != nil {
		t.Fatal(err)
	}
	grace := map[string]int32{}
	for _, g := range out.AutoScalingGroups {
		grace[aws.ToString(g.AutoScalingGroupName)] = aws.ToInt32(g.HealthCheckGracePeriod)
	}
	if grace["six"] != 0 || grace["other"] != 30 {
		t.Errorf("grace periods = %v, want six:0 other:30", grace)
	}

	h, err := f.Health(ctx, insts[0].ID)
	if err != nil || h != "Healthy" {
		t.Errorf("Health(%s) = %q, %v; want Healthy", insts[0].ID, h, err)
	}
	if _, err := f.Health(ctx, "i-00000000000000000"); !errors.Is(err, emulator.ErrNotInGroup) {
		t.Errorf("Health(missing) error = %v, want ErrNotInGroup", err)
	}
}

func get(t *testing.T, url string, timeout time.Duration) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestAppServerModes(t *testing.T) {
	t.Parallel()
	a, err := emulator.StartApp("127.0.200.7", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })

	expect := func(desc string, code int, body string) {
		t.Helper()
		gotCode, gotBody, err := get(t, a.URL(), 2*time.Second)
		if err != nil || gotCode != code || gotBody != body {
			t.Errorf("%s: got %d %q %v, want %d %q", desc, gotCode, gotBody, err, code, body)
		}
	}
	expect("start", 200, "ok")
	if err := a.Status(503); err != nil {
		t.Fatal(err)
	}
	expect("status 503", 503, "status")
	if err := a.Body("degraded"); err != nil {
		t.Fatal(err)
	}
	expect("body", 200, "degraded")

	if err := a.Hang(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := get(t, a.URL(), 300*time.Millisecond); err == nil {
		t.Errorf("hang: got an answer")
	} else if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("hang: failed after %v (%v), want a timeout", d, err)
	}

	if err := a.Down(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, a.URL(), time.Second); err == nil {
		t.Errorf("down: got an answer")
	}
	if err := a.OK(); err != nil {
		t.Fatal(err)
	}
	expect("back up", 200, "ok")

	if err := a.Pattern("FFP", 500); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{500, 500, 200, 500, 500, 200} {
		expect(fmt.Sprintf("pattern FFP, request %d", i), want, map[int]string{500: "status", 200: "ok"}[want])
	}
	if err := a.Flaky(1, 503); err != nil {
		t.Fatal(err)
	}
	expect("flaky 100%", 503, "status")
	if err := a.Flaky(0, 503); err != nil {
		t.Fatal(err)
	}
	expect("flaky 0%", 200, "ok")
	if err := a.Delay(150 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	expect("delay", 200, "ok")
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("delay: answered after %v, want at least 150ms", d)
	}
	if _, _, err := get(t, a.URL(), 50*time.Millisecond); err == nil {
		t.Errorf("delay 150ms: answered within 50ms")
	}

	// Mode changes race with requests: -race must stay quiet.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 10 {
				if i == 0 {
					_ = []func() error{a.OK, func() error { return a.Status(500) }, func() error { return a.Body("x") }}[j%3]()
				} else {
					_, _, _ = get(t, a.URL(), time.Second)
				}
			}
		})
	}
	wg.Wait()
	if a.Requests() < 5 {
		t.Errorf("Requests() = %d", a.Requests())
	}
	if _, err := emulator.StartApp("10.0.0.1", 0); err == nil {
		t.Errorf("StartApp on a non-loopback IP must fail")
	}
}

func TestPlayASGReplacesMarkedInstance(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	f := buildFleet(t, emulator.FleetSpec{Group: "play", AZs: []string{"us-east-1a", "us-east-1b"}, PerAZ: 1})
	port, err := f.StartApps(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	before, err := f.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range before {
		url := fmt.Sprintf("http://%s:%d/health", in.IP, port)
		if code, body, err := get(t, url, 2*time.Second); err != nil || code != 200 || body != "ok" {
			t.Fatalf("app of %s at %s: %d %q %v", in.ID, url, code, body, err)
		}
	}
	victim := before[1] // in us-east-1b
	asg := autoscaling.NewFromConfig(moto.Config())
	if _, err := asg.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
		InstanceId: aws.String(victim.ID), HealthStatus: aws.String("Unhealthy"),
	}); err != nil {
		t.Fatal(err)
	}
	if h, err := f.Health(ctx, victim.ID); err != nil || h != "Unhealthy" {
		t.Fatalf("Health after mark = %q, %v", h, err)
	}

	replaced, err := f.PlayASG(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("victim %s in %s (%v) replaced", victim.ID, victim.AZ, victim.IP)
	if !slices.Equal(replaced, []string{victim.ID}) {
		t.Fatalf("replaced %v, want [%s]", replaced, victim.ID)
	}
	after, err := f.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 2 {
		t.Fatalf("after replacement: %+v, want 2 members", after)
	}
	var fresh emulator.FleetInstance
	for _, in := range after {
		if in.ID == victim.ID {
			t.Errorf("victim %s still in the group: %+v", victim.ID, in)
		}
		if in.ID != before[0].ID {
			fresh = in
		}
	}
	t.Logf("replacement %s in %s (%v)", fresh.ID, fresh.AZ, fresh.IP)
	if !netip.MustParsePrefix("127.0.0.0/8").Contains(fresh.IP) || fresh.Lifecycle != "InService" {
		t.Errorf("replacement %+v: want InService with a loopback IP", fresh)
	}
	if f.App(victim.ID) != nil {
		t.Errorf("the victim's app still runs")
	}
	if a := f.App(fresh.ID); a == nil {
		t.Errorf("no app for replacement %s", fresh.ID)
	} else if code, _, err := get(t, a.URL(), 2*time.Second); err != nil || code != 200 {
		t.Errorf("replacement app: %d %v", code, err)
	}
	if _, _, err := get(t, fmt.Sprintf("http://%s:%d/health", victim.IP, port), time.Second); err == nil && victim.IP != fresh.IP {
		t.Errorf("the victim's IP still answers")
	}
	// Nothing left to replace: PlayASG is idempotent.
	if again, err := f.PlayASG(ctx); err != nil || len(again) != 0 {
		t.Errorf("second PlayASG = %v, %v; want nothing", again, err)
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestFaultProxyThrottlesAndCounts(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	p, cfg := emulator.FaultProxyT(t, moto.URL())
	asg := autoscaling.NewFromConfig(cfg)
	ec := ec2.NewFromConfig(cfg)

	p.ThrottleFraction(0.5)
	var codes []string
	for range 4 {
		_, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
		codes = append(codes, apiCode(err))
	}
	if want := []string{"", "Throttling", "", "Throttling"}; !slices.Equal(codes, want) {
		t.Errorf("autoscaling error codes = %q, want %q", codes, want)
	}
	// Call 5 passes, call 6 (ec2) is throttled with EC2's own code.
	_, err1 := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	_, err2 := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err1 != nil || apiCode(err2) != "RequestLimitExceeded" {
		t.Errorf("ec2: %v / %v, want success then RequestLimitExceeded", err1, err2)
	}
	if got := p.Count("DescribeAutoScalingGroups"); got != 4 {
		t.Errorf("Count(DescribeAutoScalingGroups) = %d, want 4", got)
	}
	if got := p.Count("DescribeInstances"); got != 2 {
		t.Errorf("Count(DescribeInstances) = %d, want 2", got)
	}
	if got := p.Throttled(); got != 3 {
		t.Errorf("Throttled() = %d, want 3", got)
	}
	if got := p.MutatingCalls(); got != 0 {
		t.Errorf("MutatingCalls() = %d before any mutation", got)
	}

	p.ThrottleFraction(0)
	// A mutating call is forwarded intact (moto answers for the missing
	// instance) and counted.
	_, err := asg.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
		InstanceId: aws.String("i-00000000000000000"), HealthStatus: aws.String("Unhealthy"),
	})
	if code := apiCode(err); code != "InvalidInstanceID.NotFound" {
		t.Errorf("SetInstanceHealth on a missing instance: %v, want InvalidInstanceID.NotFound", err)
	}
	if got := p.MutatingCalls(); got != 1 {
		t.Errorf("MutatingCalls() = %d, want 1", got)
	}

	p.SetDown(true)
	if _, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err == nil || apiCode(err) != "" {
		t.Errorf("down: err = %v, want a transport error", err)
	}
	p.SetDown(false)
	if _, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
		t.Errorf("back up: %v", err)
	}
}
