package limits

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
)

const (
	arnGradual = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/gradual/1111111111111111"
	arnJump    = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/jump/2222222222222222"
	arnEvent   = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/event/3333333333333333"
)

// putLB writes one load-balancer metric: value at each time.
func putLB(t testing.TB, cw *cloudwatch.Client, ns, dimName, dimValue, metric string, at []time.Time, vs []float64) {
	t.Helper()
	var md []cwtypes.MetricDatum
	for i := range at {
		md = append(md, cwtypes.MetricDatum{MetricName: aws.String(metric), Timestamp: aws.Time(at[i]), Value: aws.Float64(vs[i]),
			Dimensions: []cwtypes.Dimension{{Name: aws.String(dimName), Value: aws.String(dimValue)}}})
	}
	if _, err := cw.PutMetricData(context.Background(), &cloudwatch.PutMetricDataInput{Namespace: aws.String(ns), MetricData: md}); err != nil {
		t.Fatal(err)
	}
}

// mid returns the middle of each of the n 5-minute buckets ending at end.
func mid(end time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = end.Add(-time.Duration(n-i)*5*time.Minute + 150*time.Second)
	}
	return out
}

func prewarmConfig(now time.Time, apply bool, ceiling int) config.Limits {
	return defaults(config.Limits{ServiceQuotasRPS: 1000, Prewarm: config.Prewarm{
		Apply: apply, LeadTime: config.Duration(time.Hour), MaxDecreasesPerDay: 1,
		LoadBalancers: []config.PrewarmLoadBalancer{
			{Name: "gradual", Type: "application", ARN: arnGradual},
			{Name: "jump", Type: "application", ARN: arnJump},
			{Name: "event", Type: "application", ARN: arnEvent, MaxCapacityUnits: ceiling},
			{Name: "classic", Type: "classic"},
		},
		Events: []config.ScheduledEvent{{Name: "launch", Start: config.Timestamp{Time: now.Add(2 * time.Hour)},
			Duration: config.Duration(time.Hour), Multiplier: 8, LoadBalancers: []string{"event"}}},
	}})
}

// seedLBMetrics writes: a gradual ramp, a 3× jump, last week's traffic for
// the event window, and a Classic load balancer near its surge queue.
func seedLBMetrics(t testing.TB, cw *cloudwatch.Client, now time.Time) {
	ts := mid(now, 6)
	putLB(t, cw, "AWS/ApplicationELB", "LoadBalancer", "app/gradual/1111111111111111", "RequestCount", ts, []float64{2000, 2200, 2420, 2662, 2928, 3221})
	putLB(t, cw, "AWS/ApplicationELB", "LoadBalancer", "app/jump/2222222222222222", "RequestCount", ts, []float64{2000, 2000, 2000, 2000, 2000, 6000})
	// Last week, the event's hour: 100 new connections/s, 3000 active per
	// minute, 600 MB/h. ×8 → 800/s = 32 LCU; ×1.2 headroom → 39 LCU.
	// (From 2h to 5h ahead: the windows of both events in TestApplyPath.)
	lw := mid(now.Add(5*time.Hour-7*24*time.Hour), 36)
	rep := func(v float64) []float64 {
		out := make([]float64, len(lw))
		for i := range out {
			out[i] = v
		}
		return out
	}
	dv := "app/event/3333333333333333"
	putLB(t, cw, "AWS/ApplicationELB", "LoadBalancer", dv, "NewConnectionCount", lw, rep(30000))
	putLB(t, cw, "AWS/ApplicationELB", "LoadBalancer", dv, "ActiveConnectionCount", lw, rep(15000))
	putLB(t, cw, "AWS/ApplicationELB", "LoadBalancer", dv, "ProcessedBytes", lw, rep(50e6))
	putLB(t, cw, "AWS/ApplicationELB", "LoadBalancer", dv, "RequestCount", lw, rep(60000))
	putLB(t, cw, "AWS/ELB", "LoadBalancerName", "classic", "SurgeQueueLength", ts[4:], []float64{300, 1000})
	putLB(t, cw, "AWS/ELB", "LoadBalancerName", "classic", "SpilloverCount", ts[5:], []float64{5})
}

func lbStatus(t *testing.T, s Snapshot, name string) PrewarmStatus {
	t.Helper()
	for _, lb := range s.LoadBalancers {
		if lb.Name == name {
			return lb
		}
	}
	t.Fatalf("load balancer %s not in snapshot", name)
	return PrewarmStatus{}
}

// TestPrewarmOnMoto: load-balancer metrics fed through PutMetricData.
func TestPrewarmOnMoto(t *testing.T) {
	cfg := startMoto(t)
	now := time.Now().UTC().Truncate(time.Minute)
	seedLBMetrics(t, newCW(cfg), now)
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	w := New(Options{Config: prewarmConfig(now, false, 0), AWS: cfg, Registerer: reg, Notifier: rec, Now: func() time.Time { return now }})
	s := w.RefreshOnce(context.Background())

	if g := lbStatus(t, s, "gradual"); g.Needed || g.Ramp.Detected || !g.DataKnown {
		t.Errorf("gradual ramp raised something: %+v", g)
	}
	if j := lbStatus(t, s, "jump"); !j.Needed || !j.Ramp.Detected || j.Ramp.Ratio != 3 {
		t.Errorf("3x jump: %+v", j)
	}
	e := lbStatus(t, s, "event")
	if !e.Needed || e.Phase != PhaseBefore || e.Basis != "last_week" || e.Recommended != 39 {
		t.Errorf("scheduled 8x event before the lead time: %+v", e)
	}
	if e.Step.Op != "none" {
		t.Errorf("apply is off, yet step %+v", e.Step)
	}
	c := lbStatus(t, s, "classic")
	if !c.Needed || c.SurgeQueueMax != 1000 || c.Spillover != 5 {
		t.Errorf("classic: %+v", c)
	}
	reasons := strings.Join(c.Reasons, "\n")
	if !strings.Contains(reasons, "surge queue reached 1000 of 1024") || !strings.Contains(reasons, "5 requests spilled over") {
		t.Errorf("classic reasons: %s", reasons)
	}
	for lb, want := range map[string]float64{"gradual": 0, "jump": 1, "event": 1, "classic": 1} {
		if v, ok := metric(t, reg, "medic_prewarm_needed", map[string]string{"load_balancer": lb}); !ok || v != want {
			t.Errorf("medic_prewarm_needed{%s} = %v %v, want %v", lb, v, ok, want)
		}
	}
	if v, _ := metric(t, reg, "medic_prewarm_recommended_lcu", map[string]string{"load_balancer": "event"}); v != 39 {
		t.Errorf("recommended LCU metric %v", v)
	}
	if v, _ := metric(t, reg, "medic_prewarm_forecast_lcu", map[string]string{"load_balancer": "event"}); v != 32 {
		t.Errorf("forecast LCU metric %v", v)
	}
	ev := rec.find(alerts.PrewarmNeeded, "event")
	if len(ev) != 1 || !strings.Contains(strings.Join(ev[0].Evidence, "\n"), "new connections/s (both sides): 800 / 25 = 32.00 LCU") {
		t.Errorf("event notification: %+v", ev)
	}
	if len(rec.find(alerts.PrewarmNeeded, "gradual")) != 0 || len(rec.find(alerts.PrewarmNeeded, "jump")) != 1 {
		t.Errorf("notifications: %+v", rec.ev)
	}
}

// fakeReservations is a local in-memory fake of the two capacity-reservation
// calls (moto has only Describe): it keeps the reservation, counts decreases
// per day, reports pending once after a change, and can fail.
type fakeReservations struct {
	mu            sync.Mutex
	units         map[string]int32
	decreasesLeft int32
	pendingReads  int
	modifies      []string
	failNext      []error // returned by the next Modify calls, in order
	// failProvision: the next this many accepted changes end failed.
	failProvision int
	failed        bool
	// failAtOnce: a failing change is failed at the first read, never
	// seen pending (AWS may refuse capacity at once).
	failAtOnce bool
}

func (f *fakeReservations) DescribeCapacityReservation(_ context.Context, in *elbv2.DescribeCapacityReservationInput, _ ...func(*elbv2.Options)) (*elbv2.DescribeCapacityReservationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	code := elbtypes.CapacityReservationStateEnumProvisioned
	var reason *string
	switch {
	case f.pendingReads > 0:
		f.pendingReads--
		code = elbtypes.CapacityReservationStateEnumPending
	case f.failed:
		code, reason = elbtypes.CapacityReservationStateEnumFailed, aws.String("insufficient capacity (fake)")
	}
	u := f.units[aws.ToString(in.LoadBalancerArn)]
	return &elbv2.DescribeCapacityReservationOutput{DecreaseRequestsRemaining: aws.Int32(f.decreasesLeft),
		MinimumLoadBalancerCapacity: &elbtypes.MinimumLoadBalancerCapacity{CapacityUnits: aws.Int32(u)},
		CapacityReservationState:    []elbtypes.ZonalCapacityReservationState{{AvailabilityZone: aws.String("us-east-1a"), State: &elbtypes.CapacityReservationStatus{Code: code, Reason: reason}}}}, nil
}

func (f *fakeReservations) ModifyCapacityReservation(_ context.Context, in *elbv2.ModifyCapacityReservationInput, _ ...func(*elbv2.Options)) (*elbv2.ModifyCapacityReservationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failNext) > 0 {
		err := f.failNext[0]
		f.failNext = f.failNext[1:]
		return nil, err
	}
	arn := aws.ToString(in.LoadBalancerArn)
	cur := f.units[arn]
	next := int32(0)
	if !aws.ToBool(in.ResetCapacityReservation) {
		next = aws.ToInt32(in.MinimumLoadBalancerCapacity.CapacityUnits)
	}
	if next < cur {
		if f.decreasesLeft <= 0 {
			return nil, &smithy.GenericAPIError{Code: "CapacityDecreaseRequestLimitExceeded", Message: "fake"}
		}
		f.decreasesLeft--
	}
	f.units[arn] = next
	f.pendingReads = 1
	f.failed = f.failProvision > 0
	if f.failed {
		f.failProvision--
		if f.failAtOnce {
			f.pendingReads = 0
		}
	}
	if aws.ToBool(in.ResetCapacityReservation) {
		f.modifies = append(f.modifies, "reset")
	} else {
		f.modifies = append(f.modifies, "set "+strconv.Itoa(int(next)))
	}
	return &elbv2.ModifyCapacityReservationOutput{}, nil
}

func (f *fakeReservations) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.modifies...)
}

// TestApplyPath walks an event with apply on: nothing before the lead
// time, one increase (capped at the ceiling) from it, nothing during, one
// reset after; a failed call is retried and reported; no decrease beyond
// the daily limit.
func TestApplyPath(t *testing.T) {
	cfg := startMoto(t)
	base := time.Now().UTC().Truncate(time.Minute)
	seedLBMetrics(t, newCW(cfg), base)
	var mu sync.Mutex
	now := base
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(d time.Duration) { mu.Lock(); now = base.Add(d); mu.Unlock() }
	rec := &recorder{}
	fake := &fakeReservations{units: map[string]int32{}, decreasesLeft: 1}
	l := prewarmConfig(base, true, 30)
	l.Prewarm.LoadBalancers = l.Prewarm.LoadBalancers[2:3] // "event" only
	w := New(Options{Config: l, AWS: cfg, Notifier: rec, Now: clock})
	w.c.reservation = fake
	ctx := context.Background()

	s := w.RefreshOnce(ctx) // two hours ahead, lead time one hour
	if got := fake.calls(); len(got) != 0 {
		t.Fatalf("before the lead time: %v", got)
	}
	if e := lbStatus(t, s, "event"); e.Recommended != 30 || !e.Sizing.Capped {
		t.Errorf("recommendation not capped at the ceiling: %+v", e)
	}

	// In the lead time: the first Modify is throttled (the fake sits
	// above the SDK's retryer): reported, and made at the next refresh.
	set(time.Hour + time.Minute)
	fake.failNext = []error{&smithy.GenericAPIError{Code: "Throttling", Message: "fake"}}
	s = w.RefreshOnce(ctx)
	if e := lbStatus(t, s, "event"); e.StepErr == "" || len(fake.calls()) != 0 {
		t.Fatalf("throttled Modify not reported: %+v", e)
	}
	set(time.Hour + 6*time.Minute)
	s = w.RefreshOnce(ctx)
	e := lbStatus(t, s, "event")
	if got := fake.calls(); len(got) != 1 || got[0] != "set 30" {
		t.Fatalf("lead time: modifies %v", got)
	}
	// Pending is requested, not applied.
	if !e.StepDone || e.Requested != 30 || e.Applied != 0 || e.ReservationState != "pending" {
		t.Errorf("after increase: %+v", e)
	}
	set(time.Hour + 12*time.Minute)
	s = w.RefreshOnce(ctx)
	if e := lbStatus(t, s, "event"); e.Applied != 30 || e.ReservationState != "provisioned" || len(fake.calls()) != 1 {
		t.Errorf("provisioned: %+v, modifies %v", e, fake.calls())
	}
	if ev := rec.find(alerts.PrewarmApplied, "event"); len(ev) != 2 || ev[1].Severity != alerts.Info {
		t.Errorf("applied events: %+v", ev)
	}
	set(2*time.Hour + 10*time.Minute) // during: nothing more
	w.RefreshOnce(ctx)
	if got := fake.calls(); len(got) != 1 {
		t.Fatalf("during: %v", got)
	}

	// After: the reset fails once (not throttling: reported, retried next
	// refresh), then succeeds, then nothing more.
	set(3*time.Hour + time.Minute)
	fake.failNext = []error{&smithy.GenericAPIError{Code: "ValidationError", Message: "fake failure"}}
	s = w.RefreshOnce(ctx)
	if e := lbStatus(t, s, "event"); e.StepErr == "" || e.StepDone {
		t.Errorf("failed reset not reported: %+v", e)
	}
	if st, _ := sourceOf(s, "elbv2_capacity_reservation"); st.OK {
		t.Errorf("source hides the failure: %+v", st)
	}
	set(3*time.Hour + 6*time.Minute)
	w.RefreshOnce(ctx)
	set(3*time.Hour + 12*time.Minute)
	w.RefreshOnce(ctx)
	if got := fake.calls(); len(got) != 2 || got[1] != "reset" {
		t.Fatalf("after: want one reset, got %v", got)
	}
	if ev := rec.find(alerts.PrewarmApplied, "event"); len(ev) != 4 || ev[2].Severity != alerts.Warning {
		t.Errorf("applied events: %+v", ev)
	}

	// A second event the same day: increase again, but the one decrease
	// of the day is used: the reset is postponed, not forced.
	l.Prewarm.Events = append(l.Prewarm.Events, config.ScheduledEvent{Name: "again", Start: config.Timestamp{Time: base.Add(4 * time.Hour)},
		Duration: config.Duration(time.Hour), Multiplier: 8, LoadBalancers: []string{"event"}})
	w.Update(l, nil)
	set(3*time.Hour + 30*time.Minute)
	w.RefreshOnce(ctx)
	set(5*time.Hour + time.Minute)
	s = w.RefreshOnce(ctx)
	if got := fake.calls(); len(got) != 3 || got[2] != "set 30" {
		t.Fatalf("second event: %v", got)
	}
	if e := lbStatus(t, s, "event"); e.Step.Op != "none" || !strings.Contains(e.Step.Why, "no capacity decrease left") {
		t.Errorf("decrease beyond the daily limit: %+v", e.Step)
	}
}

// TestApplyDryRun: under dry-run no reservation is made (moto has no
// ModifyCapacityReservation: a call would fail) and the same report says
// what would be done.
func TestApplyDryRun(t *testing.T) {
	cfg := startMoto(t)
	base := time.Now().UTC().Truncate(time.Minute)
	seedLBMetrics(t, newCW(cfg), base)
	l := prewarmConfig(base, true, 100)
	l.Prewarm.LoadBalancers = l.Prewarm.LoadBalancers[2:3]
	rec := &recorder{}
	w := New(Options{Config: l, AWS: cfg, Notifier: rec, DryRun: true, Now: func() time.Time { return base.Add(time.Hour + time.Minute) }})
	s := w.RefreshOnce(context.Background())
	e := lbStatus(t, s, "event")
	if !e.StepDone || e.StepErr != "" || e.Step.Op != "increase" || e.Step.Units != 39 || e.Applied != 39 {
		t.Fatalf("dry run: %+v", e)
	}
	ev := rec.find(alerts.PrewarmApplied, "event")
	if len(ev) != 1 || !strings.Contains(ev[0].Summary, "dry run, would reserve 39 LCU") {
		t.Errorf("dry-run event: %+v", ev)
	}
	if !s.DryRun {
		t.Error("snapshot does not say dry run")
	}
}

// TestReservationFailedThenPerson: a reservation that AWS fails is
// requested again (it counts as nothing applied), at most max_retries
// times in a row; then medic stops and says a person is needed.
func TestReservationFailedThenPerson(t *testing.T) {
	cfg := startMoto(t)
	base := time.Now().UTC().Truncate(time.Minute)
	seedLBMetrics(t, newCW(cfg), base)
	for _, c := range []struct {
		desc       string
		failAtOnce bool
	}{
		{desc: "pending, then failed", failAtOnce: false},
		{desc: "failed at once, never seen pending: each request still counted once", failAtOnce: true},
	} {
		t.Run(c.desc, func(t *testing.T) {
			now := base.Add(time.Hour + time.Minute) // in the lead time
			rec := &recorder{}
			fake := &fakeReservations{units: map[string]int32{}, decreasesLeft: 2, failProvision: 100, failAtOnce: c.failAtOnce}
			l := prewarmConfig(base, true, 30)
			l.Prewarm.LoadBalancers = l.Prewarm.LoadBalancers[2:3]
			w := New(Options{Config: l, AWS: cfg, Notifier: rec, Now: func() time.Time { return now }})
			w.c.reservation = fake
			ctx := context.Background()
			var e PrewarmStatus
			for i := 0; i < 6; i++ {
				e = lbStatus(t, w.RefreshOnce(ctx), "event")
				if e.Applied != 0 {
					t.Fatalf("refresh %d: a pending or failed reservation counted as applied: %+v", i, e)
				}
				now = now.Add(5 * time.Minute)
			}
			if got := fake.calls(); len(got) != 3 {
				t.Errorf("want the first request and two retries (max_retries 3 failures), got %v", got)
			}
			if !e.Step.NeedsPerson || e.ReservationState != "failed" || !strings.Contains(e.Step.Why, "failed 3 times (insufficient capacity (fake))") {
				t.Errorf("after three failures: %+v", e.Step)
			}
			ev := rec.find(alerts.PrewarmNeeded, "event")
			if len(ev) == 0 || !ev[len(ev)-1].NeedsAction || !strings.Contains(ev[len(ev)-1].Action, "needs a person") {
				t.Errorf("no event asking for a person: %+v", ev)
			}
		})
	}
}

// TestTLSNetworkLoadBalancerRefused: AWS does not reserve capacity for a
// Network Load Balancer with a TLS listener; medic says so and makes no
// request, whatever apply says.
func TestTLSNetworkLoadBalancerRefused(t *testing.T) {
	cfg := startMoto(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(cfg)
	vpcID, subnetID := vpcWithSubnet(t, ec)
	cert := requestCertificate(t)
	lb2 := elbv2.NewFromConfig(cfg)
	lb, err := lb2.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{Name: aws.String("tls"), Type: elbtypes.LoadBalancerTypeEnumNetwork, Subnets: []string{subnetID}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := lb2.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{Name: aws.String("tls"), Protocol: elbtypes.ProtocolEnumTcp, Port: aws.Int32(443), VpcId: aws.String(vpcID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb2.CreateListener(ctx, &elbv2.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Protocol: elbtypes.ProtocolEnumTls, Port: aws.Int32(443),
		Certificates:   []elbtypes.Certificate{{CertificateArn: aws.String(cert)}},
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tg.TargetGroups[0].TargetGroupArn}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	l := defaults(config.Limits{Prewarm: config.Prewarm{Apply: true,
		LoadBalancers: []config.PrewarmLoadBalancer{{Name: "tls", Type: "network", ARN: *lb.LoadBalancers[0].LoadBalancerArn, MaxCapacityUnits: 100}},
		Events:        []config.ScheduledEvent{{Name: "launch", Start: config.Timestamp{Time: now.Add(time.Hour)}, Multiplier: 8}}}})
	fake := &fakeReservations{units: map[string]int32{}, decreasesLeft: 2}
	w := New(Options{Config: l, AWS: cfg, Now: func() time.Time { return now }})
	w.c.reservation = fake
	e := lbStatus(t, w.RefreshOnce(ctx), "tls")
	if !strings.Contains(e.Refused, "TLS listeners (TLS listener on port 443)") || e.Recommended != 0 || len(fake.calls()) != 0 {
		t.Errorf("TLS NLB: %+v, modifies %v", e, fake.calls())
	}
}

// requestCertificate asks moto's ACM for a certificate with a plain JSON
// call (the module does not depend on the ACM client for one test call).
func requestCertificate(t *testing.T) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, os.Getenv("AWS_ENDPOINT_URL")+"/", strings.NewReader(`{"DomainName":"tls.example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "CertificateManager.RequestCertificate")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/acm/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ CertificateArn string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.CertificateArn == "" {
		t.Fatalf("RequestCertificate: %v %+v (HTTP %d)", err, out, resp.StatusCode)
	}
	return out.CertificateArn
}

// TestPeakLCUsPerMinuteSum: PeakLCUs is summed per minute (AWS compares
// "the per-minute Sum of PeakLCUs" with the reservation), the busiest
// minute deciding: two data points of one minute (12 and 8) are 20 LCU,
// more than another minute's 15 — a 5-minute Maximum would say 15.
func TestPeakLCUsPerMinuteSum(t *testing.T) {
	cfg := startMoto(t)
	now := time.Now().UTC().Truncate(time.Minute)
	m := now.Add(-20 * time.Minute)
	putLB(t, newCW(cfg), "AWS/ApplicationELB", "LoadBalancer", "app/gradual/1111111111111111", "PeakLCUs",
		[]time.Time{m.Add(10 * time.Second), m.Add(40 * time.Second), m.Add(2 * time.Minute)}, []float64{12, 8, 15})
	l := prewarmConfig(now, false, 0)
	l.Prewarm.LoadBalancers = l.Prewarm.LoadBalancers[:1]
	w := New(Options{Config: l, AWS: cfg, Now: func() time.Time { return now }})
	e := lbStatus(t, w.RefreshOnce(context.Background()), "gradual")
	if e.PeakLCU != 20 {
		t.Errorf("PeakLCU %g, want 20 (the busiest minute's sum)", e.PeakLCU)
	}
	if e.Sizing.Units != int(math.Ceil(20*l.Prewarm.Headroom-1e-9)) || !strings.Contains(strings.Join(e.Sizing.Steps, "\n"), "PeakLCUs: 20 LCU decides") {
		t.Errorf("sizing: %+v", e.Sizing)
	}
}
