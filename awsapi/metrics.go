package awsapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"
)

// Results of one attempt, the values of the result label.
const (
	ResultSuccess   = "success"
	ResultThrottled = "throttled"
	ResultError     = "error"
)

// Metrics counts and times every attempt of every AWS call made through a
// config it is installed in.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates the AWS call metrics and registers them with reg (nil:
// unregistered). Registering twice with one registry reuses the first
// collectors, so several configs can share one set of series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_aws_api_calls_total",
			Help: "AWS API calls, each attempt counted, by service (the SDK's service id), operation and result (success, throttled, error).",
		}, []string{"service", "operation", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "medic_aws_api_call_duration_seconds",
			Help:    "Latency of AWS API call attempts, by service and operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "operation"}),
	}
	if reg != nil {
		m.calls = register(reg, m.calls)
		m.duration = register(reg, m.duration)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A different collector under the same name is a programming
		// error elsewhere; keep counting into our own, unregistered one.
	}
	return c
}

// AddMiddleware installs the per-attempt middleware in a stack; it has the
// shape of an aws.Config APIOptions entry.
//
// It sits first in the Deserialize step, which runs once per attempt inside
// the retry loop and ends with the HTTP round trip, so it sees every attempt
// and the service's decoded error for it. The service label is the SDK's
// service id ("Auto Scaling", "EC2", "Service Quotas"): DescribeAccountLimits
// of three services are three series.
func (m *Metrics) AddMiddleware(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("medic/AWSCallMetrics",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
			middleware.DeserializeOutput, middleware.Metadata, error,
		) {
			start := time.Now()
			out, md, err := next.HandleDeserialize(ctx, in)
			svc, op := awsmiddleware.GetServiceID(ctx), middleware.GetOperationName(ctx)
			m.duration.WithLabelValues(svc, op).Observe(time.Since(start).Seconds())
			m.calls.WithLabelValues(svc, op, classify(out.RawResponse, err)).Inc()
			return out, md, err
		}), middleware.Before)
}

// classify names the result of one attempt: throttled when the service
// throttled the call (IsThrottle, or a raw HTTP 429 answer).
func classify(rawResponse any, err error) string {
	if err == nil {
		return ResultSuccess
	}
	if IsThrottle(err) {
		return ResultThrottled
	}
	if resp, ok := rawResponse.(*smithyhttp.Response); ok && resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		return ResultThrottled
	}
	return ResultError
}
