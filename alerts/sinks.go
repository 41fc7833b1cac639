package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v4"
	promconfig "github.com/prometheus/common/config"

	"github.com/medic-sre/medic/config"
)

// Sink delivers one event to one destination. Send makes one attempt,
// bounded by ctx; the Dispatcher queues, retries and counts. An error
// wrapped with backoff.Permanent is not retried. Errors never contain a
// secret (URL or token).
type Sink interface {
	Name() string
	Send(ctx context.Context, e Event) error
}

// resender is a Sink that keeps state alive at its destination by
// re-posting it (Alertmanager's active alerts). The Dispatcher calls
// Resend every ResendInterval, between deliveries.
type resender interface {
	ResendInterval() time.Duration
	Resend(ctx context.Context) error
}

// eachEventSink is a Sink that wants every event of a flood rather than the
// digest, because it groups on its own (Alertmanager).
type eachEventSink interface {
	EachEvent() bool
}

// kindFilter is a Sink that takes only some kinds of events.
type kindFilter interface {
	Sends(Kind) bool
}

// SNSPublisher is the one SNS call the SNS sink makes, shaped like the SDK.
type SNSPublisher interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// snsSink publishes the text rendering to an SNS topic.
type snsSink struct {
	name, topicARN, runbook string
	api                     SNSPublisher
}

// newSNSClient builds the SNS client for topicARN from cfg: the region is
// the topic's, and the SDK does not retry (the Dispatcher does, with
// backoff/v4). AWS_ENDPOINT_URL in cfg.BaseEndpoint applies.
func newSNSClient(cfg aws.Config, topicARN string) *sns.Client {
	return sns.NewFromConfig(cfg, func(o *sns.Options) {
		if parts := strings.Split(topicARN, ":"); len(parts) >= 6 && parts[3] != "" {
			o.Region = parts[3]
		}
		o.Retryer = aws.NopRetryer{}
	})
}

func (s *snsSink) Name() string { return s.name }

func (s *snsSink) Send(ctx context.Context, e Event) error {
	subject, body := RenderText(e, s.runbook)
	attrs := map[string]snstypes.MessageAttributeValue{}
	for k, v := range map[string]string{
		"kind": string(e.Kind), "service": e.Service, "severity": string(severityOf(e)),
	} {
		if v != "" {
			attrs[k] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	_, err := s.api.Publish(ctx, &sns.PublishInput{
		TopicArn:          aws.String(s.topicARN),
		Subject:           aws.String(snsSubject(subject)),
		Message:           aws.String(truncate(body, 200_000)),
		MessageAttributes: attrs,
	})
	if err != nil {
		err = fmt.Errorf("sns Publish to %s: %w", s.topicARN, err)
		var ae smithy.APIError
		if errors.As(err, &ae) {
			switch ae.ErrorCode() {
			case "InvalidParameter", "InvalidParameterValue", "AuthorizationError", "NotFound",
				"InvalidSecurity", "KMSDisabled", "KMSNotFound", "KMSAccessDenied", "EndpointDisabled":
				return backoff.Permanent(err)
			}
		}
		return err
	}
	return nil
}

// snsSubject makes s a valid SNS subject: printable ASCII, one line, at
// most 100 characters.
func snsSubject(s string) string {
	s = strings.ReplaceAll(s, " · ", " - ")
	b := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f:
			b = append(b, byte(r))
		case r == '\n' || r == '\t':
			b = append(b, ' ')
		default:
			b = append(b, '?')
		}
	}
	if len(b) > 100 {
		b = append(b[:97], "..."...)
	}
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n… (truncated)"
}

// httpSink posts a JSON rendering of each event to a URL: the generic
// webhook and the Slack-compatible webhook.
type httpSink struct {
	name    string
	url     string // secret
	token   string // secret
	runbook string
	client  *http.Client
	render  func(e Event, runbook string) any
}

func (s *httpSink) Name() string { return s.name }

func (s *httpSink) Send(ctx context.Context, e Event) error {
	return postJSON(ctx, s.client, s.url, s.token, s.render(e, s.runbook))
}

// newHTTPClient is the client of one HTTP sink, built by Prometheus's
// config package from the sink's http_config (TLS, basic auth or
// authorization, OAuth2, proxy; secrets from files or, through *_ref,
// environment variables), bounded by the sink's timeout. Without
// follow_redirects it does not follow redirects (one could carry the
// request elsewhere); without http_config, proxies come from the
// environment.
func newHTTPClient(sc config.NotificationSink) (*http.Client, error) {
	pc, err := sc.HTTPConfig.Client()
	if err != nil {
		return nil, fmt.Errorf("http_config: %w", err)
	}
	client, err := promconfig.NewClientFromConfig(pc, "notify_"+sc.Name,
		promconfig.WithSecretManager(config.EnvSecrets{}),
		promconfig.WithUserAgent("medic"),
		promconfig.WithIdleConnTimeout(90*time.Second))
	if err != nil {
		return nil, fmt.Errorf("http_config: %w", err)
	}
	client.Timeout = sc.Timeout.D()
	return client, nil
}

// postJSON posts body as JSON to target. A 4xx answer other than 408 and
// 429 is permanent. The error names neither the URL nor the token.
func postJSON(ctx context.Context, client *http.Client, target, token string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return backoff.Permanent(fmt.Errorf("encoding the message: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return backoff.Permanent(errors.New("building the request: invalid URL"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "medic")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("POST: %w", ue.Err)
		}
		return errors.New("POST failed")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("POST: HTTP %d", resp.StatusCode)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return backoff.Permanent(err)
	}
	return err
}

// built is a sink with what the Dispatcher needs to run it.
type built struct {
	spec sinkSpec
	sink Sink
}

// sinkSpec identifies a sink's configuration, secrets included, so a
// reload can tell whether a sink changed (same). It is never printed.
// Secrets that http_config reads from files or the environment are read
// at each request, so their rotation needs no reload.
type sinkSpec struct {
	cfg        config.NotificationSink
	url, token string
}

// same reports whether a and b describe the same sink.
func (a sinkSpec) same(b sinkSpec) bool { return reflect.DeepEqual(a, b) }

// buildSink makes the sink described by sc. awsCfg is needed for sns;
// externalURL (medic's status page) becomes the alerts' generatorURL.
func buildSink(sc config.NotificationSink, awsCfg *aws.Config, externalURL string, now func() time.Time) (built, error) {
	spec := sinkSpec{cfg: sc}
	if sc.Type != config.SinkSNS {
		if len(sc.URLs) == 0 {
			u, err := sc.ResolveURL()
			if err != nil {
				return built{}, fmt.Errorf("sink %s: url: %w", sc.Name, err)
			}
			spec.url = u
		}
		t, err := sc.ResolveToken()
		if err != nil {
			return built{}, fmt.Errorf("sink %s: token: %w", sc.Name, err)
		}
		spec.token = t
	}
	if sc.Type == config.SinkSNS {
		if awsCfg == nil {
			return built{}, fmt.Errorf("sink %s: an sns sink needs the AWS config", sc.Name)
		}
		return built{spec, &snsSink{name: sc.Name, topicARN: sc.TopicARN, runbook: sc.RunbookURL, api: newSNSClient(*awsCfg, sc.TopicARN)}}, nil
	}
	client, err := newHTTPClient(sc)
	if err != nil {
		return built{}, fmt.Errorf("sink %s: %w", sc.Name, err)
	}
	switch sc.Type {
	case config.SinkWebhook:
		return built{spec, &httpSink{
			name: sc.Name, url: spec.url, token: spec.token, runbook: sc.RunbookURL, client: client,
			render: func(e Event, rb string) any { return RenderWebhook(e, rb) },
		}}, nil
	case config.SinkSlack:
		return built{spec, &httpSink{
			name: sc.Name, url: spec.url, runbook: sc.RunbookURL, client: client,
			render: func(e Event, rb string) any { return RenderSlack(e, rb) },
		}}, nil
	case config.SinkAlertmanager:
		bases := sc.URLs
		if len(bases) == 0 {
			bases = []string{spec.url}
		}
		s := newAlertmanagerSink(sc, bases, spec.token, client, now)
		s.generatorURL = externalURL
		return built{spec, s}, nil
	}
	return built{}, fmt.Errorf("sink %s: unknown type %q", sc.Name, sc.Type)
}
