package limits

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/time/rate"

	"github.com/medic-sre/medic/internal/logkeys"
)

// The AWS calls this package makes, each declared here, where it is used,
// with the SDK v2 signature. *autoscaling.Client etc. satisfy them; tests
// swap in a local fake for the few calls the emulator lacks.

type asgAPI interface {
	DescribeAccountLimits(context.Context, *autoscaling.DescribeAccountLimitsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAccountLimitsOutput, error)
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeLaunchConfigurations(context.Context, *autoscaling.DescribeLaunchConfigurationsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeLaunchConfigurationsOutput, error)
}

type ec2API interface {
	DescribeAccountAttributes(context.Context, *ec2.DescribeAccountAttributesInput, ...func(*ec2.Options)) (*ec2.DescribeAccountAttributesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeSpotInstanceRequests(context.Context, *ec2.DescribeSpotInstanceRequestsInput, ...func(*ec2.Options)) (*ec2.DescribeSpotInstanceRequestsOutput, error)
	DescribeAddresses(context.Context, *ec2.DescribeAddressesInput, ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeNetworkInterfaces(context.Context, *ec2.DescribeNetworkInterfacesInput, ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	DescribeInternetGateways(context.Context, *ec2.DescribeInternetGatewaysInput, ...func(*ec2.Options)) (*ec2.DescribeInternetGatewaysOutput, error)
	DescribeNatGateways(context.Context, *ec2.DescribeNatGatewaysInput, ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error)
	DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	GetInstanceTypesFromInstanceRequirements(context.Context, *ec2.GetInstanceTypesFromInstanceRequirementsInput, ...func(*ec2.Options)) (*ec2.GetInstanceTypesFromInstanceRequirementsOutput, error)
}

type elbv2API interface {
	DescribeAccountLimits(context.Context, *elbv2.DescribeAccountLimitsInput, ...func(*elbv2.Options)) (*elbv2.DescribeAccountLimitsOutput, error)
	DescribeLoadBalancers(context.Context, *elbv2.DescribeLoadBalancersInput, ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error)
	DescribeTargetGroups(context.Context, *elbv2.DescribeTargetGroupsInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetGroupsOutput, error)
	DescribeTargetHealth(context.Context, *elbv2.DescribeTargetHealthInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error)
	DescribeListeners(context.Context, *elbv2.DescribeListenersInput, ...func(*elbv2.Options)) (*elbv2.DescribeListenersOutput, error)
	DescribeRules(context.Context, *elbv2.DescribeRulesInput, ...func(*elbv2.Options)) (*elbv2.DescribeRulesOutput, error)
}

// reservationAPI is the capacity-reservation pair: the only calls that
// change anything on a load balancer.
type reservationAPI interface {
	DescribeCapacityReservation(context.Context, *elbv2.DescribeCapacityReservationInput, ...func(*elbv2.Options)) (*elbv2.DescribeCapacityReservationOutput, error)
	ModifyCapacityReservation(context.Context, *elbv2.ModifyCapacityReservationInput, ...func(*elbv2.Options)) (*elbv2.ModifyCapacityReservationOutput, error)
}

type elbAPI interface {
	DescribeAccountLimits(context.Context, *elasticloadbalancing.DescribeAccountLimitsInput, ...func(*elasticloadbalancing.Options)) (*elasticloadbalancing.DescribeAccountLimitsOutput, error)
	DescribeLoadBalancers(context.Context, *elasticloadbalancing.DescribeLoadBalancersInput, ...func(*elasticloadbalancing.Options)) (*elasticloadbalancing.DescribeLoadBalancersOutput, error)
}

type quotasAPI interface {
	ListServiceQuotas(context.Context, *servicequotas.ListServiceQuotasInput, ...func(*servicequotas.Options)) (*servicequotas.ListServiceQuotasOutput, error)
	ListAWSDefaultServiceQuotas(context.Context, *servicequotas.ListAWSDefaultServiceQuotasInput, ...func(*servicequotas.Options)) (*servicequotas.ListAWSDefaultServiceQuotasOutput, error)
}

// increaseAPI files and tracks quota-increase requests.
type increaseAPI interface {
	RequestServiceQuotaIncrease(context.Context, *servicequotas.RequestServiceQuotaIncreaseInput, ...func(*servicequotas.Options)) (*servicequotas.RequestServiceQuotaIncreaseOutput, error)
	ListRequestedServiceQuotaChangeHistory(context.Context, *servicequotas.ListRequestedServiceQuotaChangeHistoryInput, ...func(*servicequotas.Options)) (*servicequotas.ListRequestedServiceQuotaChangeHistoryOutput, error)
}

type cloudwatchAPI interface {
	GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// clients bundles the interfaces; New fills them from an aws.Config.
type clients struct {
	asg         asgAPI
	ec2         ec2API
	elbv2       elbv2API
	reservation reservationAPI
	elb         elbAPI
	quotas      quotasAPI
	increase    increaseAPI
	cw          cloudwatchAPI
}

// Retries are the SDK's: its standard retryer with its own classifiers
// (throttling, 5xx, transport errors; not access denied or validation),
// at most retryMaxAttempts attempts with exponential backoff up to
// retryMaxBackoff, each retry logged (at debug) through the watcher's
// logger. Few and short: a quota read that still fails waits for the next
// refresh, and one slow source must not hold the whole refresh (and the
// metrics of every other source) for tens of seconds.
const (
	retryMaxAttempts = 3
	retryMaxBackoff  = 2 * time.Second
)

// newClients builds SDK clients that share one standard retryer policy.
// retryer may shorten the backoff (tests); nil is the default.
func newClients(cfg aws.Config, logger log.Logger, backoff retry.BackoffDelayer) clients {
	cfg = cfg.Copy()
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = retryMaxAttempts
			o.MaxBackoff = retryMaxBackoff
			if backoff != nil {
				o.Backoff = backoff
			}
		})
	}
	cfg.ClientLogMode |= aws.LogRetries
	cfg.Logger = logging.LoggerFunc(func(_ logging.Classification, format string, v ...interface{}) {
		level.Debug(logger).Log(logkeys.Msg, "AWS call retried", "detail", fmt.Sprintf(format, v...))
	})
	sq := servicequotas.NewFromConfig(cfg)
	lb2 := elbv2.NewFromConfig(cfg)
	return clients{
		asg:         autoscaling.NewFromConfig(cfg),
		ec2:         ec2.NewFromConfig(cfg),
		elbv2:       lb2,
		reservation: lb2,
		elb:         elasticloadbalancing.NewFromConfig(cfg),
		quotas:      sq,
		increase:    sq,
		cw: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
			// The AWS Query protocol: CloudWatch serves it everywhere, and
			// so does the emulator (which lacks the SDK's default CBOR).
			o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
		}),
	}
}

// caller runs AWS calls for one watcher: it counts them, paces Service
// Quotas calls and names the operation in errors. Retrying is the SDK
// retryer's (newClients), never done twice.
type caller struct {
	calls atomic.Int64
	// sqPace spaces Service Quotas calls (its rate limits are low).
	sqPace *rate.Limiter
}

// newPacer is Service Quotas' pace: rps calls a second, bursts of one.
func newPacer(rps float64) *rate.Limiter {
	if rps <= 0 {
		rps = 5
	}
	return rate.NewLimiter(rate.Limit(rps), 1)
}

// do runs fn (one AWS operation, retried inside the SDK) and wraps its
// error with the operation's name.
func (c *caller) do(ctx context.Context, op string, fn func(context.Context) error) error {
	if c.sqPace != nil && strings.HasPrefix(op, "servicequotas:") {
		if err := c.sqPace.Wait(ctx); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	c.calls.Add(1)
	if err := fn(ctx); err != nil {
		return &opError{op: op, err: err}
	}
	return nil
}

// opError is a failed AWS operation: its name and the SDK's error.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// Describe says briefly and stably what failed: the operation and AWS's
// error code and message, without request IDs or SDK wrapping, so that the
// same failure reads the same every refresh. sig is shorter still (the
// operation and code) and decides whether a failure changed.
func Describe(err error) (sig, text string) {
	var oe *opError
	op := ""
	if errors.As(err, &oe) {
		op = oe.op + ": "
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := ae.ErrorMessage()
		if len(msg) > 160 {
			msg = msg[:160] + "…"
		}
		text = op + ae.ErrorCode()
		if msg != "" {
			text += ": " + msg
		}
		return op + ae.ErrorCode(), text
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		t := fmt.Sprintf("%sHTTP %d", op, re.HTTPStatusCode())
		return t, t
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return op + "timeout", op + "timed out"
	}
	return err.Error(), err.Error()
}

// eachPage walks one of the SDK's paginators through c (pacing, counting,
// error naming): more and next are the paginator's HasMorePages and
// NextPage; page handles each answer.
func eachPage[Out any](ctx context.Context, c *caller, op string, more func() bool,
	next func(context.Context) (Out, error), page func(Out)) error {
	for more() {
		var out Out
		err := c.do(ctx, op, func(ctx context.Context) (err error) {
			out, err = next(ctx)
			return err
		})
		if err != nil {
			return err
		}
		page(out)
	}
	return nil
}
