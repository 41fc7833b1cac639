package healer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cenkalti/backoff/v4"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/logkeys"
)

// HealthSetter is the Auto Scaling calls the healer makes, shaped exactly
// like the SDK v2 methods; *autoscaling.Client satisfies it. Describe is
// only asked, between retries of a failing mark, whether the instance is
// still in its group.
type HealthSetter interface {
	SetInstanceHealth(ctx context.Context, params *autoscaling.SetInstanceHealthInput, optFns ...func(*autoscaling.Options)) (*autoscaling.SetInstanceHealthOutput, error)
	DescribeAutoScalingInstances(ctx context.Context, params *autoscaling.DescribeAutoScalingInstancesInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingInstancesOutput, error)
}

// ActionResult is how one marking ended. The values are the `result` label
// of medic_heal_actions_total.
type ActionResult string

const (
	// ResultMarked: AWS accepted the instance as Unhealthy; the group will replace it.
	ResultMarked ActionResult = "marked"
	// ResultDryRun: nothing was called; medic would have marked the instance.
	ResultDryRun ActionResult = "dry_run"
	// ResultAlreadyUnhealthy: the group already reported the instance
	// Unhealthy; nothing was called.
	ResultAlreadyUnhealthy ActionResult = "already_unhealthy"
	// ResultGone: the instance no longer exists or left its group; nothing to do.
	ResultGone ActionResult = "gone"
	// ResultFailed: the call failed for good (permanent error, retries
	// exhausted, or the context ended). Err says why.
	ResultFailed ActionResult = "failed"
)

// Outcome is what came of one MarkUnhealthy.
type Outcome struct {
	Result ActionResult
	// Attempts is the number of SetInstanceHealth calls made (0 when none).
	Attempts int
	// Err is set only for ResultFailed.
	Err error
}

// Actuator marks one instance Unhealthy so that its group replaces it. It
// never panics, honours ctx, and reports every end as an Outcome rather
// than an error.
type Actuator interface {
	MarkUnhealthy(ctx context.Context, inst discovery.Instance, requestID string) Outcome
}

// NewAWSActuator returns the Actuator that calls SetInstanceHealth
// (HealthStatus Unhealthy, ShouldRespectGracePeriod true) through c.
//
// Retries are backoff/v4's alone: the SDK's retryer is turned off for this
// call (RetryMaxAttempts 1), and the call is retried with exponential
// backoff, bounded by ctx and maxElapsed (0 means 1 minute), only while
// Retryable says so. An instance that no longer exists (IsGone) is
// ResultGone at once. Before each retry of a server error the group is
// asked whether the instance is still a member: an instance that left
// (AWS and the emulator answer such a call in different ways, the emulator
// with a 500) is ResultGone, not retried until maxElapsed. Each retry is
// logged with its attempt number.
func NewAWSActuator(c HealthSetter, logger log.Logger, maxElapsed time.Duration) Actuator {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	if maxElapsed <= 0 {
		maxElapsed = time.Minute
	}
	return &awsActuator{c: c, logger: logger, maxElapsed: maxElapsed, initialInterval: 500 * time.Millisecond}
}

type awsActuator struct {
	c               HealthSetter
	logger          log.Logger
	maxElapsed      time.Duration
	initialInterval time.Duration
	timer           backoff.Timer // nil: real timers; tests inject an immediate one
	clock           backoff.Clock // nil: the system clock; tests step it
}

// noSDKRetries turns off the SDK's own retryer for one call: backoff/v4
// retries SetInstanceHealth, and retrying in both places multiplies attempts.
func noSDKRetries(o *autoscaling.Options) { o.RetryMaxAttempts = 1 }

func (a *awsActuator) MarkUnhealthy(ctx context.Context, inst discovery.Instance, requestID string) Outcome {
	logger := log.With(a.logger,
		logkeys.InstanceID, inst.ID, logkeys.Group, inst.Group, logkeys.AZ, inst.AZ,
		logkeys.RequestID, requestID, logkeys.Operation, "SetInstanceHealth")
	if inst.HealthStatus == healthUnhealthy {
		return Outcome{Result: ResultAlreadyUnhealthy}
	}

	b := backoff.NewExponentialBackOff()
	b.InitialInterval = a.initialInterval
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = a.maxElapsed
	if a.clock != nil {
		b.Clock = a.clock
	}

	attempts := 0
	gone := false
	op := func() error {
		if err := ctx.Err(); err != nil {
			return backoff.Permanent(err)
		}
		attempts++
		_, err := a.c.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
			InstanceId:               aws.String(inst.ID),
			HealthStatus:             aws.String(healthUnhealthy),
			ShouldRespectGracePeriod: aws.Bool(true),
		}, noSDKRetries)
		switch {
		case err == nil:
			return nil
		case IsGone(err):
			gone = true
			return backoff.Permanent(err)
		case ctx.Err() != nil:
			return backoff.Permanent(err)
		case Retryable(err):
			if !isThrottle(err) && a.left(ctx, inst) {
				gone = true
				return backoff.Permanent(err)
			}
			return err
		default:
			return backoff.Permanent(err)
		}
	}
	notify := func(err error, wait time.Duration) {
		level.Warn(logger).Log(logkeys.Msg, "SetInstanceHealth failed, retrying",
			logkeys.Attempt, attempts, logkeys.Duration, wait, logkeys.Err, err)
	}
	err := backoff.RetryNotifyWithTimer(op, backoff.WithContext(b, ctx), notify, a.timer)
	switch {
	case err == nil:
		return Outcome{Result: ResultMarked, Attempts: attempts}
	case gone:
		level.Info(logger).Log(logkeys.Msg, "instance is gone, nothing to mark", logkeys.Attempt, attempts, logkeys.Err, err)
		return Outcome{Result: ResultGone, Attempts: attempts}
	default:
		return Outcome{Result: ResultFailed, Attempts: attempts,
			Err: fmt.Errorf("set instance health of %s (asg %s) after %d attempts: %w", inst.ID, inst.Group, attempts, err)}
	}
}

// left reports whether inst is known to have left its group: the group no
// longer lists it. Any doubt (the question fails too) is "no".
func (a *awsActuator) left(ctx context.Context, inst discovery.Instance) bool {
	out, err := a.c.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{
		InstanceIds: []string{inst.ID},
	})
	if err != nil {
		return false
	}
	for _, in := range out.AutoScalingInstances {
		if aws.ToString(in.InstanceId) == inst.ID && aws.ToString(in.AutoScalingGroupName) == inst.Group {
			return false
		}
	}
	return true
}

// isThrottle reports whether err is AWS throttling the caller.
func isThrottle(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && throttleCodes[apiErr.ErrorCode()] {
		return true
	}
	var respErr *awshttp.ResponseError
	return errors.As(err, &respErr) && respErr.Response != nil && respErr.HTTPStatusCode() == 429
}

// throttleCodes are the API error codes AWS uses for throttling.
var throttleCodes = map[string]bool{
	"Throttling":                             true,
	"ThrottlingException":                    true,
	"ThrottledException":                     true,
	"RequestLimitExceeded":                   true,
	"RequestThrottled":                       true,
	"RequestThrottledException":              true,
	"TooManyRequestsException":               true,
	"SlowDown":                               true,
	"ProvisionedThroughputExceededException": true,
}

// Retryable reports whether a failed AWS call may succeed if tried again:
// throttling (by API error code, or HTTP 429), server errors (HTTP 5xx),
// and transport failures (the request was not sent or no response came:
// connection refused or reset, timeouts, truncated responses). Anything
// else — validation, access denied, not found, a cancelled context — is
// permanent.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if isThrottle(err) {
		return true
	}
	var apiErr smithy.APIError
	errors.As(err, &apiErr)
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		code := respErr.HTTPStatusCode()
		return code >= 500 || code == 429
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return true
	}
	if apiErr != nil {
		// An API answer without HTTP details: only a server fault is worth retrying.
		return apiErr.ErrorFault() == smithy.FaultServer
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF)
}

// IsGone reports whether err says the instance no longer exists or is no
// longer in an Auto Scaling group — nothing left to mark. The emulator
// answers InvalidInstanceID.NotFound; AWS answers a ValidationError whose
// message says the instance was not found or is not part of a group.
func IsGone(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "InvalidInstanceID.NotFound":
		return true
	case "ValidationError":
		msg := strings.ToLower(apiErr.ErrorMessage())
		return strings.Contains(msg, "not found") ||
			strings.Contains(msg, "no managed instance") ||
			strings.Contains(msg, "not part of")
	}
	return false
}

// DryRun returns the Actuator that only says what it would do: it logs the
// instance it would mark and reports ResultDryRun, calling nothing. It is
// the only place dry-run lives.
func DryRun(logger log.Logger) Actuator {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return dryRun{logger: logger}
}

type dryRun struct{ logger log.Logger }

func (d dryRun) MarkUnhealthy(_ context.Context, inst discovery.Instance, requestID string) Outcome {
	level.Info(d.logger).Log(logkeys.Msg, "dry run: would mark instance Unhealthy",
		logkeys.InstanceID, inst.ID, logkeys.Group, inst.Group, logkeys.AZ, inst.AZ,
		logkeys.RequestID, requestID, logkeys.DryRun, true)
	return Outcome{Result: ResultDryRun}
}
