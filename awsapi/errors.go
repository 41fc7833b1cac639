package awsapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
)

// AWS errors are classified here and nowhere else. The SDK's own
// classifiers (the ones its standard retryer uses) come first; this file
// adds only what they miss, each addition named below.

var (
	sdkThrottles  = retry.IsErrorThrottles(retry.DefaultThrottles)
	sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)
)

// IsThrottle reports whether err is AWS throttling the caller: one of the
// SDK's throttling error codes (Throttling, ThrottlingException,
// RequestLimitExceeded, EC2ThrottledException, PriorRequestNotComplete,
// ProvisionedThroughputExceededException, SlowDown, ...), or — what the SDK
// misses — any answer with HTTP status 429.
func IsThrottle(err error) bool {
	if err == nil {
		return false
	}
	if sdkThrottles.IsErrorThrottle(err) == aws.TrueTernary {
		return true
	}
	return httpStatus(err) == http.StatusTooManyRequests
}

// Retryable reports whether a failed AWS call may succeed if tried again.
// Yes: throttling (IsThrottle); what the SDK's standard retryer retries
// (connection refused or reset, dial and DNS-temporary errors, timeouts,
// HTTP 500/502/503/504, RequestTimeout); and what it misses: any other 5xx,
// an API error whose fault is the server's, a response cut short
// (io.ErrUnexpectedEOF, io.EOF: the connection dropped mid-answer), and a
// per-attempt deadline. No: nil, a cancelled context, and everything else —
// validation, access denied, not found, conditional-check failures — which
// is permanent. Whether the caller's own context has ended is the caller's
// question: a retry loop stops then whatever this says.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if IsThrottle(err) {
		return true
	}
	switch sdkRetryables.IsErrorRetryable(err) {
	case aws.TrueTernary:
		return true
	case aws.FalseTernary:
		return false
	}
	if code := httpStatus(err); code >= 500 {
		return true
	} else if code != 0 {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorFault() == smithy.FaultServer
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// IsGone reports whether err says an instance no longer exists or is no
// longer in an Auto Scaling group: nothing left to act on. The emulator
// answers InvalidInstanceID.NotFound; AWS answers a ValidationError whose
// message says the instance was not found or is not part of a group.
func IsGone(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed":
		return true
	case "ValidationError":
		msg := strings.ToLower(apiErr.ErrorMessage())
		return strings.Contains(msg, "not found") ||
			strings.Contains(msg, "no managed instance") ||
			strings.Contains(msg, "not part of")
	}
	return false
}

// IsUnsupported reports whether err says the endpoint does not implement
// the operation at all (the emulator lacks some calls; a partition may too):
// the caller treats the answer as unknown rather than as a failure.
func IsUnsupported(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NotImplemented", "InvalidAction", "UnknownOperationException", "UnsupportedOperation":
			return true
		}
	}
	return httpStatus(err) == http.StatusNotImplemented
}

// httpStatus is the HTTP status of the answer err carries; 0 when none.
func httpStatus(err error) int {
	var v interface{ HTTPStatusCode() int }
	if errors.As(err, &v) {
		return v.HTTPStatusCode()
	}
	return 0
}

// NoRetry makes an Auto Scaling call a single attempt. Pass it to calls
// the caller retries itself with backoff/v4 (SetInstanceHealth and the
// checks around it, in healer), so that the two retry loops never multiply.
func NoRetry(o *autoscaling.Options) { noRetry(&o.Retryer, &o.RetryMaxAttempts) }

// NoRetryDynamoDB makes a DynamoDB call a single attempt: the lease's own
// schedule is its retry policy, and a write retried by the SDK would start
// later than the lease assumes.
func NoRetryDynamoDB(o *dynamodb.Options) { noRetry(&o.Retryer, &o.RetryMaxAttempts) }

// noRetry is the one way a client's options are made single-attempt: no
// retryer, and no per-call maximum that would wrap one back in.
func noRetry(r *aws.Retryer, maxAttempts *int) {
	*r = aws.NopRetryer{}
	*maxAttempts = 0
}
