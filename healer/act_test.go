package healer

// These tests run the actuator against a stateful in-memory fake of the one
// Auto Scaling call, and only for what the emulator cannot show on demand:
// retry and error classification (throttling N times, permanent errors,
// cancellation). Marking instances on the AWS emulator (moto) end to end is
// tested by the e2e suite.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
}

func newFakeASG(ids ...string) *fakeASG {
	f := &fakeASG{health: map[string]string{}, callsByID: map[string]int{}}
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
	f.health[id] = deref(in.HealthStatus)
	return &autoscaling.SetInstanceHealthOutput{}, nil
}

// DescribeAutoScalingInstances lists the instance while the fake knows it,
// in group web-asg (the group of every instance these tests use).
func (f *fakeASG) DescribeAutoScalingInstances(ctx context.Context, in *autoscaling.DescribeAutoScalingInstancesInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	out := &autoscaling.DescribeAutoScalingInstancesOutput{}
	for _, id := range in.InstanceIds {
		if _, ok := f.health[id]; ok && !f.leftGroup[id] {
			out.AutoScalingInstances = append(out.AutoScalingInstances, astypes.AutoScalingInstanceDetails{
				InstanceId: aws.String(id), AutoScalingGroupName: aws.String("web-asg")})
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
	tests := []struct {
		desc         string
		inst         discovery.Instance
		failNext     []error
		want         ActionResult
		wantAttempts int
		wantHealth   string // of i-1 afterwards in the fake
		wantErr      string // substring
		wantLog      string // substring
		left         bool   // the group no longer lists i-1
		wantDescribe int    // membership questions asked
	}{
		{desc: "success first time", inst: web1, want: ResultMarked, wantAttempts: 1, wantHealth: "Unhealthy"},
		{desc: "throttled 3 times then success: 4 attempts, each retry logged",
			inst:     web1,
			failNext: []error{throttle("Throttling"), throttle("ThrottlingException"), throttle("RequestLimitExceeded")},
			want:     ResultMarked, wantAttempts: 4, wantHealth: "Unhealthy",
			wantLog: "attempt=3"},
		{desc: "5xx then transport error then success",
			inst:     web1,
			failNext: []error{apiError(503, "ServiceUnavailable", "try later"), sendError(&net.OpError{Op: "dial", Err: errors.New("connection refused")})},
			want:     ResultMarked, wantAttempts: 3, wantHealth: "Unhealthy", wantDescribe: 2},
		{desc: "permanent validation error: failed after 1 attempt",
			inst:     web1,
			failNext: []error{apiError(400, "ValidationError", "HealthStatus must be Healthy or Unhealthy")},
			want:     ResultFailed, wantAttempts: 1, wantHealth: "Healthy",
			wantErr: "set instance health of i-1 (asg web-asg) after 1 attempts"},
		{desc: "access denied is permanent",
			inst:     web1,
			failNext: []error{apiError(403, "AccessDenied", "not authorized to perform autoscaling:SetInstanceHealth")},
			want:     ResultFailed, wantAttempts: 1, wantHealth: "Healthy", wantErr: "AccessDenied"},
		{desc: "unknown instance (emulator: InvalidInstanceID.NotFound) is gone, no retry",
			inst: discovery.Instance{ID: "i-404", Group: "web-asg", HealthStatus: "Healthy"},
			want: ResultGone, wantAttempts: 1, wantHealth: "Healthy"},
		{desc: "AWS's ValidationError for an instance not in a group is gone",
			inst:     web1,
			failNext: []error{apiError(400, "ValidationError", "Instance Id not found - No managed instance found for instance ID: i-1")},
			want:     ResultGone, wantAttempts: 1, wantHealth: "Healthy"},
		{desc: "5xx for an instance that left its group (the emulator's answer): gone after 1 attempt, not retried",
			inst: web1, left: true,
			failNext: []error{apiError(500, "InternalFailure", "StopIteration")},
			want:     ResultGone, wantAttempts: 1, wantHealth: "Healthy", wantDescribe: 1},
		{desc: "5xx for an instance still in its group: asked once per retry, then marked",
			inst:     web1,
			failNext: []error{apiError(500, "InternalFailure", "oops"), apiError(502, "BadGateway", "oops")},
			want:     ResultMarked, wantAttempts: 3, wantHealth: "Unhealthy", wantDescribe: 2},
		{desc: "throttling never asks about membership",
			inst: web1, left: true,
			failNext: []error{throttle("Throttling")},
			want:     ResultMarked, wantAttempts: 2, wantHealth: "Unhealthy", wantDescribe: 0},
		{desc: "already Unhealthy to the group: nothing called",
			inst: func() discovery.Instance { i := web1; i.HealthStatus = "Unhealthy"; return i }(),
			want: ResultAlreadyUnhealthy, wantAttempts: 0, wantHealth: "Healthy"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFakeASG("i-1")
			f.failNext = tc.failNext
			f.leftGroup = map[string]bool{"i-1": tc.left}
			var buf bytes.Buffer
			a := testActuator(f, log.NewLogfmtLogger(&buf))
			o := a.MarkUnhealthy(context.Background(), tc.inst, "req-7")
			if o.Result != tc.want || o.Attempts != tc.wantAttempts {
				t.Errorf("outcome = %s after %d attempts (err %v), want %s after %d", o.Result, o.Attempts, o.Err, tc.want, tc.wantAttempts)
			}
			if f.describes != tc.wantDescribe {
				t.Errorf("asked about membership %d times, want %d", f.describes, tc.wantDescribe)
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
				if f.lastOpts.RetryMaxAttempts != 1 {
					t.Errorf("SDK RetryMaxAttempts = %d, want 1 (backoff/v4 alone retries)", f.lastOpts.RetryMaxAttempts)
				}
				if deref(f.lastInput.HealthStatus) != "Unhealthy" || !deref(f.lastInput.ShouldRespectGracePeriod) {
					t.Errorf("input = HealthStatus %q ShouldRespectGracePeriod %v, want Unhealthy true",
						deref(f.lastInput.HealthStatus), deref(f.lastInput.ShouldRespectGracePeriod))
				}
			}
			if tc.wantLog != "" && !strings.Contains(buf.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, buf.String())
			}
			if retries := strings.Count(buf.String(), "retrying"); retries != max(tc.wantAttempts-1, 0) {
				t.Errorf("logged %d retries, want %d:\n%s", retries, tc.wantAttempts-1, buf.String())
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

func TestClassify(t *testing.T) {
	tests := []struct {
		desc      string
		err       error
		retryable bool
		gone      bool
	}{
		{desc: "nil", err: nil},
		{desc: "Throttling", err: apiError(400, "Throttling", "Rate exceeded"), retryable: true},
		{desc: "ThrottlingException", err: apiError(400, "ThrottlingException", ""), retryable: true},
		{desc: "RequestLimitExceeded", err: apiError(400, "RequestLimitExceeded", ""), retryable: true},
		{desc: "TooManyRequestsException", err: apiError(400, "TooManyRequestsException", ""), retryable: true},
		{desc: "throttle code without HTTP details", err: &smithy.GenericAPIError{Code: "Throttling"}, retryable: true},
		{desc: "HTTP 500", err: apiError(500, "InternalFailure", ""), retryable: true},
		{desc: "HTTP 503", err: apiError(503, "ServiceUnavailable", ""), retryable: true},
		{desc: "HTTP 429 with an odd code", err: apiError(429, "SomethingElse", ""), retryable: true},
		{desc: "server fault without HTTP details", err: &smithy.GenericAPIError{Code: "InternalError", Fault: smithy.FaultServer}, retryable: true},
		{desc: "ValidationError", err: apiError(400, "ValidationError", "bad value")},
		{desc: "AccessDenied", err: apiError(403, "AccessDenied", "no")},
		{desc: "AccessDeniedException", err: apiError(400, "AccessDeniedException", "no")},
		{desc: "request not sent: connection refused", err: sendError(&net.OpError{Op: "dial", Err: errors.New("connection refused")}), retryable: true},
		{desc: "request not sent: EOF", err: sendError(io.EOF), retryable: true},
		{desc: "bare net error", err: &net.DNSError{Err: "timeout", IsTimeout: true}, retryable: true},
		{desc: "deadline exceeded (a timeout)", err: fmt.Errorf("call: %w", context.DeadlineExceeded), retryable: true},
		{desc: "unexpected EOF", err: io.ErrUnexpectedEOF, retryable: true},
		{desc: "cancelled", err: fmt.Errorf("call: %w", context.Canceled)},
		{desc: "request not sent because cancelled", err: sendError(context.Canceled)},
		{desc: "plain error", err: errors.New("boom")},
		{desc: "emulator: InvalidInstanceID.NotFound", err: apiError(400, "InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist"), gone: true},
		{desc: "AWS: ValidationError instance not found", err: apiError(400, "ValidationError", "Instance Id not found - No managed instance found for instance ID: i-1"), gone: true},
		{desc: "AWS: ValidationError not part of a group", err: apiError(400, "ValidationError", "The instance i-1 is not part of Auto Scaling group web-asg."), gone: true},
		{desc: "ValidationError about something else is not gone", err: apiError(400, "ValidationError", "1 validation error detected")},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := Retryable(tc.err); got != tc.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.retryable)
			}
			if got := IsGone(tc.err); got != tc.gone {
				t.Errorf("IsGone(%v) = %v, want %v", tc.err, got, tc.gone)
			}
		})
	}
}
