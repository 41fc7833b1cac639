package awsapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/medic-sre/medic/awsapi"
)

// answered wraps err the way the SDK returns an error AWS answered with
// HTTP status code: an operation error around an *awshttp.ResponseError.
func answered(code int, err error) error {
	return &smithy.OperationError{ServiceID: "Auto Scaling", OperationName: "SetInstanceHealth",
		Err: &awshttp.ResponseError{RequestID: "req-1", ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: err}}}
}

func apiErr(code string, fault smithy.ErrorFault, msg string) error {
	return &smithy.GenericAPIError{Code: code, Message: msg, Fault: fault}
}

// notSent wraps err the way the SDK returns a request that never got an answer.
func notSent(err error) error {
	return &smithy.OperationError{ServiceID: "Auto Scaling", OperationName: "SetInstanceHealth",
		Err: &smithyhttp.RequestSendError{Err: err}}
}

func TestClassifiers(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		desc                      string
		err                       error
		throttle, retryable, gone bool
	}{
		{desc: "nil", err: nil},
		{desc: "Throttling (Auto Scaling), 400", err: answered(400, apiErr("Throttling", smithy.FaultClient, "Rate exceeded")), throttle: true, retryable: true},
		{desc: "RequestLimitExceeded (EC2), 503", err: answered(503, apiErr("RequestLimitExceeded", smithy.FaultClient, "")), throttle: true, retryable: true},
		{desc: "EC2ThrottledException, missed by the old hand list", err: answered(400, apiErr("EC2ThrottledException", smithy.FaultClient, "")), throttle: true, retryable: true},
		{desc: "PriorRequestNotComplete, missed by the old hand list", err: answered(400, apiErr("PriorRequestNotComplete", smithy.FaultClient, "")), throttle: true, retryable: true},
		{desc: "DynamoDB ProvisionedThroughputExceededException, typed", err: answered(400, &ddbtypes.ProvisionedThroughputExceededException{Message: new(string)}), throttle: true, retryable: true},
		{desc: "an unknown code with HTTP 429: throttled (the SDK misses it)", err: answered(429, apiErr("SomethingNew", smithy.FaultClient, "")), throttle: true, retryable: true},
		{desc: "HTTP 500", err: answered(500, apiErr("InternalFailure", smithy.FaultServer, "")), retryable: true},
		{desc: "HTTP 501 with a server code: not in the SDK's list, still 5xx", err: answered(501, apiErr("Whatever", smithy.FaultUnknown, "")), retryable: true},
		{desc: "HTTP 503 ServiceUnavailable", err: answered(503, apiErr("ServiceUnavailable", smithy.FaultServer, "")), retryable: true},
		{desc: "a server fault without HTTP details", err: apiErr("InternalError", smithy.FaultServer, ""), retryable: true},
		{desc: "ValidationError not found: gone, permanent", err: answered(400, apiErr("ValidationError", smithy.FaultClient, "Instance Id not found - No managed instance found for instance ID i-1")), gone: true},
		{desc: "ValidationError not part of a group: gone", err: answered(400, apiErr("ValidationError", smithy.FaultClient, "The instance i-1 is not part of Auto Scaling group web")), gone: true},
		{desc: "ValidationError otherwise: permanent, not gone", err: answered(400, apiErr("ValidationError", smithy.FaultClient, "1 validation error detected"))},
		{desc: "InvalidInstanceID.NotFound (emulator): gone", err: answered(400, apiErr("InvalidInstanceID.NotFound", smithy.FaultClient, "")), gone: true},
		{desc: "AccessDenied: permanent", err: answered(403, apiErr("AccessDenied", smithy.FaultClient, ""))},
		{desc: "ConditionalCheckFailed: permanent", err: answered(400, &ddbtypes.ConditionalCheckFailedException{})},
		{desc: "connection reset before an answer (dropped connection)", err: notSent(reset), retryable: true},
		{desc: "connection refused", err: notSent(&url2{refused}), retryable: true},
		{desc: "response cut short", err: &smithy.OperationError{Err: fmt.Errorf("deserialize: %w", io.ErrUnexpectedEOF)}, retryable: true},
		{desc: "per-attempt deadline", err: fmt.Errorf("attempt: %w", context.DeadlineExceeded), retryable: true},
		{desc: "cancelled", err: notSent(context.Canceled)},
		{desc: "a plain error", err: errors.New("boom")},
		{desc: "throttle code without HTTP details", err: apiErr("Throttling", smithy.FaultClient, ""), throttle: true, retryable: true},
		{desc: "TooManyRequestsException", err: answered(400, apiErr("TooManyRequestsException", smithy.FaultClient, "")), throttle: true, retryable: true},
		{desc: "AccessDeniedException", err: answered(400, apiErr("AccessDeniedException", smithy.FaultClient, ""))},
		{desc: "request not sent: EOF", err: notSent(io.EOF), retryable: true},
		{desc: "bare DNS timeout", err: &net.DNSError{Err: "timeout", IsTimeout: true}, retryable: true},
		{desc: "DNS name not found: permanent", err: notSent(&net.DNSError{Err: "no such host", IsNotFound: true})},
		{desc: "unexpected EOF, bare", err: io.ErrUnexpectedEOF, retryable: true},
		{desc: "request not sent because cancelled", err: notSent(fmt.Errorf("send: %w", context.Canceled))},
		{desc: "AWS: ValidationError instance not found (exact text)", err: answered(400, apiErr("ValidationError", smithy.FaultClient, "Instance Id not found - No managed instance found for instance ID: i-1")), gone: true},
	} {
		t.Run(c.desc, func(t *testing.T) {
			if got := awsapi.IsThrottle(c.err); got != c.throttle {
				t.Errorf("IsThrottle = %v, want %v", got, c.throttle)
			}
			if got := awsapi.Retryable(c.err); got != c.retryable {
				t.Errorf("Retryable = %v, want %v", got, c.retryable)
			}
			if got := awsapi.IsGone(c.err); got != c.gone {
				t.Errorf("IsGone = %v, want %v", got, c.gone)
			}
		})
	}
}

// url2 is a dial error as net/http wraps it.
type url2 struct{ err error }

func (u *url2) Error() string { return "Post \"http://127.0.0.1:1/\": " + u.err.Error() }
func (u *url2) Unwrap() error { return u.err }

func TestIsUnsupported(t *testing.T) {
	for _, c := range []struct {
		desc string
		err  error
		want bool
	}{
		{desc: "moto: not yet implemented", err: answered(500, apiErr("NotImplemented", smithy.FaultServer, "")), want: true},
		{desc: "HTTP 501", err: answered(501, apiErr("X", smithy.FaultUnknown, "")), want: true},
		{desc: "InvalidAction", err: answered(400, apiErr("InvalidAction", smithy.FaultClient, "")), want: true},
		{desc: "throttled is not unsupported", err: answered(400, apiErr("Throttling", smithy.FaultClient, ""))},
		{desc: "nil", err: nil},
	} {
		if got := awsapi.IsUnsupported(c.err); got != c.want {
			t.Errorf("%s: IsUnsupported = %v, want %v", c.desc, got, c.want)
		}
	}
}
