package alerts

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/medic-sre/medic/internal/emulator"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/medic-sre/medic/config"
)

// An event published to a real SNS topic (on the emulator) reaches the SQS
// queue subscribed to it, evidence and verdict included.
func TestSNSToSQS(t *testing.T) {
	awsCfg := emulator.DefaultConfigT(t)
	topicARN, queueURL := snsToSQS(t, awsCfg, "medic-events")
	td := startDispatcher(t, Options{AWS: &awsCfg, Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "ops", Type: "sns", TopicARN: topicARN}},
	}}, true)
	td.Notify(sampleEvents()["marked"])
	waitFor(t, "the publish", func() bool { return td.counter("ops", "sent")+td.counter("ops", "failed") == 1 })
	if td.counter("ops", "sent") != 1 {
		t.Fatal("the SNS publish failed")
	}

	subject, message, _ := strings.Cut(receiveOne(t, awsCfg, queueURL, topicARN), "\n")
	if !strings.HasPrefix(subject, "medic - web - i-0abc failed") {
		t.Errorf("subject = %q", subject)
	}
	for _, want := range []string{
		"12:00:05 GET http://127.0.0.5:8080/healthz → HTTP 503 in 12ms", // the evidence
		"What medic did: marked Unhealthy",
		"Service state: 5/6 healthy",
		"No action needed.",
	} {
		if !strings.Contains(message, want) {
			t.Errorf("message lacks %q:\n%s", want, message)
		}
	}
}

// snsToSQS creates a topic named name on the emulator, with a queue of the
// same name subscribed.
func snsToSQS(t *testing.T, awsCfg aws.Config, name string) (topicARN, queueURL string) {
	t.Helper()
	ctx := t.Context()
	snsc, sqsc := sns.NewFromConfig(awsCfg), sqs.NewFromConfig(awsCfg)
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
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
	return *topic.TopicArn, *q.QueueUrl
}

// receiveOne returns the subject and the message (a line apart) of the one
// SNS notification in the queue, which topicARN published.
func receiveOne(t *testing.T, awsCfg aws.Config, queueURL, topicARN string) string {
	t.Helper()
	sqsc := sqs.NewFromConfig(awsCfg)
	var msgs []sqstypes.Message
	waitFor(t, "the message in the queue", func() bool {
		out, err := sqsc.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10})
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
	if envelope.TopicArn != topicARN {
		t.Errorf("published by %s, want %s", envelope.TopicArn, topicARN)
	}
	return envelope.Subject + "\n" + envelope.Message
}
