package limits

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
	"github.com/cenkalti/backoff/v4"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

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
	DescribeAddresses(context.Context, *ec2.DescribeAddressesInput, ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeNetworkInterfaces(context.Context, *ec2.DescribeNetworkInterfacesInput, ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	DescribeInternetGateways(context.Context, *ec2.DescribeInternetGatewaysInput, ...func(*ec2.Options)) (*ec2.DescribeInternetGatewaysOutput, error)
}

type elbv2API interface {
	DescribeAccountLimits(context.Context, *elbv2.DescribeAccountLimitsInput, ...func(*elbv2.Options)) (*elbv2.DescribeAccountLimitsOutput, error)
	DescribeLoadBalancers(context.Context, *elbv2.DescribeLoadBalancersInput, ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error)
	DescribeTargetGroups(context.Context, *elbv2.DescribeTargetGroupsInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetGroupsOutput, error)
	DescribeTargetHealth(context.Context, *elbv2.DescribeTargetHealthInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error)
	DescribeListeners(context.Context, *elbv2.DescribeListenersInput, ...func(*elbv2.Options)) (*elbv2.DescribeListenersOutput, error)
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
	ListRequestedServiceQuotaChangeHistoryByQuota(context.Context, *servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput, ...func(*servicequotas.Options)) (*servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput, error)
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

// newClients builds SDK clients with the SDK's own retries off: this
// package retries throttling itself with backoff (retryCall), so a call is
// never retried by both.
func newClients(cfg aws.Config) clients {
	one := func(o *int) { *o = 1 }
	sq := servicequotas.NewFromConfig(cfg, func(o *servicequotas.Options) { one(&o.RetryMaxAttempts) })
	lb2 := elbv2.NewFromConfig(cfg, func(o *elbv2.Options) { one(&o.RetryMaxAttempts) })
	return clients{
		asg:         autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { one(&o.RetryMaxAttempts) }),
		ec2:         ec2.NewFromConfig(cfg, func(o *ec2.Options) { one(&o.RetryMaxAttempts) }),
		elbv2:       lb2,
		reservation: lb2,
		elb:         elasticloadbalancing.NewFromConfig(cfg, func(o *elasticloadbalancing.Options) { one(&o.RetryMaxAttempts) }),
		quotas:      sq,
		increase:    sq,
		cw: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
			one(&o.RetryMaxAttempts)
			// The AWS Query protocol: CloudWatch serves it everywhere, and
			// so does the emulator (which lacks the SDK's default CBOR).
			o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
		}),
	}
}

// isThrottle reports whether err is AWS throttling (retried with backoff).
func isThrottle(err error) bool {
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}

// caller runs AWS calls for one refresh: it counts them, retries
// throttling with exponential backoff bounded by the context and a maximum
// number of tries, logs each retry, and paces Service Quotas calls.
type caller struct {
	logger     log.Logger
	calls      atomic.Int64
	newBackOff func() backoff.BackOff
	sqPace     *pacer
}

// defaultBackOff: 0.5s, 1s, 2s… at most 5 retries and 30s in all.
func defaultBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 8 * time.Second
	b.MaxElapsedTime = 30 * time.Second
	return backoff.WithMaxRetries(b, 5)
}

// do runs fn (one AWS operation) and retries it while AWS throttles.
// Other errors are returned at once, wrapped with the operation's name.
func (c *caller) do(ctx context.Context, op string, fn func(context.Context) error) error {
	attempt := 0
	b := backoff.WithContext(c.newBackOff(), ctx)
	err := backoff.RetryNotify(func() error {
		attempt++
		if c.sqPace != nil && len(op) > 14 && op[:14] == "servicequotas:" {
			if err := c.sqPace.wait(ctx); err != nil {
				return backoff.Permanent(err)
			}
		}
		c.calls.Add(1)
		err := fn(ctx)
		if err != nil && !isThrottle(err) {
			return backoff.Permanent(err)
		}
		return err
	}, b, func(err error, d time.Duration) {
		level.Warn(c.logger).Log(logkeys.Msg, "AWS throttled, retrying", logkeys.Operation, op,
			logkeys.Attempt, attempt, logkeys.Duration, d, logkeys.Err, err)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// pages runs one paged AWS call through c (pacing, retries, metrics) until
// page reports no next page. call asks for the page at token (nil first);
// it alone runs inside c.do, so only it is retried. page then handles that
// answer and returns the next token: nil after the last page. An error
// from c.do (wrapped with op) or from page ends the loop and is returned
// as it is.
func pages[Out any](ctx context.Context, c *caller, op string,
	call func(ctx context.Context, token *string) (Out, error),
	page func(out Out) (next *string, err error)) error {
	var token *string
	for {
		var out Out
		err := c.do(ctx, op, func(ctx context.Context) (err error) {
			out, err = call(ctx, token)
			return err
		})
		if err != nil {
			return err
		}
		if token, err = page(out); err != nil {
			return err
		}
		if token == nil {
			return nil
		}
	}
}

// pacer spaces calls at least 1/rps apart (Service Quotas' rate limits).
type pacer struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newPacer(rps float64) *pacer {
	if rps <= 0 {
		rps = 5
	}
	return &pacer{every: time.Duration(float64(time.Second) / rps)}
}

func (p *pacer) setRate(rps float64) {
	if rps <= 0 {
		rps = 5
	}
	p.mu.Lock()
	p.every = time.Duration(float64(time.Second) / rps)
	p.mu.Unlock()
}

func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.every)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
