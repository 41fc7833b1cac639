// Package awsapi builds the one aws.Config every AWS client in medic is made
// from, and finds out who the controller itself is.
//
// Decisions made here, once, for the whole controller:
//
//   - Credentials come only from the SDK's default chain (environment, shared
//     files, web identity, ECS/EC2 roles). medic's own config never holds
//     them, and nothing here logs them.
//   - Region: Options.Region, else the environment (AWS_REGION,
//     AWS_DEFAULT_REGION, the shared config profile), else IMDSv2.
//   - Endpoint: the SDK's standard AWS_ENDPOINT_URL (and the per-service
//     AWS_ENDPOINT_URL_<SERVICE>) is honoured by config.LoadDefaultConfig and
//     by every service client in go.mod (autoscaling, ec2, elb, elbv2,
//     cloudwatch, servicequotas, sns, sqs): tests point it at moto_server.
//   - Retries: the SDK's standard retryer with its default maximum attempts
//     (3) retries read calls (Describe*, List*, Get*). Calls that change the
//     world — SetInstanceHealth above all — are retried by their caller with
//     backoff/v4, which logs each attempt and knows which errors are
//     permanent; such calls pass NoRetry so the SDK makes exactly one attempt
//     and the two retry loops never multiply (NoRetryDynamoDB for the lease).
//   - Errors are classified here once (errors.go): IsThrottle, Retryable,
//     IsGone, IsUnsupported, on top of the SDK's own classifiers.
//   - Every attempt of every call is counted in medic_aws_api_calls_total
//     {operation,result} and timed in medic_aws_api_call_duration_seconds
//     {operation}.
package awsapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/internal/logkeys"
)

// IdentityTimeout bounds the whole instance-metadata lookup. Off EC2 the
// metadata address does not answer, and start-up must not wait for it.
const IdentityTimeout = time.Second

// Options configure LoadConfig.
type Options struct {
	// Region overrides the environment and instance metadata when set.
	Region string
	// Logger receives one line on where the region and identity came from.
	// Nil means no logging.
	Logger log.Logger
	// Registerer receives the AWS call metrics. Nil means they are not
	// registered (the middleware still runs).
	Registerer prometheus.Registerer
}

// Identity is the controller's own place in AWS, from IMDSv2. Off EC2, or
// when AWS_EC2_METADATA_DISABLED=true, every field is empty.
type Identity struct {
	Region, AZ, InstanceID string
}

// LoadConfig builds the aws.Config for every client medic makes, with the
// metrics middleware installed, and reads the controller's identity.
//
// It fails only when the SDK cannot load its configuration or no region can
// be found at all; an unreachable metadata service is not an error.
func LoadConfig(ctx context.Context, o Options) (aws.Config, Identity, error) {
	logger := o.Logger
	if logger == nil {
		logger = log.NewNopLogger()
	}
	var loadOpts []func(*config.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	loadOpts = append(loadOpts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard()
	}))
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return aws.Config{}, Identity{}, fmt.Errorf("load AWS SDK config: %w", err)
	}

	// The identity lookup uses cfg before the metrics middleware is added:
	// metadata calls are not AWS API calls.
	id := lookupIdentity(ctx, cfg)
	msg := "AWS config loaded, region from options"
	switch {
	case o.Region != "":
	case cfg.Region != "":
		msg = "AWS config loaded, region from the environment"
	case id.Region != "":
		cfg.Region = id.Region
		msg = "AWS config loaded, region from instance metadata"
	default:
		return aws.Config{}, id, errors.New("no AWS region: set global.region, AWS_REGION, or run on EC2")
	}

	m := NewMetrics(o.Registerer)
	cfg.APIOptions = append(cfg.APIOptions, m.AddMiddleware)

	level.Info(logger).Log(
		logkeys.Msg, msg,
		logkeys.Region, cfg.Region,
		logkeys.SelfAZ, id.AZ,
		logkeys.SelfInstanceID, id.InstanceID,
	)
	return cfg, id, nil
}

// lookupIdentity reads the instance identity document over IMDSv2 (no
// IMDSv1 fallback), one attempt, bounded by IdentityTimeout.
func lookupIdentity(ctx context.Context, cfg aws.Config) Identity {
	if v := os.Getenv("AWS_EC2_METADATA_DISABLED"); strings.EqualFold(v, "true") {
		return Identity{}
	}
	client := imds.NewFromConfig(cfg, func(o *imds.Options) {
		o.Retryer = aws.NopRetryer{}
		o.EnableFallback = aws.FalseTernary
	})
	ctx, cancel := context.WithTimeout(ctx, IdentityTimeout)
	defer cancel()
	out, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return Identity{}
	}
	return Identity{
		Region:     out.Region,
		AZ:         out.AvailabilityZone,
		InstanceID: out.InstanceID,
	}
}
