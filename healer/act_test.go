package healer

// These tests run the actuator against a stateful in-memory fake of the two
// Auto Scaling calls, and only for what the emulator cannot show on demand:
// given error sequences (throttling N times, permanent errors,
// cancellation), a mark the group does not take. The same paths on the
// emulator (moto) behind the fault proxy — pre-check skips, confirmation,
// dropped connections, throttling — are in moto_test.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/go-kit/log"

	"github.com/medic-sre/medic/discovery"
)

// fakeASG is a stateful stand-in for Auto Scaling's SetInstanceHealth: it
// knows instances and their health, answers unknown ids the way the
// emulator does, and can be told to fail the next calls with given errors.
type fakeASG struct {
	mu        sync.Mutex
	health    map[string]string // instance id → "Healthy" / "Unhealthy"
	failNext  []error           // returned by the next calls, one each
	calls     int
	callsByID map[string]int
	lastOpts  autoscaling.Options
	lastInput autoscaling.SetInstanceHealthInput
	onCall    func(n int)     // called with the call number, before answering
	describes int             // DescribeAutoScalingInstances calls
	leftGroup map[string]bool // instances the group no longer lists
	lifecycle map[string]string
	// ignore: SetInstanceHealth answers success but changes nothing.
	ignore bool
	// describeFail is returned by the next DescribeAutoScalingInstances calls.
	describeFail []error
}

func newFakeASG(ids ...string) *fakeASG {
	f := &fakeASG{health: map[string]string{}, callsByID: map[string]int{}, lifecycle: map[string]string{}}
	for _, id := range ids {
		f.health[id] = "Healthy"
	}
	return f
}

func (f *fakeASG) SetInstanceHealth(ctx context.Context, in *autoscaling.SetInstanceHealthInput, optFns ...func(*autoscaling.Options)) (*autoscaling.SetInstanceHealthOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	id := deref(in.InstanceId)
	f.callsByID[id]++
	f.lastInput = *in
	f.lastOpts = autoscaling.Options{RetryMaxAttempts: 3}
	for _, fn := range optFns {
		fn(&f.lastOpts)
	}
	if f.onCall != nil {
		f.onCall(f.calls)
	}
	if len(f.failNext) > 0 {
		err := f.failNext[0]
		f.failNext = f.failNext[1:]
		return nil, err
	}
	if _, ok := f.health[id]; !ok {
		return nil, apiError(400, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
	}
	if !f.ignore {
		f.health[id] = deref(in.HealthStatus)
	}
	return &autoscaling.SetInstanceHealthOutput{}, nil
}

// DescribeAutoScalingInstances lists the instance while the fake knows it,
// in group web-asg (the group of every instance these tests use), with its
// lifecycle state (InService unless set) and health spelt as this call
// spells it (HEALTHY / UNHEALTHY).
func (f *fakeASG) DescribeAutoScalingInstances(ctx context.Context, in *autoscaling.DescribeAutoScalingInstancesInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	if len(f.describeFail) > 0 {
		err := f.describeFail[0]
		f.describeFail = f.describeFail[1:]
		return nil, err
	}
	out := &autoscaling.DescribeAutoScalingInstancesOutput{}
	for _, id := range in.InstanceIds {
		if h, ok := f.health[id]; ok && !f.leftGroup[id] {
			lc := f.lifecycle[id]
			if lc == "" {
				lc = "InService"
			}
			out.AutoScalingInstances = append(out.AutoScalingInstances, astypes.AutoScalingInstanceDetails{
				InstanceId: aws.String(id), AutoScalingGroupName: aws.String("web-asg"),
				LifecycleState: aws.String(lc), HealthStatus: aws.String(strings.ToUpper(h))})
		}
	}
	return out, nil
}

func (f *fakeASG) healthOf(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health[id]
}

func (f *fakeASG) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// apiError builds the error chain the SDK returns for an API error answer.
func apiError(status int, code, msg string) error {
	fault := smithy.FaultClient
	if status >= 500 {
		fault = smithy.FaultServer
	}
	return &smithy.OperationError{
		ServiceID:     "Auto Scaling",
		OperationName: "SetInstanceHealth",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: msg, Fault: fault},
			},
			RequestID: "req-1",
		},
	}
}

// sendError is the chain for a request that never got an answer.
func sendError(err error) error {
	return &smithy.OperationError{ServiceID: "Auto Scaling", OperationName: "SetInstanceHealth",
		Err: &smithyhttp.RequestSendError{Err: err}}
}

// instantTimer fires at once, so retries take no wall-clock time.
type instantTimer struct{ c chan time.Time }

func (t *instantTimer) Start(time.Duration) {
	t.c = make(chan time.Time, 1)
	t.c <- time.Time{}
}
func (t *instantTimer) Stop()               {}
func (t *instantTimer) C() <-chan time.Time { return t.c }

// stuckTimer never fires; Start calls onStart (to cancel a context mid-wait).
type stuckTimer struct{ onStart func() }

func (t *stuckTimer) Start(time.Duration) { t.onStart() }
func (t *stuckTimer) Stop()               {}
func (t *stuckTimer) C() <-chan time.Time { return nil }

// steppingClock moves forward step on every reading, so maxElapsed is
// reached after a known number of retries without waiting.
type steppingClock struct {
	t    time.Time
	step time.Duration
}

func (c *steppingClock) Now() time.Time { c.t = c.t.Add(c.step); return c.t }

// testActuator is NewAWSActuator with timers that fire at once.
func testActuator(f HealthSetter, logger log.Logger) *awsActuator {
	a := NewAWSActuator(f, logger, time.Minute).(*awsActuator)
	a.timer = &instantTimer{}
	return a
}

var web1 = discovery.Instance{ID: "i-1", Group: "web-asg", AZ: "us-east-1a", LifecycleState: "InService", HealthStatus: "Healthy"}

func TestAWSActuator(t *testing.T) {
	throttle := func(code string) error { return apiError(400, code, "Rate exceeded") }
	unhealthy := func() discovery.Instance { i := web1; i.HealthStatus = "Unhealthy"; return i }()
	tests := []struct {
		desc         string
		inst         discovery.Instance
		failNext     []error // SetInstanceHealth answers
		describeFail []error // DescribeAutoScalingInstances answers
		lifecycle    string  // of i-1 in the group ("" InService)
		groupHealth  string  // of i-1 in the group ("" Healthy)
		left         bool    // the group no longer lists i-1
		leaveOnCall  bool    // i-1 leaves the group when the first SetInstanceHealth arrives
		ignore       bool    // SetInstanceHealth is accepted but changes nothing
		want         ActionResult
		wantReason   string // substring
		wantAttempts int
		wantHealth   string // of i-1 afterwards in the fake
		wantErr      string // substring
		wantLog      string // substring
		wantDescribe int    // DescribeAutoScalingInstances calls
		wantRetries  int    // "retrying" log lines
	}{
		{desc: "success first time: one re-read before, one confirmation after",
			inst: web1, want: ResultMarked, wantAttempts: 1, wantHealth: "Unhealthy", wantDescribe: 2},
		{desc: "throttled 3 times then success: 4 attempts, each retry logged",
			inst:     web1,
			failNext: []error{throttle("Throttling"), throttle("ThrottlingException"), throttle("RequestLimitExceeded")},
			want:     ResultMarked, wantAttempts: 4, wantHealth: "Unhealthy", wantDescribe: 2, wantRetries: 3,
			wantLog: "attempt=3"},
		{desc: "EC2ThrottledException and PriorRequestNotComplete are throttling too",
			inst:     web1,
			failNext: []error{throttle("EC2ThrottledException"), throttle("PriorRequestNotComplete")},
			want:     ResultMarked, wantAttempts: 3, wantHealth: "Unhealthy", wantDescribe: 2, wantRetries: 2},
		{desc: "5xx then dropped connection then success: membership asked after the 5xx",
			inst: web1,
			failNext: []error{apiError(503, "ServiceUnavailable", "try later"),
				sendError(&net.OpError{Op: "read", Err: errors.New("connection reset by peer")})},
			want: ResultMarked, wantAttempts: 3, wantHealth: "Unhealthy", wantDescribe: 4, wantRetries: 2},
		{desc: "permanent validation error: failed after 1 attempt",
			inst:     web1,
			failNext: []error{apiError(400, "ValidationError", "HealthStatus must be Healthy or Unhealthy")},
			want:     ResultFailed, wantAttempts: 1, wantHealth: "Healthy", wantDescribe: 1,
			wantErr: "mark i-1 (asg web-asg) Unhealthy after 1 SetInstanceHealth attempts"},
		{desc: "access denied is permanent",
			inst:     web1,
			failNext: []error{apiError(403, "AccessDenied", "not authorized to perform autoscaling:SetInstanceHealth")},
			want:     ResultFailed, wantAttempts: 1, wantHealth: "Healthy", wantErr: "AccessDenied", wantDescribe: 1},
		{desc: "pre-check: unknown to the group: gone, nothing marked",
			inst: discovery.Instance{ID: "i-404", Group: "web-asg", HealthStatus: "Healthy"},
			want: ResultGone, wantReason: "left its group", wantHealth: "Healthy", wantDescribe: 1},
		{desc: "pre-check: left its group since the fleet view",
			inst: web1, left: true,
			want: ResultGone, wantReason: "left its group", wantHealth: "Healthy", wantDescribe: 1},
		{desc: "pre-check: in Standby now: skipped, state named",
			inst: web1, lifecycle: "Standby",
			want: ResultSkipped, wantReason: "no longer InService: Standby", wantHealth: "Healthy", wantDescribe: 1},
		{desc: "pre-check: Terminating:Wait now: skipped",
			inst: web1, lifecycle: "Terminating:Wait",
			want: ResultSkipped, wantReason: "no longer InService: Terminating:Wait", wantHealth: "Healthy", wantDescribe: 1},
		{desc: "pre-check: the group holds it Unhealthy already",
			inst: web1, groupHealth: "Unhealthy",
			want: ResultAlreadyUnhealthy, wantReason: "already Unhealthy", wantHealth: "Unhealthy", wantDescribe: 1},
		{desc: "pre-check throttled once, then marked",
			inst: web1, describeFail: []error{throttle("Throttling")},
			want: ResultMarked, wantAttempts: 1, wantHealth: "Unhealthy", wantDescribe: 3, wantRetries: 1},
		{desc: "pre-check refused for good: failed, nothing marked",
			inst: web1, describeFail: []error{apiError(403, "AccessDenied", "no")},
			want: ResultFailed, wantHealth: "Healthy", wantDescribe: 1, wantErr: "re-read before marking"},
		{desc: "AWS's ValidationError for an instance not in a group is gone",
			inst:     web1,
			failNext: []error{apiError(400, "ValidationError", "Instance Id not found - No managed instance found for instance ID: i-1")},
			want:     ResultGone, wantAttempts: 1, wantHealth: "Healthy", wantDescribe: 1},
		{desc: "5xx for an instance that left its group meanwhile (the emulator's answer): gone after 1 attempt",
			inst: web1, leaveOnCall: true,
			failNext: []error{apiError(500, "InternalFailure", "StopIteration")},
			want:     ResultGone, wantAttempts: 1, wantHealth: "Healthy", wantDescribe: 2},
		{desc: "accepted but never applied: marked again once, then not applied",
			inst: web1, ignore: true,
			want: ResultNotApplied, wantReason: "mark not applied", wantAttempts: 2, wantHealth: "Healthy",
			wantLog: "marking again"},
		{desc: "already Unhealthy in the fleet view: nothing called",
			inst: unhealthy, want: ResultAlreadyUnhealthy, wantAttempts: 0, wantHealth: "Healthy"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFakeASG("i-1")
			f.failNext = tc.failNext
			f.describeFail = tc.describeFail
			f.leftGroup = map[string]bool{"i-1": tc.left}
			f.lifecycle["i-1"] = tc.lifecycle
			f.ignore = tc.ignore
			if tc.groupHealth != "" {
				f.health["i-1"] = tc.groupHealth
			}
			if tc.leaveOnCall {
				f.onCall = func(int) { f.leftGroup["i-1"] = true }
			}
			var buf bytes.Buffer
			a := testActuator(f, log.NewLogfmtLogger(&buf))
			a.clock = &steppingClock{t: t0, step: 100 * time.Millisecond}
			o := a.MarkUnhealthy(context.Background(), tc.inst, "req-7")
			if o.Result != tc.want || o.Attempts != tc.wantAttempts {
				t.Errorf("outcome = %s after %d attempts (err %v, reason %q), want %s after %d", o.Result, o.Attempts, o.Err, o.Reason, tc.want, tc.wantAttempts)
			}
			if !strings.Contains(o.Reason, tc.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", o.Reason, tc.wantReason)
			}
			if tc.wantDescribe > 0 && f.describes != tc.wantDescribe {
				t.Errorf("DescribeAutoScalingInstances called %d times, want %d", f.describes, tc.wantDescribe)
			}
			if f.callCount() != tc.wantAttempts {
				t.Errorf("fake saw %d calls, want %d", f.callCount(), tc.wantAttempts)
			}
			if (o.Err != nil) != (tc.want == ResultFailed) {
				t.Errorf("err = %v with result %s", o.Err, o.Result)
			}
			if tc.wantErr != "" && (o.Err == nil || !strings.Contains(o.Err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want it to contain %q", o.Err, tc.wantErr)
			}
			if got := f.healthOf("i-1"); got != tc.wantHealth {
				t.Errorf("i-1 health = %q, want %q", got, tc.wantHealth)
			}
			if tc.wantAttempts > 0 {
				if f.lastOpts.RetryMaxAttempts != 0 {
					t.Errorf("SDK RetryMaxAttempts = %d, want 0 with the no-op retryer (backoff/v4 alone retries)", f.lastOpts.RetryMaxAttempts)
				}
				if deref(f.lastInput.HealthStatus) != "Unhealthy" || !deref(f.lastInput.ShouldRespectGracePeriod) {
					t.Errorf("input = HealthStatus %q ShouldRespectGracePeriod %v, want Unhealthy true",
						deref(f.lastInput.HealthStatus), deref(f.lastInput.ShouldRespectGracePeriod))
				}
			}
			if tc.wantLog != "" && !strings.Contains(buf.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, buf.String())
			}
			if retries := strings.Count(buf.String(), "retrying"); retries != tc.wantRetries {
				t.Errorf("logged %d retries, want %d:\n%s", retries, tc.wantRetries, buf.String())
			}
		})
	}
}

func TestAWSActuatorStops(t *testing.T) {
	throttled := apiError(400, "Throttling", "Rate exceeded")

	t.Run("context cancelled before the call: nothing called", func(t *testing.T) {
		f := newFakeASG("i-1")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		o := testActuator(f, log.NewNopLogger()).MarkUnhealthy(ctx, web1, "r")
		if o.Result != ResultFailed || o.Attempts != 0 || !errors.Is(o.Err, context.Canceled) {
			t.Errorf("outcome = %+v, want failed, 0 attempts, context.Canceled", o)
		}
	})

	t.Run("context cancelled during a call: no retry", func(t *testing.T) {
		f := newFakeASG("i-1")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.failNext = []error{throttled, throttled, throttled, throttled}
		f.onCall = func(n int) {
			if n == 2 {
				cancel()
			}
		}
		o := testActuator(f, log.NewNopLogger()).MarkUnhealthy(ctx, web1, "r")
		if o.Result != ResultFailed || o.Attempts != 2 {
			t.Errorf("outcome = %+v, want failed after 2 attempts", o)
		}
	})

	t.Run("context cancelled while waiting to retry", func(t *testing.T) {
		f := newFakeASG("i-1")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.failNext = []error{throttled, throttled}
		a := testActuator(f, log.NewNopLogger())
		a.timer = &stuckTimer{onStart: cancel}
		o := a.MarkUnhealthy(ctx, web1, "r")
		if o.Result != ResultFailed || o.Attempts != 1 || !errors.Is(o.Err, context.Canceled) {
			t.Errorf("outcome = %+v, want failed after 1 attempt with context.Canceled", o)
		}
		if f.healthOf("i-1") != "Healthy" {
			t.Error("instance was marked after cancellation")
		}
	})

	t.Run("every answer lost but the mark landed: marked, counted once", func(t *testing.T) {
		f := newFakeASG("i-1")
		reset := sendError(&net.OpError{Op: "read", Err: errors.New("connection reset by peer")})
		for range 100 {
			f.failNext = append(f.failNext, reset)
		}
		f.onCall = func(int) { f.health["i-1"] = "Unhealthy" } // applied, then the answer is lost
		a := testActuator(f, log.NewNopLogger())
		a.maxElapsed = 5 * time.Second
		a.clock = &steppingClock{t: t0, step: time.Second}
		if o := a.MarkUnhealthy(context.Background(), web1, "r"); o.Result != ResultMarked || o.Err != nil {
			t.Errorf("outcome = %+v, want marked (the call reached AWS)", o)
		}
	})

	t.Run("throttled beyond maxElapsed: failed with the last error", func(t *testing.T) {
		f := newFakeASG("i-1")
		for range 100 {
			f.failNext = append(f.failNext, throttled)
		}
		a := testActuator(f, log.NewNopLogger())
		a.maxElapsed = 5 * time.Second
		a.clock = &steppingClock{t: t0, step: time.Second}
		o := a.MarkUnhealthy(context.Background(), web1, "r")
		if o.Result != ResultFailed || !strings.Contains(fmt.Sprint(o.Err), "Throttling") {
			t.Errorf("outcome = %+v, want failed with Throttling", o)
		}
		if o.Attempts < 2 || o.Attempts > 10 {
			t.Errorf("attempts = %d, want a few before maxElapsed", o.Attempts)
		}
	})
}

func TestDryRun(t *testing.T) {
	var buf bytes.Buffer
	o := DryRun(log.NewLogfmtLogger(&buf)).MarkUnhealthy(context.Background(), web1, "req-9")
	if o != (Outcome{Result: ResultDryRun}) {
		t.Errorf("outcome = %+v, want dry_run with no attempts", o)
	}
	for _, want := range []string{"instance_id=i-1", "asg=web-asg", "request_id=req-9", "dry_run=true"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q: %s", want, buf.String())
		}
	}
}
