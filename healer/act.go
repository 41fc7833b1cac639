package healer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/cenkalti/backoff/v4"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/awsapi"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/logkeys"
)

// HealthSetter is the Auto Scaling calls the actuator makes, shaped exactly
// like the SDK v2 methods; *autoscaling.Client satisfies it.
// DescribeAutoScalingInstances re-reads the instance right before a mark
// and confirms the mark after it.
type HealthSetter interface {
	SetInstanceHealth(ctx context.Context, params *autoscaling.SetInstanceHealthInput, optFns ...func(*autoscaling.Options)) (*autoscaling.SetInstanceHealthOutput, error)
	DescribeAutoScalingInstances(ctx context.Context, params *autoscaling.DescribeAutoScalingInstancesInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingInstancesOutput, error)
}

// ActionResult is how one marking ended. The values are the `result` label
// of medic_heal_actions_total; ActionResults lists them all.
type ActionResult string

const (
	// ResultMarked: AWS accepted the instance as Unhealthy and the group
	// was seen holding it Unhealthy (or Terminating) afterwards.
	ResultMarked ActionResult = "marked"
	// ResultDryRun: nothing was called; medic would have marked the instance.
	ResultDryRun ActionResult = "dry_run"
	// ResultStandby: nothing was called because this replica does not lead
	// (or stopped leading right before the call); the leader decides afresh.
	ResultStandby ActionResult = "standby"
	// ResultAlreadyUnhealthy: the group already holds the instance
	// Unhealthy; nothing was called.
	ResultAlreadyUnhealthy ActionResult = "already_unhealthy"
	// ResultGone: the instance no longer exists or left its group; nothing to do.
	ResultGone ActionResult = "gone"
	// ResultSkipped: the re-read right before the call showed the
	// instance no longer InService (Standby, Terminating, Detaching, ...);
	// nothing was called. Reason names its state.
	ResultSkipped ActionResult = "skipped"
	// ResultNotApplied: SetInstanceHealth was accepted (twice) but the
	// group was never seen holding the instance Unhealthy within the
	// confirmation bound.
	ResultNotApplied ActionResult = "not_applied"
	// ResultFailed: a call failed for good (permanent error, retries
	// exhausted, or the context ended). Err says why.
	ResultFailed ActionResult = "failed"
)

// ActionResults is every ActionResult, for initialising metric series.
var ActionResults = []ActionResult{ResultMarked, ResultDryRun, ResultStandby, ResultAlreadyUnhealthy,
	ResultGone, ResultSkipped, ResultNotApplied, ResultFailed}

// Outcome is what came of one MarkUnhealthy.
type Outcome struct {
	Result ActionResult
	// Attempts is the number of SetInstanceHealth calls made (0 when none).
	Attempts int
	// Reason says, in words, why a mark was not made or not confirmed
	// (e.g. "no longer InService: Standby"); empty for ResultMarked.
	Reason string
	// Generation is the lease generation the mark was made under (0
	// without a lease).
	Generation int64
	// Err is set only for ResultFailed.
	Err error
}

// Actuator marks one instance Unhealthy so that its group replaces it. It
// never panics, honours ctx, and reports every end as an Outcome rather
// than an error.
type Actuator interface {
	MarkUnhealthy(ctx context.Context, inst discovery.Instance, requestID string) Outcome
}

// Timing of the AWS actuator. Retries of any call start at
// retryInitialInterval and grow to retryMaxInterval, so a dropped
// connection or a throttled call is tried again within a second or two;
// the whole mark is bounded by maxElapsed (NewAWSActuator) and ctx.
const (
	retryInitialInterval = 200 * time.Millisecond
	retryMaxInterval     = 2 * time.Second
	// DefaultConfirmWithin bounds how long the actuator waits, after an
	// accepted SetInstanceHealth, to see the group hold the instance
	// Unhealthy (Auto Scaling applies a mark at once; the bound covers an
	// eventually consistent read).
	DefaultConfirmWithin = 5 * time.Second
	confirmPollInterval  = 250 * time.Millisecond
	landedReadTimeout    = 2 * time.Second
)

// NewAWSActuator returns the Actuator that marks through c. One mark:
//
//  1. The group already holds the instance Unhealthy (by the fleet view):
//     ResultAlreadyUnhealthy, nothing called.
//  2. Pre-check: one DescribeAutoScalingInstances re-reads the instance. Not
//     listed, or in another group: ResultGone ("left its group"). Unhealthy
//     now: ResultAlreadyUnhealthy. Not InService: ResultSkipped, naming its
//     state.
//  3. Fence: right before every SetInstanceHealth, a LeaderOnly wrapper's
//     fence (carried in ctx) is asked whether this replica still leads under
//     the same lease generation; if not: ResultStandby, nothing called.
//  4. SetInstanceHealth (HealthStatus Unhealthy, ShouldRespectGracePeriod
//     true). An instance gone by the answer (awsapi.IsGone): ResultGone.
//  5. Confirm: DescribeAutoScalingInstances is polled for up to
//     confirmWithin until the group holds the instance Unhealthy or
//     Terminating (or no longer lists it: replaced already): ResultMarked.
//     Otherwise steps 3–5 run once more, then ResultNotApplied.
//  6. A SetInstanceHealth that never got an answer (retries ran out, or
//     ctx ended mid-call) is checked with one more read: if the group holds
//     the instance Unhealthy the call reached AWS, and it is ResultMarked.
//
// Every call is retried by backoff/v4 alone (the SDK's retryer is off:
// awsapi.NoRetry), while awsapi.Retryable says so — throttling, 5xx,
// dropped connections — from 200 ms up to 2 s apart, bounded by ctx and
// maxElapsed (0 means 30 s) over the whole mark. Before retrying a server
// error of SetInstanceHealth the instance is re-read: one that left its
// group (the emulator answers such a call with a 500) is ResultGone. Each
// retry is logged with its attempt number.
func NewAWSActuator(c HealthSetter, logger log.Logger, maxElapsed time.Duration) Actuator {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	if maxElapsed <= 0 {
		maxElapsed = 30 * time.Second
	}
	return &awsActuator{c: c, logger: logger, maxElapsed: maxElapsed,
		initialInterval: retryInitialInterval, confirmWithin: DefaultConfirmWithin}
}

type awsActuator struct {
	c               HealthSetter
	logger          log.Logger
	maxElapsed      time.Duration
	initialInterval time.Duration
	confirmWithin   time.Duration
	timer           backoff.Timer // nil: real timers; tests inject an immediate one
	clock           backoff.Clock // nil: the system clock; tests step it
}

// member is what one DescribeAutoScalingInstances says of an instance.
type member struct {
	listed    bool // the group it names is the instance's group
	lifecycle string
	health    string // "HEALTHY" / "UNHEALTHY" as this call spells it
}

func (m member) unhealthy() bool { return strings.EqualFold(m.health, discovery.HealthUnhealthy) }

// markRun is one MarkUnhealthy's state: its logger, its budget of time
// (one backoff for the whole mark) and the SetInstanceHealth calls made.
type markRun struct {
	a        *awsActuator
	inst     discovery.Instance
	logger   log.Logger
	deadline time.Time
	attempts int
	gen      int64
}

func (a *awsActuator) MarkUnhealthy(ctx context.Context, inst discovery.Instance, requestID string) Outcome {
	f := fenceFrom(ctx)
	logger := log.With(a.logger,
		logkeys.InstanceID, inst.ID, logkeys.Group, inst.Group, logkeys.AZ, inst.AZ,
		logkeys.RequestID, requestID, logkeys.Operation, "SetInstanceHealth")
	if f != nil {
		logger = log.With(logger, logkeys.LeaseGeneration, f.generation)
	}
	if inst.HeldUnhealthy() {
		return Outcome{Result: ResultAlreadyUnhealthy, Reason: "the group holds it Unhealthy"}
	}
	r := &markRun{a: a, inst: inst, logger: logger, deadline: a.now().Add(a.maxElapsed)}
	if f != nil {
		r.gen = f.generation
	}
	o := r.run(ctx, f)
	o.Attempts, o.Generation = r.attempts, r.gen
	switch {
	case o.Err != nil:
		o.Err = fmt.Errorf("mark %s (asg %s) Unhealthy after %d SetInstanceHealth attempts: %w", inst.ID, inst.Group, r.attempts, o.Err)
	case o.Result == ResultGone:
		level.Info(logger).Log(logkeys.Msg, "instance is gone, nothing to mark", logkeys.Reason, o.Reason, logkeys.Attempt, r.attempts)
	case o.Result != ResultMarked:
		level.Info(logger).Log(logkeys.Msg, "not marked", logkeys.Result, o.Result, logkeys.Reason, o.Reason, logkeys.Attempt, r.attempts)
	}
	return o
}

func (r *markRun) run(ctx context.Context, f *fence) Outcome {
	m, err := r.describe(ctx)
	if err != nil {
		return Outcome{Result: ResultFailed, Err: fmt.Errorf("re-read before marking: %w", err)}
	}
	if o, stop := precheck(m); stop {
		return o
	}
	for try := 1; ; try++ {
		if f != nil {
			if err := f.check(ctx); err != nil {
				return Outcome{Result: ResultStandby, Reason: err.Error()}
			}
		}
		if o, stop := r.set(ctx); stop {
			return r.landedAnyway(ctx, o)
		}
		ok, o, err := r.confirm(ctx)
		switch {
		case err != nil:
			return Outcome{Result: ResultFailed, Err: fmt.Errorf("confirm the mark: %w", err)}
		case ok:
			return o
		case try == 2:
			return Outcome{Result: ResultNotApplied, Reason: fmt.Sprintf(
				"mark not applied: the group did not hold it Unhealthy within %s, twice", r.a.confirmWithin)}
		}
		level.Warn(r.logger).Log(logkeys.Msg, "mark not seen by the group, marking again", logkeys.Duration, r.a.confirmWithin)
	}
}

// landedAnyway turns a mark that failed without an answer (retries ran
// out on timeouts, dropped connections, 5xx, or ctx ended mid-call) into
// ResultMarked when one read shows the group holds the instance Unhealthy
// after all: a call that reached AWS is a mark, and counts as one. The read
// runs even when ctx has ended (it changes nothing), bounded by
// landedReadTimeout.
func (r *markRun) landedAnyway(ctx context.Context, o Outcome) Outcome {
	if o.Result != ResultFailed || r.attempts == 0 || (!awsapi.Retryable(o.Err) && ctx.Err() == nil) {
		return o
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), landedReadTimeout)
	defer cancel()
	if m, err := r.describeOnce(rctx); err == nil && m.listed && m.unhealthy() {
		level.Warn(r.logger).Log(logkeys.Msg, "SetInstanceHealth got no answer but the group holds the instance Unhealthy: it landed",
			logkeys.Err, o.Err)
		return Outcome{Result: ResultMarked}
	}
	return o
}

// precheck turns the re-read instance into the outcome that stops the mark
// before any call; stop false means mark.
func precheck(m member) (Outcome, bool) {
	switch {
	case !m.listed:
		return Outcome{Result: ResultGone, Reason: "left its group"}, true
	case m.unhealthy():
		return Outcome{Result: ResultAlreadyUnhealthy, Reason: "already Unhealthy"}, true
	case m.lifecycle != discovery.LifecycleInService:
		return Outcome{Result: ResultSkipped, Reason: "no longer InService: " + m.lifecycle}, true
	}
	return Outcome{}, false
}

// set calls SetInstanceHealth with retries; stop true with the outcome when
// the mark ends here (gone, failed), false when AWS accepted it.
func (r *markRun) set(ctx context.Context) (Outcome, bool) {
	gone := false
	err := r.retry(ctx, "SetInstanceHealth", func() error {
		r.attempts++
		_, err := r.a.c.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
			InstanceId:               aws.String(r.inst.ID),
			HealthStatus:             aws.String(discovery.HealthUnhealthy),
			ShouldRespectGracePeriod: aws.Bool(true),
		}, awsapi.NoRetry)
		switch {
		case err == nil:
			return nil
		case awsapi.IsGone(err):
			gone = true
			return backoff.Permanent(err)
		case awsapi.Retryable(err) && !awsapi.IsThrottle(err) && ctx.Err() == nil:
			if m, derr := r.describeOnce(ctx); derr == nil && !m.listed {
				gone = true
				return backoff.Permanent(err)
			}
		}
		return err
	})
	switch {
	case err == nil:
		return Outcome{}, false
	case gone:
		return Outcome{Result: ResultGone, Reason: "left its group"}, true
	default:
		return Outcome{Result: ResultFailed, Err: err}, true
	}
}

// confirm polls the group until it holds the instance Unhealthy or
// Terminating, or no longer lists it (ok, ResultMarked), for up to
// confirmWithin; ok false when it never did.
func (r *markRun) confirm(ctx context.Context) (bool, Outcome, error) {
	until := r.a.now().Add(r.a.confirmWithin)
	for {
		m, err := r.describe(ctx)
		if err != nil {
			return false, Outcome{}, err
		}
		if !m.listed || m.unhealthy() || strings.HasPrefix(m.lifecycle, "Terminat") {
			return true, Outcome{Result: ResultMarked}, nil
		}
		if !r.a.now().Before(until) {
			return false, Outcome{}, nil
		}
		if err := r.a.sleep(ctx, confirmPollInterval); err != nil {
			return false, Outcome{}, err
		}
	}
}

// describe re-reads the instance, with retries.
func (r *markRun) describe(ctx context.Context) (member, error) {
	var m member
	err := r.retry(ctx, "DescribeAutoScalingInstances", func() error {
		var err error
		m, err = r.describeOnce(ctx)
		return err
	})
	return m, err
}

// describeOnce is one DescribeAutoScalingInstances for the instance.
func (r *markRun) describeOnce(ctx context.Context) (member, error) {
	out, err := r.a.c.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{
		InstanceIds: []string{r.inst.ID},
	}, awsapi.NoRetry)
	if err != nil {
		return member{}, err
	}
	for _, in := range out.AutoScalingInstances {
		if aws.ToString(in.InstanceId) == r.inst.ID && aws.ToString(in.AutoScalingGroupName) == r.inst.Group {
			return member{listed: true, lifecycle: aws.ToString(in.LifecycleState), health: aws.ToString(in.HealthStatus)}, nil
		}
	}
	return member{}, nil
}

// retry runs op under backoff/v4 until it succeeds, fails permanently (an
// error awsapi.Retryable refuses, or backoff.Permanent), ctx ends or the
// mark's time runs out. Each retry is logged.
func (r *markRun) retry(ctx context.Context, operation string, op func() error) error {
	left := r.deadline.Sub(r.a.now())
	if left <= 0 {
		left = time.Nanosecond
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = r.a.initialInterval
	b.MaxInterval = retryMaxInterval
	b.MaxElapsedTime = left
	if r.a.clock != nil {
		b.Clock = r.a.clock
	}
	n := 0
	wrapped := func() error {
		if err := ctx.Err(); err != nil {
			return backoff.Permanent(err)
		}
		n++
		err := op()
		var perm *backoff.PermanentError
		switch {
		case err == nil, errors.As(err, &perm):
			return err
		case ctx.Err() != nil, !awsapi.Retryable(err):
			return backoff.Permanent(err)
		}
		return err
	}
	notify := func(err error, wait time.Duration) {
		level.Warn(r.logger).Log(logkeys.Msg, operation+" failed, retrying",
			logkeys.Attempt, n, logkeys.Duration, wait, logkeys.Err, err)
	}
	return backoff.RetryNotifyWithTimer(wrapped, backoff.WithContext(b, ctx), notify, r.a.timer)
}

func (a *awsActuator) now() time.Time {
	if a.clock != nil {
		return a.clock.Now()
	}
	return time.Now()
}

// sleep waits d (at once with a test timer), or until ctx ends.
func (a *awsActuator) sleep(ctx context.Context, d time.Duration) error {
	t := a.timer
	if t == nil {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.Start(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
