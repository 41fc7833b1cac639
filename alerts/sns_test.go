package alerts

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/medic-sre/medic/config"
)

// startMoto runs moto_server on a free loopback port until the test ends
// and points the SDK at it the standard way: AWS_ENDPOINT_URL and dummy
// credentials.
func startMoto(t *testing.T) aws.Config {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server is not on PATH: %v", err)
	}
	port := freePort(t)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("moto_server output:\n%s", logs.String())
		}
	})
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, "moto_server to answer", func() bool {
		select {
		case <-exited:
			t.Fatalf("moto_server exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(endpoint + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := awsconfig.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// An event published to a real SNS topic (on the emulator) reaches the SQS
// queue subscribed to it, evidence and verdict included.
func TestSNSToSQS(t *testing.T) {
	awsCfg := startMoto(t)
	ctx := t.Context()
	snsc, sqsc := sns.NewFromConfig(awsCfg), sqs.NewFromConfig(awsCfg)

	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("medic-events")})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("medic-events")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]),
	}); err != nil {
		t.Fatal(err)
	}

	td := startDispatcher(t, Options{AWS: &awsCfg, Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "ops", Type: "sns", TopicARN: *topic.TopicArn}},
	}}, true)
	td.Notify(sampleEvents()["marked"])
	waitFor(t, "the publish", func() bool { return td.counter("ops", "sent")+td.counter("ops", "failed") == 1 })
	if td.counter("ops", "sent") != 1 {
		t.Fatal("the SNS publish failed")
	}

	var msgs []sqstypes.Message
	waitFor(t, "the message in the queue", func() bool {
		out, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, out.Messages...)
		return len(msgs) > 0
	})
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	var envelope struct{ Subject, Message, TopicArn string }
	if err := json.Unmarshal([]byte(*msgs[0].Body), &envelope); err != nil {
		t.Fatalf("SNS envelope %s: %v", *msgs[0].Body, err)
	}
	if envelope.TopicArn != *topic.TopicArn || !strings.HasPrefix(envelope.Subject, "medic - web - i-0abc failed") {
		t.Errorf("envelope = %+v", envelope)
	}
	for _, want := range []string{
		"12:00:05 GET http://127.0.0.5:8080/healthz → HTTP 503 in 12ms", // the evidence
		"What medic did: marked Unhealthy",
		"Service state: 5/6 healthy",
		"No action needed.",
	} {
		if !strings.Contains(envelope.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, envelope.Message)
		}
	}
}
