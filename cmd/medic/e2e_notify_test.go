package main

// End-to-end tests of medic's notifications (issue 4, "How it is checked"):
// the real binary on the world of e2e_harness_test.go, with a real SNS topic
// subscribed by an SQS queue on the emulator, a real Alertmanager (Debian
// package prometheus-alertmanager) on loopback, and webhook sinks that hang
// or refuse connections. Helpers here are prefixed notify to keep clear of
// the core suite's names.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/internal/testkit"
)

// notifyPlayASG plays the Auto Scaling group every 500ms until the test
// ends: members marked Unhealthy are terminated and moto launches their
// replacements, whose app servers start (Fleet.PlayASG). Every member's IP
// is checked to be on loopback after each round.
func notifyPlayASG(t *testing.T, w *world) {
	t.Helper()
	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			replaced, err := w.fleet.PlayASG(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				t.Logf("playing the ASG: %v", err)
				continue
			}
			if len(replaced) == 0 {
				continue
			}
			t.Logf("the ASG replaced %v", replaced)
			insts, err := w.fleet.Instances(ctx)
			if err != nil {
				continue
			}
			for _, in := range insts {
				if in.IP.IsValid() && !loopback.Contains(in.IP) {
					t.Errorf("replacement %s has IP %v, not in %v", in.ID, in.IP, loopback)
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// notifyWaitRecovered waits until medic has counted one replacement of
// service that recovered.
func notifyWaitRecovered(t *testing.T, m *medic, service string, timeout time.Duration) {
	t.Helper()
	m.waitMetric(timeout, eq(1), "medic_replacements_total", "service", service, "outcome", "recovered")
}

// notifyFreePort returns a loopback port that was free a moment ago.
func notifyFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// notifyStartMedic checks that cfg keeps medic on loopback and every
// instance IP is in 127.0.0.0/8, writes cfg, starts medic and waits until it is ready and
// judges every instance of service healthy.
func notifyStartMedic(t *testing.T, w *world, service, cfg string) *medic {
	t.Helper()
	if !strings.Contains(cfg, "allowed_networks: [127.0.0.0/8]") {
		t.Fatalf("the config does not restrict medic to 127.0.0.0/8:\n%s", cfg)
	}
	w.assertLoopback(w.instances())
	m := w.startMedic(w.writeConfig("medic.yml", cfg))
	m.waitReady()
	m.waitJudged(service, "healthy", len(w.instances()), 30*time.Second)
	return m
}

// notifyBreak makes victim's app answer 500 and returns when.
func notifyBreak(t *testing.T, w *world, victim string) time.Time {
	t.Helper()
	at := time.Now()
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	return at
}

// snsMessage is one SNS notification as the subscribed SQS queue holds it
// (the SNS JSON envelope, raw delivery off).
type snsMessage struct {
	Subject           string
	Message           string
	TopicArn          string
	MessageAttributes map[string]struct{ Type, Value string }
}

var footerKindRE = regexp.MustCompile(`(?m)\bkind: ([a-z_]+)`)

// kind is the event kind: the message attribute, else the message footer.
func (s snsMessage) kind() string {
	if a, ok := s.MessageAttributes["kind"]; ok {
		return a.Value
	}
	if m := footerKindRE.FindStringSubmatch(s.Message); m != nil {
		return m[1]
	}
	return ""
}

// notifySNSQueue creates an SNS topic and an SQS queue subscribed to it on
// the world's emulator; it returns the topic ARN and the queue URL.
func notifySNSQueue(t *testing.T, w *world) (topicARN, queueURL string, sqsc *sqs.Client) {
	t.Helper()
	cfg := w.moto.Config()
	snsc, sqsc := sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	topic, err := snsc.CreateTopic(w.ctx, &sns.CreateTopicInput{Name: aws.String("medic-e2e-events")})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqsc.CreateQueue(w.ctx, &sqs.CreateQueueInput{QueueName: aws.String("medic-e2e-events")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := sqsc.GetQueueAttributes(w.ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snsc.Subscribe(w.ctx, &sns.SubscribeInput{
		TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]),
	}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(topic.TopicArn), aws.ToString(q.QueueUrl), sqsc
}

// notifyReceive reads (and deletes) what the queue holds now.
func notifyReceive(t *testing.T, w *world, sqsc *sqs.Client, queueURL string) []snsMessage {
	t.Helper()
	var out []snsMessage
	for {
		res, err := sqsc.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range res.Messages {
			var s snsMessage
			if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &s); err != nil {
				t.Fatalf("SQS body is not an SNS envelope: %v\n%s", err, aws.ToString(msg.Body))
			}
			out = append(out, s)
			if _, err := sqsc.DeleteMessage(w.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: msg.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
		if len(res.Messages) == 0 {
			return out
		}
	}
}

// 1. SNS → SQS on the emulator: breaking an instance yields exactly one
// "marked" message and one "replaced and recovered" message, with the
// evidence in them.
func TestE2ENotifySNS(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	topicARN, queueURL, sqsc := notifySNSQueue(t, w)
	cfg := w.config(cfgOpts{}) + fmt.Sprintf(`notifications:
  retry: {max_attempts: 5, initial_interval: 200ms, max_interval: 1s}
  sinks:
    - {name: sns, type: sns, topic_arn: %q}
`, topicARN)
	m := notifyStartMedic(t, w, svc, cfg)
	notifyPlayASG(t, w)

	victim := w.instances()[1].ID
	faultAt := notifyBreak(t, w, victim)
	notifyWaitRecovered(t, m, svc, 40*time.Second)
	t.Logf("fault → replacement recovered (medic_replacements_total): %s", time.Since(faultAt).Round(time.Millisecond))
	m.waitMetric(10*time.Second, ge(2), "medic_notifications_total", "sink", "sns", "result", "sent")

	// Drain the queue until both messages are in, then keep polling for 3
	// more seconds: a duplicate would show up here.
	var msgs []snsMessage
	byKind := func() map[string][]snsMessage {
		out := map[string][]snsMessage{}
		for _, s := range msgs {
			out[s.kind()] = append(out[s.kind()], s)
		}
		return out
	}
	eventually(t, 15*time.Second, "both messages in the queue", func() (bool, string) {
		msgs = append(msgs, notifyReceive(t, w, sqsc, queueURL)...)
		k := byKind()
		return len(k[string(alerts.InstanceMarked)]) > 0 && len(k[string(alerts.ReplacementRecovered)]) > 0,
			fmt.Sprintf("%d messages so far, by kind %v", len(msgs), notifyKinds(k))
	})
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		msgs = append(msgs, notifyReceive(t, w, sqsc, queueURL)...)
		time.Sleep(200 * time.Millisecond) // the poll period, bounded by end
	}
	k := byKind()
	t.Logf("the queue received %d messages: %v", len(msgs), notifyKinds(k))
	for kind, ms := range k {
		switch alerts.Kind(kind) {
		case alerts.InstanceMarked, alerts.ReplacementRecovered:
			if len(ms) != 1 {
				t.Errorf("%d %s messages, want exactly 1", len(ms), kind)
				for _, s := range ms {
					t.Logf("%s:\n%s", s.Subject, s.Message)
				}
			}
		default:
			for _, s := range ms {
				t.Errorf("unexpected %q message: %s\n%s", kind, s.Subject, s.Message)
			}
		}
	}

	marked := k[string(alerts.InstanceMarked)][0]
	t.Logf("the marked message: %s\n%s", marked.Subject, marked.Message)
	if marked.TopicArn != topicARN {
		t.Errorf("marked message came from topic %q, want %q", marked.TopicArn, topicARN)
	}
	if !strings.Contains(marked.Subject, victim) {
		t.Errorf("marked message subject %q does not name %s", marked.Subject, victim)
	}
	evidence := notifySection(marked.Message, "Evidence:", "What medic did:")
	for _, want := range []string{victim, "status 500"} {
		if !strings.Contains(evidence, want) {
			t.Errorf("marked message's evidence lacks %q:\n%s", want, evidence)
		}
	}
	for _, want := range []string{"What medic did: marked Unhealthy", "Service state: ", "No action needed."} {
		if !strings.Contains(marked.Message, want) {
			t.Errorf("marked message lacks %q", want)
		}
	}
	if strings.Contains(marked.Message, "A person should look") {
		t.Errorf("marked message asks for a person")
	}

	rec := k[string(alerts.ReplacementRecovered)][0]
	t.Logf("the recovered message: %s\n%s", rec.Subject, rec.Message)
	for _, want := range []string{victim, "replaced by", "No action needed."} {
		if !strings.Contains(rec.Message, want) {
			t.Errorf("recovered message lacks %q", want)
		}
	}
	if ev := notifySection(rec.Message, "Evidence:", "What medic did:"); !strings.Contains(ev, "healthy") {
		t.Errorf("recovered message's evidence does not show the newcomer healthy:\n%s", ev)
	}
	mt := m.metrics()
	if v := mt.val("medic_notifications_total", "sink", "sns", "result", "failed"); v != 0 {
		t.Errorf(`medic_notifications_total{sink="sns",result="failed"} = %v, want 0`, v)
	}
	if v := mt.val("medic_notifications_total", "sink", "sns", "result", "sent"); v != float64(len(msgs)) {
		t.Errorf(`medic_notifications_total{sink="sns",result="sent"} = %v, but the queue received %d`, v, len(msgs))
	}
}

func notifyKinds(k map[string][]snsMessage) map[string]int {
	out := map[string]int{}
	for kind, ms := range k {
		out[kind] = len(ms)
	}
	return out
}

// notifySection is the text of msg between the lines starting with from
// and to.
func notifySection(msg, from, to string) string {
	i := strings.Index(msg, from)
	if i < 0 {
		return ""
	}
	rest := msg[i:]
	if j := strings.Index(rest, to); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// ---- Alertmanager ----

// notifyStartAlertmanager runs the Debian package's Alertmanager on a free
// loopback port with a minimal config until the test ends, and returns its
// base URL.
func notifyStartAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("prometheus-alertmanager is not installed (Debian package prometheus-alertmanager)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		addr := fmt.Sprintf("127.0.0.1:%d", notifyFreePort(t))
		p := notifyStartProcess(t, "alertmanager", bin,
			"--config.file="+cfg, "--storage.path="+filepath.Join(dir, fmt.Sprint("data", try)),
			"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
		base := "http://" + addr
		if p.waitReady(base+"/-/ready", 30*time.Second) {
			return base
		}
		if try == 3 {
			t.Fatalf("alertmanager did not start:\n%s", p.out.String())
		}
	}
}

// notifyProcess is a helper process (Alertmanager, Prometheus) of a test.
type notifyProcess struct {
	name string
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{}
}

// notifyStartProcess starts bin in its own process group; when the test
// ends the group is killed and waited for, and its output logged if the
// test failed.
func notifyStartProcess(t *testing.T, name, bin string, args ...string) *notifyProcess {
	t.Helper()
	p := &notifyProcess{name: name, out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// waitReady polls url until it answers 200 (true) or the process exits or
// timeout passes (false).
func (p *notifyProcess) waitReady(url string, timeout time.Duration) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		select {
		case <-p.done:
			return false
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// amAlert is the part of Alertmanager's GET /api/v2/alerts the test reads.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// notifyAMAlerts returns the alerts Alertmanager holds (active, silenced,
// inhibited and unprocessed; resolved ones are not listed).
func notifyAMAlerts(t *testing.T, base string) []amAlert {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var as []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	return as
}

// 2. A real Alertmanager: the instance's alert arrives with its labels
// and is resolved after the replacement recovers.
func TestE2ENotifyAlertmanager(t *testing.T) {
	base := notifyStartAlertmanager(t)
	w := newWorld(t, fleetOpts{PerAZ: 2})
	cfg := w.config(cfgOpts{}) + fmt.Sprintf(`notifications:
  retry: {max_attempts: 5, initial_interval: 200ms, max_interval: 1s}
  sinks:
    - {name: am, type: alertmanager, url: %q, resend_interval: 2s, alert_ttl: 1m}
`, base)
	m := notifyStartMedic(t, w, svc, cfg)
	if as := notifyAMAlerts(t, base); len(as) != 0 {
		t.Fatalf("Alertmanager holds %d alerts before any fault: %+v", len(as), as)
	}
	victim := w.instances()[2]
	alertname := alerts.AlertName(alerts.InstanceMarked)

	// PlayASG starts only once the alert was seen, so it is seen firing.
	notifyBreak(t, w, victim.ID)
	var got amAlert
	eventually(t, 20*time.Second, alertname+" in Alertmanager", func() (bool, string) {
		as := notifyAMAlerts(t, base)
		for _, a := range as {
			if a.Labels["alertname"] == alertname {
				got = a
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d alerts: %+v", len(as), as)
	})
	t.Logf("alert: labels %v, state %s, startsAt %s, endsAt %s", got.Labels, got.Status.State,
		got.StartsAt.Format(time.RFC3339), got.EndsAt.Format(time.RFC3339))
	for k, v := range map[string]string{
		"alertname": alertname, "service": svc, "severity": string(alerts.Info), "subject": victim.ID,
		"az": victim.AZ, "source": "medic", "asg": w.group, "result": "marked",
	} {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, got.Labels[k], v)
		}
	}
	if got.Status.State != "active" {
		t.Errorf("state %q, want active", got.Status.State)
	}
	if !strings.Contains(got.Annotations["evidence"], "status 500") ||
		!strings.Contains(got.Annotations["description"], "No action needed.") ||
		!strings.Contains(got.Annotations["action"], "marked Unhealthy") || got.Annotations["summary"] == "" {
		t.Errorf("annotations = %v", got.Annotations)
	}
	if !got.EndsAt.After(time.Now()) {
		t.Errorf("endsAt %s is not in the future while the alert fires", got.EndsAt)
	}

	notifyPlayASG(t, w)
	recoveredAt := time.Now()
	notifyWaitRecovered(t, m, svc, 40*time.Second)
	eventually(t, 15*time.Second, alertname+" resolved", func() (bool, string) {
		for _, a := range notifyAMAlerts(t, base) {
			if a.Labels["alertname"] == alertname && a.Labels["subject"] == victim.ID {
				return false, fmt.Sprintf("still listed: state %s, endsAt %s", a.Status.State, a.EndsAt.Format(time.RFC3339Nano))
			}
		}
		return true, ""
	})
	t.Logf("replacement recovered and the alert resolved %s after the ASG began replacing", time.Since(recoveredAt).Round(time.Millisecond))
	// Resolved, not merely expired: medic posted the resolution (endsAt
	// now, well before the 4 × resend_interval an active alert gets).
	if as := notifyAMAlerts(t, base); len(as) != 0 {
		t.Errorf("Alertmanager still holds %d alerts after recovery: %+v", len(as), as)
	}
	mt := m.metrics()
	if v := mt.val("medic_notifications_total", "sink", "am", "result", "failed"); v != 0 {
		t.Errorf(`medic_notifications_total{sink="am",result="failed"} = %v, want 0`, v)
	}
	if v := mt.val("medic_notifications_total", "sink", "am", "result", "sent"); v < 2 {
		t.Errorf(`medic_notifications_total{sink="am",result="sent"} = %v, want ≥ 2 (fire, resolve)`, v)
	}
}

// ---- a webhook that is down or slow ----

// 3. A webhook sink that hangs and one whose port refuses connections do
// not delay marking; the hanging sink's overflow is counted as dropped and
// the refused sink's deliveries as failed.
func TestE2ENotifySlowWebhookDoesNotDelayMarking(t *testing.T) {
	// A receiver that accepts the request and never answers.
	release := make(chan struct{})
	var hungMu sync.Mutex
	hung := 0
	hang := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hungMu.Lock()
		hung++
		hungMu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs before hang.Close
	// A port nobody listens on: connection refused.
	refusedURL := fmt.Sprintf("http://127.0.0.1:%d/hook", notifyFreePort(t))

	w := newWorld(t, fleetOpts{PerAZ: 3})
	t.Setenv("MEDIC_E2E_HANG_URL", hang.URL+"/hook")
	refusedFile := w.writeConfig("refused-url", refusedURL+"\n")
	cfg := w.config(cfgOpts{}) + fmt.Sprintf(`notifications:
  queue_size: 1
  timeout: 30s
  retry: {max_attempts: 2, initial_interval: 100ms, max_interval: 200ms}
  sinks:
    - {name: hang, type: webhook, url_env: MEDIC_E2E_HANG_URL}
    - {name: refused, type: webhook, url_file: %q}
`, refusedFile)
	m := notifyStartMedic(t, w, svc, cfg)
	rec := w.recordMarks()

	victim := w.instances()[1].ID
	faultAt := notifyBreak(t, w, victim)
	w.waitUnhealthy(victim, 15*time.Second)
	markAt, ok := rec.first()
	if !ok {
		t.Fatal("the emulator shows the instance Unhealthy, but no SetInstanceHealth passed the proxy")
	}
	bound := 3*probeInterval + time.Second
	latency := markAt.Sub(faultAt)
	t.Logf("with a hanging and a refusing webhook: fault → SetInstanceHealth at the proxy %s (bound %s, as without notifications)",
		latency.Round(time.Millisecond), bound)
	if latency > bound {
		t.Errorf("marked %s after the fault, want within unhealthy_after × interval + 1s = %s", latency, bound)
	}

	// More events while the hanging sink holds the first: the endpoint
	// fails and recovers, twice. Each change is an event; the hanging
	// sink's queue of one overflows.
	m.waitMetric(10*time.Second, ge(1), "medic_heal_actions_total", "service", svc, "result", "marked")
	eventually(t, 10*time.Second, "the hanging webhook holding a delivery", func() (bool, string) {
		hungMu.Lock()
		defer hungMu.Unlock()
		return hung > 0, "no request reached it yet"
	})
	for i := 0; i < 2; i++ {
		w.lb.setStatus(http.StatusServiceUnavailable)
		m.waitMetric(10*time.Second, eq(0), "medic_service_endpoint_success", "service", svc)
		w.lb.setStatus(http.StatusOK)
		m.waitMetric(10*time.Second, eq(1), "medic_service_endpoint_success", "service", svc)
	}
	m.waitMetric(10*time.Second, ge(1), "medic_notifications_dropped_total", "sink", "hang")
	m.waitMetric(15*time.Second, ge(1), "medic_notifications_total", "sink", "refused", "result", "failed")
	mt := m.metrics()
	t.Logf("hang: dropped %v, queue %v, sent %v, failed %v; refused: sent %v, failed %v, dropped %v",
		mt.val("medic_notifications_dropped_total", "sink", "hang"), mt.val("medic_notification_queue_length", "sink", "hang"),
		mt.val("medic_notifications_total", "sink", "hang", "result", "sent"), mt.val("medic_notifications_total", "sink", "hang", "result", "failed"),
		mt.val("medic_notifications_total", "sink", "refused", "result", "sent"), mt.val("medic_notifications_total", "sink", "refused", "result", "failed"),
		mt.val("medic_notifications_dropped_total", "sink", "refused"))
	if v := mt.val("medic_notifications_total", "sink", "refused", "result", "sent"); v != 0 {
		t.Errorf(`medic_notifications_total{sink="refused",result="sent"} = %v, want 0`, v)
	}
	if v := mt.val("medic_notification_queue_length", "sink", "hang"); v != 1 {
		t.Errorf(`medic_notification_queue_length{sink="hang"} = %v, want 1 (full)`, v)
	}
	// Healing went on: only the victim was marked, once.
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
	w.assertOnlyUnhealthy(victim)
	if strings.Contains(m.out.String(), refusedURL) || strings.Contains(m.out.String(), hang.URL) {
		t.Errorf("medic's logs print a webhook URL (a secret)")
	}

	// The hanging delivery does not hold up the exit either: the drain
	// ends within medic's shutdown budget and counts what is left.
	m.stop(syscall.SIGTERM)
	if len(m.logsWith("msg", "some loops did not stop in time; exiting anyway")) > 0 {
		t.Errorf("the notification drain outlasted medic's shutdown budget")
	}
	if len(m.logsWith("msg", "notifications left undelivered at shutdown", "sink", "hang")) != 1 {
		t.Errorf("want one 'notifications left undelivered at shutdown' log line for the hanging sink")
	}
}
