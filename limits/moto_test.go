package limits

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/emulator"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
)

// startMoto runs moto_server for one test and returns an aws.Config that
// reaches it the production way: AWS_ENDPOINT_URL with dummy credentials.
func startMoto(tb testing.TB) aws.Config { return emulator.DefaultConfigT(tb) }

// recorder is a Notifier that keeps events.
type recorder struct {
	mu sync.Mutex
	ev []alerts.Event
}

func (r *recorder) Notify(e alerts.Event) { r.mu.Lock(); r.ev = append(r.ev, e); r.mu.Unlock() }

func (r *recorder) find(kind alerts.Kind, subject string) []alerts.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []alerts.Event
	for _, e := range r.ev {
		if e.Kind == kind && e.Subject == subject {
			out = append(out, e)
		}
	}
	return out
}

func defaults(l config.Limits) config.Limits { l.SetDefaults(); return l }

// metric returns the value of the series of name whose labels include
// want, and whether there is one.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 { return m.GetGauge().GetValue() }

func mustQuota(t *testing.T, s Snapshot, key string) QuotaStatus {
	t.Helper()
	for _, q := range s.Quotas {
		if q.Key() == key {
			return q
		}
	}
	t.Fatalf("quota %s not in snapshot", key)
	return QuotaStatus{}
}

func sourceOf(s Snapshot, name string) (SourceStatus, bool) {
	for _, x := range s.Sources {
		if x.Name == name {
			return x, true
		}
	}
	return SourceStatus{}, false
}

// TestQuotasOnMoto creates VPCs and Elastic IPs up to 80% of the limits
// moto reports and checks limit, usage, headroom, source and the warning.
func TestQuotasOnMoto(t *testing.T) {
	cfg := startMoto(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(cfg)
	vpcs, err := ec.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(vpcs.Vpcs); i < 4; i++ {
		if _, err := ec.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String(fmt.Sprintf("127.%d.0.0/16", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		if _, err := ec.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	w := New(Options{Config: defaults(config.Limits{}), AWS: cfg, Registerer: reg, Notifier: rec, Now: func() time.Time { return t0 }})
	s := w.RefreshOnce(ctx)

	for _, tc := range []struct {
		desc, key, limitSrc, usageSrc string
		limit, usage, headroom        float64
		state                         State
	}{
		{"VPCs: Service Quotas default", "vpc/L-F678F1CE", "service_quotas_default", "describe", 5, 4, 0.2, StateWarning},
		{"Elastic IPs: DescribeAccountAttributes", "ec2/L-0263D0A3", "service_api", "describe", 5, 4, 0.2, StateWarning},
		{"ALBs: elbv2 DescribeAccountLimits", "elasticloadbalancing/L-53DA6B97", "service_api", "describe", 20, 0, 1, StateOK},
		{"target groups: elbv2 DescribeAccountLimits", "elasticloadbalancing/L-B22855CB", "service_api", "describe", 3000, 0, 1, StateOK},
	} {
		q := mustQuota(t, s, tc.key)
		if !q.LimitKnown || q.Limit != tc.limit || q.LimitSource != tc.limitSrc || !q.UsageKnown || q.Usage != tc.usage || q.State != tc.state {
			t.Errorf("%s: got %+v", tc.desc, q)
		}
		labels := map[string]string{"service_code": q.ServiceCode, "quota_code": q.Code}
		if v, ok := metric(t, reg, "medic_quota_limit", map[string]string{"quota_code": q.Code, "source": tc.limitSrc}); !ok || v != tc.limit {
			t.Errorf("%s: medic_quota_limit = %v, %v", tc.desc, v, ok)
		}
		if v, ok := metric(t, reg, "medic_quota_usage", map[string]string{"quota_code": q.Code, "source": tc.usageSrc}); !ok || v != tc.usage {
			t.Errorf("%s: medic_quota_usage = %v, %v", tc.desc, v, ok)
		}
		if v, ok := metric(t, reg, "medic_quota_headroom_ratio", labels); !ok || v != tc.headroom {
			t.Errorf("%s: medic_quota_headroom_ratio = %v, %v", tc.desc, v, ok)
		}
		if v, ok := metric(t, reg, "medic_quota_state", labels); !ok || v != float64(tc.state) {
			t.Errorf("%s: medic_quota_state = %v, %v", tc.desc, v, ok)
		}
	}
	// Auto Scaling's DescribeAccountLimits answers 500 on moto: its quotas
	// have no limit (unknown, not zero) and the source says so.
	asg := mustQuota(t, s, "autoscaling/L-CDE20ADC")
	if asg.LimitKnown || asg.State != StateUnknown {
		t.Errorf("autoscaling groups quota: %+v", asg)
	}
	if _, ok := metric(t, reg, "medic_quota_limit", map[string]string{"quota_code": "L-CDE20ADC"}); ok {
		t.Error("unknown limit exported")
	}
	for src, want := range map[string]float64{
		"autoscaling_account_limits": 0, "service_quotas_applied:vpc": 0, // moto: 500
		"service_quotas_default:vpc": 1, "service_quotas_default:ec2": 0, // moto: no ec2 quotas
		"ec2_account_attributes": 1, "elbv2_account_limits": 1, "ec2_describe_vpcs": 1, "ec2_describe_addresses": 1, "cloudwatch_usage": 1,
	} {
		if v, ok := metric(t, reg, "medic_limits_source_success", map[string]string{"source": src}); !ok || v != want {
			t.Errorf("medic_limits_source_success{source=%q} = %v (present %v), want %v", src, v, ok, want)
		}
	}
	near := rec.find(alerts.QuotaNearLimit, "vpc/L-F678F1CE")
	if len(near) != 1 || near[0].Resolved || near[0].NeedsAction {
		t.Fatalf("VPC warning events: %+v", near)
	}
	if !strings.Contains(strings.Join(near[0].Evidence, "\n"), "usage 4 of limit 5") {
		t.Errorf("evidence lacks the figures: %q", near[0].Evidence)
	}
	// A second refresh with the same figures says nothing new.
	w.RefreshOnce(ctx)
	if n := len(rec.find(alerts.QuotaNearLimit, "vpc/L-F678F1CE")); n != 1 {
		t.Errorf("repeated warning: %d events", n)
	}
}

// failingProxy puts a fault proxy between the SDK and moto that answers
// DescribeAccountAttributes with access denied (EC2's error format) and
// throttles the first *throttle DescribeAccountLimits calls (the Query
// protocol's), so both reach the SDK's own retryer and classifiers.
func failingProxy(t *testing.T) (aws.Config, *atomic.Int64) {
	m := emulator.StartMotoT(t)
	p, cfg := emulator.FaultProxyT(t, m.URL())
	var throttle atomic.Int64
	p.OnAction("DescribeAccountAttributes", func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>fa17</RequestID></Response>`)
		return true
	})
	p.OnAction("DescribeAccountLimits", func(w http.ResponseWriter, r *http.Request) bool {
		if throttle.Add(-1) < 0 {
			return false
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fa17</RequestId></ErrorResponse>`)
		return true
	})
	// 5xx and transport errors: the first two DescribeInternetGateways
	// answer 503, the first DescribeNatGateways loses its connection.
	var fiveXX, reset atomic.Int64
	fiveXX.Store(2)
	reset.Store(1)
	p.OnAction("DescribeInternetGateways", func(w http.ResponseWriter, r *http.Request) bool {
		if fiveXX.Add(-1) < 0 {
			return false
		}
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<Response><Errors><Error><Code>ServiceUnavailable</Code><Message>try again</Message></Error></Errors><RequestID>fa17</RequestID></Response>`)
		return true
	})
	p.OnAction("DescribeNatGateways", func(w http.ResponseWriter, r *http.Request) bool {
		if reset.Add(-1) < 0 {
			return false
		}
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = c.Close()
		}
		return true
	})
	return cfg, &throttle
}

// TestOneFailingSourceLeavesOthers: access denied, throttling beyond the
// SDK's retries, and an unknown quota (moto: ec2 is not in Service
// Quotas) each fail their own source only; throttling that clears within
// the retries is retried by the SDK and not reported.
func TestOneFailingSourceLeavesOthers(t *testing.T) {
	cfg, throttle := failingProxy(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	l := defaults(config.Limits{Quotas: []config.Quota{{ServiceCode: "ec2", Code: "L-NOPE0000", Name: "no such quota", Usage: config.QuotaUsage{Describe: "vpc_vpcs"}}}})
	w := New(Options{Config: l, AWS: cfg, Registerer: reg, Now: func() time.Time { return t0 }})
	throttle.Store(1000)
	s := w.RefreshOnce(ctx)
	for src, want := range map[string]bool{"ec2_account_attributes": false, "elbv2_account_limits": false,
		"service_quotas_default:ec2": false, "service_quotas_default:vpc": true, "ec2_describe_vpcs": true, "elbv2_describe": true,
		"ec2_describe_internet_gateways": true, "ec2_describe_nat_gateways_per_az": true} { // 5xx and a lost connection: retried by the SDK
		st, ok := sourceOf(s, src)
		if !ok || st.OK != want {
			t.Errorf("source %s: %+v (present %v), want OK=%v", src, st, ok, want)
		}
	}
	if st, _ := sourceOf(s, "ec2_account_attributes"); st.Err != "ec2:DescribeAccountAttributes: UnauthorizedOperation: You are not authorized to perform this operation." {
		t.Errorf("access denied not reported briefly: %q", st.Err)
	}
	if st, _ := sourceOf(s, "elbv2_account_limits"); st.Err != "elbv2:DescribeAccountLimits: Throttling: Rate exceeded" {
		t.Errorf("throttling not reported briefly: %q", st.Err)
	}
	if q := mustQuota(t, s, "vpc/L-F678F1CE"); !q.LimitKnown || !q.UsageKnown {
		t.Errorf("VPC quota lost to another source's failure: %+v", q)
	}
	if q := mustQuota(t, s, "ec2/L-NOPE0000"); q.LimitKnown || !q.UsageKnown || q.State != StateUnknown {
		t.Errorf("unknown quota: %+v", q)
	}
	if v, ok := metric(t, reg, "medic_limits_source_success", map[string]string{"source": "ec2_account_attributes"}); !ok || v != 0 {
		t.Errorf("source metric = %v %v", v, ok)
	}
	// Throttling that clears within the SDK's retries is not reported.
	throttle.Store(2)
	s = w.RefreshOnce(ctx)
	if st, _ := sourceOf(s, "elbv2_account_limits"); !st.OK {
		t.Errorf("throttling twice then success: %+v", st)
	}
	if q := mustQuota(t, s, "elasticloadbalancing/L-53DA6B97"); q.LimitSource != "service_api" || q.Limit != 20 {
		t.Errorf("ALB limit after retry: %+v", q)
	}
}

// newCW is a CloudWatch client for the test's writes, on the same protocol
// as the package's own client.
func newCW(cfg aws.Config) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
	})
}

// putUsage writes AWS/Usage ResourceCount points for one resource.
func putUsage(t testing.TB, cw *cloudwatch.Client, resource string, pts []Point) {
	t.Helper()
	for len(pts) > 0 {
		n := min(len(pts), 500)
		var md []cwtypes.MetricDatum
		for _, p := range pts[:n] {
			md = append(md, cwtypes.MetricDatum{MetricName: aws.String("ResourceCount"), Timestamp: aws.Time(p.T), Value: aws.Float64(p.V),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("Service"), Value: aws.String("Test")}, {Name: aws.String("Type"), Value: aws.String("Resource")},
					{Name: aws.String("Resource"), Value: aws.String(resource)}, {Name: aws.String("Class"), Value: aws.String("None")}}})
		}
		if _, err := cw.PutMetricData(context.Background(), &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/Usage"), MetricData: md}); err != nil {
			t.Fatal(err)
		}
		pts = pts[n:]
	}
}

// TestTimeToExhaustionOnMoto feeds eight days of usage history through
// PutMetricData (AWS/Usage) in the shapes of the table test: growing daily
// peaks forecast within 10% of the true crossing, flat peaks and a step do
// not, a gap now is unknown; and a restarted watcher (a new one, nothing
// in memory) reads the history back and forecasts the same.
func TestTimeToExhaustionOnMoto(t *testing.T) {
	cfg := startMoto(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Hour)
	cw := newCW(cfg)
	days := func(t time.Time) float64 { return t.Sub(now).Hours() / 24 }
	growing := cycle(func(t time.Time) float64 { return 200 + 10*days(t) }, 60) // peaks 260 now, +10/day
	shapes := map[string]func(time.Time) float64{
		"Growing": growing,
		"Flat":    cycle(func(time.Time) float64 { return 200 }, 120),
		"Step": func(t time.Time) float64 {
			if now.Sub(t) < 20*time.Minute {
				return 216
			}
			return 200
		},
		"Gap": growing,
	}
	for name, f := range shapes {
		var pts []Point
		for d := 8 * day; d >= 0; d -= time.Hour {
			if name == "Gap" && d < 3*time.Hour {
				continue // nothing in the last three hours
			}
			pts = append(pts, Point{T: now.Add(-d), V: f(now.Add(-d))})
		}
		if name == "Step" {
			pts = append(pts, Point{T: now.Add(-10 * time.Minute), V: 216})
		}
		putUsage(t, cw, name, pts)
	}
	limit := 400.0
	var qs []config.Quota
	for name := range shapes {
		qs = append(qs, config.Quota{ServiceCode: "test", Code: name, Name: name, Limit: &limit,
			Usage: config.QuotaUsage{CloudWatch: &config.UsageMetric{Service: "Test", Type: "Resource", Resource: name, Class: "None"}}})
	}
	l := defaults(config.Limits{Quotas: qs, ForecastHorizon: config.Duration(30 * 24 * time.Hour)})
	trueIn := firstCrossing(growing, now, limit)
	var first Forecast
	for run, desc := range []string{"first start", "after a restart"} {
		reg := prometheus.NewRegistry()
		rec := &recorder{}
		w := New(Options{Config: l, AWS: cfg, Registerer: reg, Notifier: rec, Now: func() time.Time { return now }})
		s := w.RefreshOnce(ctx)
		g := mustQuota(t, s, "test/Growing")
		if !g.UsageKnown || g.UsageSource != "cloudwatch" || !g.Forecast.Trend {
			t.Fatalf("%s: growing: %+v", desc, g.Forecast)
		}
		if d := math.Abs(g.Forecast.In.Hours() - trueIn.Hours()); d > 0.1*trueIn.Hours() {
			t.Errorf("%s: growing: %s to exhaustion, true crossing in %s (%s)", desc, g.Forecast.In.Round(time.Hour), trueIn.Round(time.Hour), g.Forecast.Why)
		}
		if v, ok := metric(t, reg, "medic_quota_seconds_to_exhaustion", map[string]string{"quota_code": "Growing"}); !ok || v != g.Forecast.In.Seconds() {
			t.Errorf("%s: metric %v %v", desc, v, ok)
		}
		for _, name := range []string{"medic_quota_seconds_to_exhaustion_lower", "medic_quota_seconds_to_exhaustion_upper", "medic_quota_forecast_r_squared"} {
			if _, ok := metric(t, reg, name, map[string]string{"quota_code": "Growing"}); !ok {
				t.Errorf("%s: %s not exported", desc, name)
			}
		}
		if len(rec.find(alerts.QuotaExhaustionForecast, "test/Growing")) != 1 {
			t.Errorf("%s: no forecast event for the growing quota", desc)
		}
		for _, k := range []string{"test/Flat", "test/Step"} {
			q := mustQuota(t, s, k)
			if !q.Forecast.Known || q.Forecast.Growing {
				t.Errorf("%s: %s: %+v", desc, k, q.Forecast)
			}
			if len(rec.find(alerts.QuotaExhaustionForecast, k)) != 0 {
				t.Errorf("%s: %s: forecast event for a shape that is not a trend", desc, k)
			}
		}
		gap := mustQuota(t, s, "test/Gap")
		if gap.UsageKnown || gap.Forecast.Known || gap.State != StateUnknown {
			t.Errorf("%s: gap: want unknown, got %+v", desc, gap)
		}
		for _, name := range []string{"medic_quota_usage", "medic_quota_seconds_to_exhaustion", "medic_quota_state"} {
			if v, ok := metric(t, reg, name, map[string]string{"quota_code": "Gap"}); ok {
				t.Errorf("%s: gap: %s exported as %v; unknown is no series, not zero", desc, name, v)
			}
		}
		if run == 0 {
			first = g.Forecast
		} else if first.In != g.Forecast.In {
			t.Errorf("restart changed the forecast: %s before, %s after", first.In, g.Forecast.In)
		}
	}
}

// TestFeasibilityOnMoto: a group whose MaxSize × vCPUs exceeds the vCPU
// quota left is reported as not feasible; a small one is feasible.
func TestFeasibilityOnMoto(t *testing.T) {
	cfg := startMoto(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(cfg)
	as := autoscaling.NewFromConfig(cfg)
	_, subnetID := vpcWithSubnet(t, ec)
	lt := func(name, typ string) {
		if _, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(name),
			LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-12c6146b"), InstanceType: ec2types.InstanceType(typ)}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []struct {
		name, typ     string
		min, max, des int32
	}{{"big", "c5.4xlarge", 1, 10, 1}, {"small", "t3.micro", 1, 3, 1}, {"zero", "m5.large", 0, 4, 0}} {
		lt(g.name, g.typ)
		if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(g.name),
			MinSize: aws.Int32(g.min), MaxSize: aws.Int32(g.max), DesiredCapacity: aws.Int32(g.des), VPCZoneIdentifier: aws.String(subnetID),
			LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(g.name), Version: aws.String("$Latest")}}); err != nil {
			t.Fatal(err)
		}
	}
	// Mixed instances: weights, half Spot above a base of 0.
	lt("mixed", "m5.large")
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("mixed"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(16), DesiredCapacity: aws.Int32(0), VPCZoneIdentifier: aws.String(subnetID),
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{
			InstancesDistribution: &astypes.InstancesDistribution{OnDemandBaseCapacity: aws.Int32(0), OnDemandPercentageAboveBaseCapacity: aws.Int32(50)},
			LaunchTemplate: &astypes.LaunchTemplate{LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("mixed"), Version: aws.String("$Latest")},
				Overrides: []astypes.LaunchTemplateOverrides{{InstanceType: aws.String("m5.large"), WeightedCapacity: aws.String("1")},
					{InstanceType: aws.String("c5.4xlarge"), WeightedCapacity: aws.String("4")}}}}}); err != nil {
		t.Fatal(err)
	}
	// vCPUs; moto has no ec2 Service Quotas, so config sets the limits.
	od, spot := 100.0, 20.0
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	l := defaults(config.Limits{Quotas: []config.Quota{{ServiceCode: "ec2", Code: "L-1216C47A", Limit: &od}, {ServiceCode: "ec2", Code: "L-34B43A08", Limit: &spot}}})
	w := New(Options{Config: l, AWS: cfg, Registerer: reg, Notifier: rec, Groups: []string{"big", "small", "zero", "mixed", "missing"}, Now: func() time.Time { return t0 }})
	s := w.RefreshOnce(ctx)
	vc := mustQuota(t, s, "ec2/L-1216C47A")
	if vc.Usage != 18 || vc.Limit != 100 { // 16 (c5.4xlarge) + 2 (t3.micro)
		t.Fatalf("vCPU quota: %+v", vc)
	}
	if sp := mustQuota(t, s, "ec2/L-34B43A08"); sp.Usage != 0 || !sp.UsageKnown {
		t.Errorf("Spot vCPU quota: %+v", sp)
	}
	// zero: 4 × m5.large = 8 of 82 left: feasible. mixed: 8 units On-Demand
	// (worst case 2 × c5.4xlarge = 32 vCPUs) fits; 8 units Spot needs 32 of
	// 20 Spot vCPUs: infeasible, charged to the Spot quota.
	want := map[string][2]bool{"big": {true, false}, "small": {true, true}, "zero": {true, true}, "mixed": {true, false}, "missing": {false, false}}
	for _, g := range s.Groups {
		if w := want[g.Name]; g.Known != w[0] || g.Feasible != w[1] {
			t.Errorf("group %s: %+v", g.Name, g)
		}
	}
	if g := groupOf(s, "mixed"); !strings.Contains(g.Why, "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests") {
		t.Errorf("mixed group not charged to the Spot quota: %s", g.Why)
	}
	if g := groupOf(s, "missing"); g.Why == "" {
		t.Errorf("unknown without a reason: %+v", g)
	}
	if v, ok := metric(t, reg, "medic_scale_out_feasible", map[string]string{"asg": "big"}); !ok || v != 0 {
		t.Errorf("big: %v %v", v, ok)
	}
	if v, ok := metric(t, reg, "medic_scale_out_feasible", map[string]string{"asg": "zero"}); !ok || v != 1 {
		t.Errorf("zero: %v %v", v, ok)
	}
	if _, ok := metric(t, reg, "medic_scale_out_feasible", map[string]string{"asg": "missing"}); ok {
		t.Error("missing group exported")
	}
	ev := rec.find(alerts.QuotaNearLimit, "big")
	if len(ev) != 1 || !strings.Contains(ev[0].Evidence[0], "needs 144 more") {
		t.Errorf("big group event: %+v", ev)
	}
}

func groupOf(s Snapshot, name string) GroupStatus {
	for _, g := range s.Groups {
		if g.Name == name {
			return g
		}
	}
	return GroupStatus{}
}

// vpcWithSubnet creates a loopback VPC with one subnet in us-east-1a.
func vpcWithSubnet(t *testing.T, ec *ec2.Client) (vpcID, subnetID string) {
	t.Helper()
	ctx := context.Background()
	vpc, err := ec.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("127.0.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := ec.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("127.0.1.0/24"), AvailabilityZone: aws.String("us-east-1a")})
	if err != nil {
		t.Fatal(err)
	}
	return *vpc.Vpc.VpcId, *sub.Subnet.SubnetId
}
