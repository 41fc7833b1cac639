package alerts

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/medic-sre/medic/config"
)

func decodeAlerts(t *testing.T, b []byte) []alertmanagerAlert {
	t.Helper()
	var as []alertmanagerAlert
	if err := json.Unmarshal(b, &as); err != nil {
		t.Fatalf("alerts %s: %v", b, err)
	}
	return as
}

// recordedAlertmanagerSink is a sink posting to a recording server, on a
// test clock at t0: resend every minute, TTL one hour.
func recordedAlertmanagerSink(t *testing.T) (*testkit.Clock, *recorder, *alertmanagerSink) {
	clock := testkit.NewClock(t0)
	srv := newRecorder(t, nil)
	s := newAlertmanagerSink(config.NotificationSink{
		Name: "am", ResendInterval: config.Duration(time.Minute), AlertTTL: config.Duration(time.Hour),
		Timeout: config.Duration(5 * time.Second),
	}, []string{srv.URL}, "", http.DefaultClient, clock.Now)
	return clock, srv, s
}

// The sink's bookkeeping, against a recording server: fire, re-post,
// resolve by Resolved and by an ending kind, expire after the TTL.
func TestAlertmanagerSinkLifecycle(t *testing.T) {
	clock, srv, s := recordedAlertmanagerSink(t)
	ctx := t.Context()
	send := func(e Event) []alertmanagerAlert {
		t.Helper()
		n := srv.count()
		if err := s.Send(ctx, e); err != nil {
			t.Fatal(err)
		}
		if srv.count() != n+1 {
			t.Fatalf("Send posted %d times", srv.count()-n)
		}
		return decodeAlerts(t, srv.body(n))
	}

	marked := sampleEvents()["marked"]
	got := send(marked)
	if len(got) != 1 || got[0].Labels["alertname"] != "MedicInstanceMarked" || !got[0].EndsAt.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("firing = %+v", got)
	}
	failing := Event{Kind: EndpointFailing, Service: "web", Severity: Warning, Summary: "endpoint fails"}
	send(failing)
	if s.activeCount() != 2 {
		t.Fatalf("active = %d, want 2", s.activeCount())
	}

	clock.Advance(time.Minute)
	if err := s.Resend(ctx); err != nil {
		t.Fatal(err)
	}
	re := decodeAlerts(t, srv.body(srv.count()-1))
	if len(re) != 2 || !re[0].EndsAt.Equal(t0.Add(5*time.Minute)) || !re[0].StartsAt.Equal(t0) {
		t.Fatalf("re-posted = %+v", re)
	}

	// An identical firing event keeps the original startsAt.
	clock.Advance(time.Minute)
	again := send(marked)
	if !again[0].StartsAt.Equal(t0) {
		t.Errorf("startsAt moved to %s", again[0].StartsAt)
	}

	// ReplacementRecovered ends the instance's "marked" alert, with the
	// same labels it fired with; it does not fire itself.
	rec := Event{Kind: ReplacementRecovered, Service: "web", Subject: "i-0abc", Summary: "replaced and recovered"}
	res := send(rec)
	var marks int
	for _, a := range res {
		if a.Labels["alertname"] == "MedicInstanceMarked" {
			marks++
			if !a.EndsAt.Equal(clock.Now()) || a.Labels["reason"] != "probe_failures" {
				t.Errorf("resolution = %+v", a)
			}
		}
		if a.Labels["alertname"] == "MedicReplacementRecovered" {
			t.Errorf("an ending kind fired: %+v", a)
		}
	}
	if marks != 1 || s.activeCount() != 1 {
		t.Fatalf("resolutions %+v, active %d", res, s.activeCount())
	}

	// Resolved on the same kind ends it.
	f := failing
	f.Resolved = true
	send(f)
	if s.activeCount() != 0 {
		t.Fatalf("active after resolve = %d", s.activeCount())
	}
	n := srv.count()
	if err := s.Resend(ctx); err != nil || srv.count() != n {
		t.Fatalf("Resend with nothing active posted (err %v)", err)
	}

	// With no fresh event for the TTL, an alert is let go.
	send(failing)
	clock.Advance(time.Hour)
	n = srv.count()
	if err := s.Resend(ctx); err != nil || srv.count() != n || s.activeCount() != 0 {
		t.Fatalf("expired alert re-posted (err %v, active %d)", err, s.activeCount())
	}
}

// startAlertmanager runs the Debian package's Alertmanager on a free
// loopback port with a minimal config, until the test ends.
// TestAlertmanagerStandbyKeepsNoConditionAlive: a replica that does not
// lead re-posts its own actions' alerts but no condition only the leader
// tells (a former leader would fire again what the new leader resolved);
// leading again, it re-posts them.
func TestAlertmanagerStandbyKeepsNoConditionAlive(t *testing.T) {
	clock, srv, s := recordedAlertmanagerSink(t)
	leading := true
	s.leads = func() bool { return leading }
	ctx := t.Context()
	for _, e := range []Event{sampleEvents()["marked"], {Kind: EndpointFailing, Service: "web", Severity: Warning, Summary: "endpoint fails"}} {
		if err := s.Send(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	resent := func() []string {
		t.Helper()
		n := srv.count()
		clock.Advance(time.Minute)
		if err := s.Resend(ctx); err != nil {
			t.Fatal(err)
		}
		if srv.count() == n {
			return nil
		}
		var names []string
		for _, a := range decodeAlerts(t, srv.body(srv.count()-1)) {
			names = append(names, a.Labels["alertname"])
		}
		sort.Strings(names)
		return names
	}
	for _, step := range []struct {
		desc    string
		leading bool
		want    []string
	}{
		{desc: "leading: both", leading: true, want: []string{"MedicEndpointFailing", "MedicInstanceMarked"}},
		{desc: "standby: its mark only", leading: false, want: []string{"MedicInstanceMarked"}},
		{desc: "leading again: both", leading: true, want: []string{"MedicEndpointFailing", "MedicInstanceMarked"}},
	} {
		leading = step.leading
		if got := resent(); !slices.Equal(got, step.want) {
			t.Errorf("%s: re-posted %v, want %v", step.desc, got, step.want)
		}
	}
}

func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if _, err2 := os.Stat("/usr/bin/prometheus-alertmanager"); err2 != nil {
			t.Skip("prometheus-alertmanager is not installed (Debian package prometheus-alertmanager): skipping the real Alertmanager test")
		}
		bin = "/usr/bin/prometheus-alertmanager"
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return testkit.StartDaemon(t, "alertmanager", bin, func(addr, data string) []string {
		return []string{"--config.file=" + cfg, "--storage.path=" + data, "--web.listen-address=" + addr,
			"--cluster.listen-address=", "--log.level=warn"}
	})
}

// gettableAlert is the part of GET /api/v2/alerts the test reads.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annots       map[string]string `json:"annotations"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func getAlerts(t *testing.T, base string) []gettableAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var as []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	return as
}

// Against a real Alertmanager: the alert arrives with the right labels
// and annotations, and is resolved after the Resolved event.
func TestAlertmanagerReal(t *testing.T) {
	base := startAlertmanager(t)
	td := startDispatcher(t, Options{Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "am", Type: "alertmanager", URL: base, RunbookURL: "https://runbooks.example/medic.md"}},
	}}, true)

	e := sampleEvents()["marked"]
	e.Time = time.Now()
	td.Notify(e)
	var got []gettableAlert
	waitFor(t, "the alert in Alertmanager", func() bool {
		got = getAlerts(t, base)
		return len(got) == 1
	})
	a := got[0]
	for k, v := range map[string]string{
		"alertname": "MedicInstanceMarked", "service": "web", "severity": "info",
		"subject": "i-0abc", "az": "us-east-1a", "reason": "probe_failures", "source": "medic",
	} {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if !strings.Contains(a.Annots["evidence"], "connection refused") ||
		!strings.Contains(a.Annots["description"], "No action needed.") ||
		a.Annots["runbook_url"] != "https://runbooks.example/medic.md#notification-instance-marked" ||
		a.Annots["summary"] == "" || a.Annots["action"] == "" {
		t.Errorf("annotations = %v", a.Annots)
	}
	if a.Status.State != "active" {
		t.Errorf("state = %q, want active", a.Status.State)
	}

	r := e
	r.Resolved, r.Summary, r.Time = true, "i-0abc is healthy again", time.Now()
	td.Notify(r)
	waitFor(t, "the alert to be resolved", func() bool { return len(getAlerts(t, base)) == 0 })
	// Alertmanager may answer our GET before the worker has read its
	// answer to the POST and counted it.
	waitFor(t, "both deliveries counted", func() bool { return td.counter("am", "sent") == 2 })
}

// A failing Alertmanager re-post is logged, not fatal; the worker goes on.
func TestAlertmanagerResendFromWorker(t *testing.T) {
	srv := newRecorder(t, nil)
	td := startDispatcher(t, Options{Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "am", Type: "alertmanager", URL: srv.URL, ResendInterval: config.Duration(20 * time.Millisecond)}},
	}}, true)
	td.Notify(sampleEvents()["marked"])
	waitFor(t, "two re-posts after the first post", func() bool { return srv.count() >= 3 })
	for i := 1; i < 3; i++ {
		if as := decodeAlerts(t, srv.body(i)); len(as) != 1 || as[0].Labels["subject"] != "i-0abc" {
			t.Errorf("re-post %d = %+v", i, as)
		}
	}
}
