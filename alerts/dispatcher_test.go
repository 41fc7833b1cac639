package alerts

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/config"
)

func TestWebhookAndSlackDeliver(t *testing.T) {
	hook := newRecorder(t, nil)
	slack := newRecorder(t, nil)
	t.Setenv("MEDIC_TEST_SLACK_URL", slack.URL+"/services/T000/B000/XXXX")
	t.Setenv("MEDIC_TEST_HOOK_TOKEN", "tok-123")
	td := startDispatcher(t, Options{Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{
			{Name: "hook", Type: "webhook", URLFile: secretFile(t, hook.URL+"/medic"), TokenEnv: "MEDIC_TEST_HOOK_TOKEN"},
			{Name: "chat", Type: "slack", URLEnv: "MEDIC_TEST_SLACK_URL"},
		},
	}}, true)

	e := sampleEvents()["marked"]
	td.Notify(e)
	waitFor(t, "both sinks to receive the event", func() bool { return hook.count() == 1 && slack.count() == 1 })

	p := hook.webhooks(t)[0]
	if p.Kind != InstanceMarked || p.Service != "web" || p.Subject != "i-0abc" || p.NeedsAction ||
		len(p.Evidence) != 3 || !strings.Contains(p.Text, "No action needed.") {
		t.Errorf("webhook payload = %+v", p)
	}
	if got := hook.auth[0]; got != "Bearer tok-123" {
		t.Errorf("webhook Authorization = %q", got)
	}
	var sm SlackMessage
	if err := json.Unmarshal(slack.body(0), &sm); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"*What happened:*", "connection refused", "_No action needed._"} {
		if !strings.Contains(sm.Text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, sm.Text)
		}
	}
	waitFor(t, "sent counters", func() bool { return td.counter("hook", "sent") == 1 && td.counter("chat", "sent") == 1 })
}

// A sink that hangs must not hold up Notify: with the sink stuck on the
// first event, 999 more Notify calls all return while it is still stuck,
// and what does not fit the queue is counted as dropped.
func TestSlowSinkDoesNotBlockNotify(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := newRecorder(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}) // before the server closes
	const queueSize = 10
	td := startDispatcher(t, Options{Config: config.Notifications{
		DigestThreshold: 1 << 30, // this test is about queues, not digests
		Retry:           fastRetry,
		Sinks: []config.NotificationSink{{
			Name: "slow", Type: "webhook", URLFile: secretFile(t, slow.URL), QueueSize: queueSize,
			Timeout: config.Duration(time.Hour),
		}},
	}}, true)

	td.Notify(numbered(InstanceMarked, "web", 0))
	<-arrived // the worker is now stuck in the first delivery
	for i := 1; i < 1000; i++ {
		td.Notify(numbered(InstanceMarked, "web", i))
	}
	// All 1,000 Notify calls have returned and the server still holds the first.
	select {
	case <-release:
		t.Fatal("released too early")
	default:
	}
	if got, want := td.dropped("slow"), float64(1000-1-queueSize); got != want {
		t.Errorf("dropped = %v, want %v", got, want)
	}
	if got := td.queueLen("slow"); got != queueSize {
		t.Errorf("queue length = %v, want %d", got, queueSize)
	}
	close(release)
	waitFor(t, "the queue to drain", func() bool { return td.counter("slow", "sent") == 1+queueSize })
	// The oldest were dropped: the last events are the ones delivered.
	last := slow.webhooks(t)[slow.count()-1]
	if last.Subject != "i-0999" {
		t.Errorf("last delivered = %s, want i-0999 (drop the oldest)", last.Subject)
	}
}

// A sink that refuses connections must not hold up Notify either; its
// events end as failed (after retries) or dropped, every one counted.
func TestDownSinkDoesNotBlockNotify(t *testing.T) {
	const queueSize = 10
	td := startDispatcher(t, Options{
		DrainTimeout: time.Millisecond,
		Config: config.Notifications{
			DigestThreshold: 1 << 30,
			// The first failure waits a minute before its retry: the worker
			// is busy with event 0 for the whole burst.
			Retry: config.NotificationRetry{MaxAttempts: 3, InitialInterval: config.Duration(time.Minute), MaxInterval: config.Duration(time.Minute)},
			Sinks: []config.NotificationSink{{Name: "down", Type: "webhook", URLFile: secretFile(t, refusedURL(t)), QueueSize: queueSize}},
		},
	}, true)

	td.Notify(numbered(InstanceMarked, "web", 0))
	w := td.worker(t, "down")
	waitFor(t, "the worker to take the first event", func() bool { return w.q.len() == 0 })
	for i := 1; i < 1000; i++ {
		td.Notify(numbered(InstanceMarked, "web", i))
	}
	if got, want := td.dropped("down"), float64(1000-1-queueSize); got != want {
		t.Errorf("dropped = %v, want %v", got, want)
	}
	td.stop(t)
	sent, failed, dropped := td.counter("down", "sent"), td.counter("down", "failed"), td.dropped("down")
	if sent != 0 || failed < 1 || failed+dropped != 1000 {
		t.Errorf("sent %v, failed %v, dropped %v: want 0 sent and failed+dropped = 1000", sent, failed, dropped)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		desc         string
		statuses     []int // answers in order; 200 after the list
		wantRequests int
		wantResult   string
	}{
		{"two 500s then success", []int{500, 500}, 3, "sent"},
		{"429 is retried", []int{429}, 2, "sent"},
		{"exactly max attempts failing", []int{503, 503, 503}, 3, "failed"},
		{"400 is permanent: no retry", []int{400}, 1, "failed"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			srv := newRecorder(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n <= len(tc.statuses) {
					w.WriteHeader(tc.statuses[n-1])
				}
			})
			td := startDispatcher(t, Options{Config: config.Notifications{
				Retry: fastRetry, // 3 attempts
				Sinks: []config.NotificationSink{{Name: "hook", Type: "webhook", URLFile: secretFile(t, srv.URL)}},
			}}, true)
			td.Notify(sampleEvents()["marked"])
			waitFor(t, "the delivery outcome", func() bool { return td.counter("hook", tc.wantResult) == 1 })
			if got := srv.count(); got != tc.wantRequests {
				t.Errorf("requests = %d, want %d", got, tc.wantRequests)
			}
			if got := testutil.CollectAndCount(td.m.duration); got != 1 {
				t.Errorf("duration series = %d", got)
			}
		})
	}
}

func TestDedupWithinWindow(t *testing.T) {
	clock := testkit.NewClock(t0)
	srv := newRecorder(t, nil)
	td := startDispatcher(t, Options{Now: clock.Now, Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "hook", Type: "webhook", URLFile: secretFile(t, srv.URL)}},
	}}, true)

	e := sampleEvents()["marked"]
	td.Notify(e)
	clock.Advance(5 * time.Minute)
	td.Notify(e)
	clock.Advance(5*time.Minute - time.Second)
	td.Notify(e) // 9m59s after the first: still a duplicate
	waitFor(t, "the first delivery", func() bool { return td.counter("hook", "sent") == 1 })
	clock.Advance(time.Second)
	td.Notify(e) // 10m: the window has passed
	waitFor(t, "the second delivery", func() bool { return td.counter("hook", "sent") == 2 })

	const want = `
# HELP medic_notifications_dropped_total Events dropped because the sink's queue was full (the oldest is dropped), or left queued at shutdown or on removal.
# TYPE medic_notifications_dropped_total counter
medic_notifications_dropped_total{sink="hook"} 0
# HELP medic_notifications_total Events handled per sink by outcome: sent, failed (after retries), deduplicated, digested (folded into a digest).
# TYPE medic_notifications_total counter
medic_notifications_total{result="deduplicated",sink="hook"} 2
medic_notifications_total{result="digested",sink="hook"} 0
medic_notifications_total{result="failed",sink="hook"} 0
medic_notifications_total{result="sent",sink="hook"} 2
`
	if err := testutil.GatherAndCompare(td.reg, strings.NewReader(want), "medic_notifications_total", "medic_notifications_dropped_total"); err != nil {
		t.Error(err)
	}
	if srv.count() != 2 {
		t.Errorf("server got %d, want 2", srv.count())
	}
}

// 50 events in a burst: the first few (the threshold) go out one by one,
// the flood becomes exactly one digest naming all 50. Alertmanager, which
// groups on its own, gets each of them.
func TestBurstBecomesOneDigest(t *testing.T) {
	clock := testkit.NewClock(t0)
	hook := newRecorder(t, nil)
	am := newRecorder(t, nil)
	td := startDispatcher(t, Options{Now: clock.Now, Config: config.Notifications{
		DigestThreshold: 5,
		Retry:           fastRetry,
		Sinks: []config.NotificationSink{
			{Name: "hook", Type: "webhook", URLFile: secretFile(t, hook.URL)},
			{Name: "am", Type: "alertmanager", URL: am.URL},
		},
	}}, true)

	for i := 0; i < 50; i++ {
		td.Notify(numbered(InstanceMarked, "web", i))
	}
	waitFor(t, "the first 5 and all 50 alerts", func() bool { return hook.count() == 5 && am.count() == 50 })
	clock.Advance(10 * time.Minute)
	waitFor(t, "the digest", func() bool { return hook.count() == 6 })
	td.stop(t) // flushes nothing more: the flood is over

	var digests []WebhookPayload
	for _, p := range hook.webhooks(t) {
		if p.Digest != nil {
			digests = append(digests, p)
		}
	}
	if len(digests) != 1 || hook.count() != 6 {
		t.Fatalf("got %d messages, %d digests; want 6 and 1", hook.count(), len(digests))
	}
	d := digests[0]
	if d.Digest.Count != 50 || len(d.Digest.Subjects) != 50 || d.Digest.Individually != 5 ||
		!strings.HasPrefix(d.Summary, "50 instances marked Unhealthy in web in the last 10 minutes") {
		t.Errorf("digest = %q %+v", d.Summary, d.Digest)
	}
	if got := td.counter("hook", "digested"); got != 45 {
		t.Errorf("digested = %v, want 45", got)
	}
	if got := td.counter("am", "digested"); got != 0 {
		t.Errorf("alertmanager digested = %v, want 0", got)
	}
}

func TestMinSeverity(t *testing.T) {
	srv := newRecorder(t, nil)
	td := startDispatcher(t, Options{Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "pager", Type: "webhook", URLFile: secretFile(t, srv.URL), MinSeverity: "critical"}},
	}}, true)
	td.Notify(sampleEvents()["marked"])
	td.Notify(sampleEvents()["not-recovered"])
	waitFor(t, "one delivery", func() bool { return td.counter("pager", "sent") == 1 })
	td.stop(t)
	if p := srv.webhooks(t); len(p) != 1 || p[0].Kind != ReplacementNotRecovered {
		t.Errorf("got %+v, want only the action-needed event", p)
	}
}

func TestUpdate(t *testing.T) {
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	urlFile := secretFile(t, a.URL)
	cfg := config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{
			{Name: "hook", Type: "webhook", URLFile: urlFile},
			{Name: "old", Type: "webhook", URLFile: secretFile(t, a.URL)},
		},
	}
	td := startDispatcher(t, Options{Config: cfg}, false) // queue before Run
	td.Notify(numbered(InstanceMarked, "web", 1))
	before := td.worker(t, "hook")

	// A broken config changes nothing.
	broken := cfg
	broken.Sinks = []config.NotificationSink{{Name: "hook", Type: "webhook", URLFile: "/nonexistent/secret"}}
	err := td.Update(broken)
	if err == nil || !strings.Contains(err.Error(), "sink hook") {
		t.Fatalf("Update(broken) = %v, want an error naming the sink", err)
	}
	if td.worker(t, "hook") != before {
		t.Fatal("a failed Update replaced the sink")
	}
	// Unchanged config keeps the sink as it is.
	if err := td.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if td.worker(t, "hook") != before {
		t.Fatal("an unchanged sink was replaced")
	}
	// The secret now points elsewhere: the sink is replaced, its queue moves
	// with it; "old" is removed and its queued event counted as dropped.
	if err := writeFile(urlFile, b.URL); err != nil {
		t.Fatal(err)
	}
	cfg.Sinks = cfg.Sinks[:1]
	if err := td.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if td.worker(t, "hook") == before {
		t.Fatal("a changed sink was kept")
	}
	if got := td.dropped("old"); got != 1 {
		t.Errorf("dropped on removal = %v, want 1", got)
	}
	td.run(t)
	waitFor(t, "the queued event at the new URL", func() bool { return b.count() == 1 })
	if a.count() != 0 {
		t.Errorf("the old URL got %d requests", a.count())
	}
}

func TestNewDispatcherErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		sink config.NotificationSink
		want string
	}{
		{"sns without AWS config", config.NotificationSink{Type: "sns", TopicARN: "arn:aws:sns:us-east-1:123456789012:medic"}, "needs the AWS config"},
		{"missing env", config.NotificationSink{Type: "slack", URLEnv: "MEDIC_TEST_UNSET_VAR"}, "MEDIC_TEST_UNSET_VAR is not set"},
		{"secret is not a URL", config.NotificationSink{Type: "webhook", URLFile: secretFile(t, "hunter2")}, "does not hold an http or https URL"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := NewDispatcher(Options{Config: config.Notifications{Sinks: []config.NotificationSink{tc.sink}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// Errors from a sink never show its URL (it is a secret).
func TestErrorsHideURL(t *testing.T) {
	u := refusedURL(t) + "/T000/B000/sekrit"
	client, err := newHTTPClient(config.NotificationSink{Name: "hook", Timeout: config.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	err = postJSON(t.Context(), client, u, "tok", map[string]string{})
	if err == nil || strings.Contains(err.Error(), "sekrit") || strings.Contains(err.Error(), "/hook") {
		t.Errorf("err = %v", err)
	}
}
