package alerts

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/emulator"
	"github.com/medic-sre/medic/internal/testkit"
	"github.com/medic-sre/medic/probes"
)

// The example of issue 12: an instance answers with a mention and a
// disguised link as its second line.
const issueExample = "HTTP/1.1 200 OK\r\n<!channel> re-login now <https://evil.example/sso|SSO portal>\r\n\r\n"

// probeReason runs the real HTTP prober once against addr.
func probeReason(t *testing.T, addr string) string {
	t.Helper()
	r := probes.Probers["http"](t.Context(), probes.Target{Address: addr, Settings: &config.Probe{
		Type: "http", Scheme: "http", Path: "/healthz", Timeout: config.Duration(2 * time.Second),
	}}, log.NewNopLogger())
	if r.Success {
		t.Fatalf("the hostile instance at %s passed its probe", addr)
	}
	return r.Reason
}

// hostileEvent is what the controller reports when it marks an instance
// whose probes failed with reasons, in a group whose name and an AWS
// error (both from AWS) are hostile too.
func hostileEvent(reasons []string) Event {
	e := Event{
		Kind: InstanceMarked, Severity: Warning, Time: time.Now(), Service: "web",
		Subject: "i-0bad", AZ: "us-east-1a",
		Summary: "i-0bad in web (us-east-1a) was bad: " + reasons[0] + ".",
		Action:  "tried to mark it Unhealthy and failed: api error ValidationError: group <!here> [renew](https://evil.example/x) @everyone\r\nWhat medic did: nothing",
		State:   "5/6 healthy @all",
		Labels:  map[string]string{"asg": "<!subteam^S1|ops>-asg", "result": "failed"},
	}
	for _, r := range reasons {
		e.Evidence = append(e.Evidence, "i-0bad: 12:00:01 GET http://127.0.0.9:8080/healthz → "+r)
	}
	return e
}

var (
	mentionRE  = regexp.MustCompile(`@[A-Za-z0-9_.-]`)
	mdLinkRE   = regexp.MustCompile(`\][(:\[]`)
	controlRE  = regexp.MustCompile(`[\x00-\x09\x0b-\x1f\x7f\x{202a}-\x{202e}\x{2066}-\x{2069}]`)
	runbookRef = regexp.MustCompile(`<https?://[^<>| ]+\|Runbook>$`)
)

// liveMarkup returns what in s a chat application would act on: an angle
// bracket (Slack's <!channel>, <@U…>, <url|text>; HTML), an @mention, a
// Markdown link, a control character; "" when s is inert. allowRunbook
// lets the one link medic adds itself (Slack's runbook link) through.
func liveMarkup(s string, allowRunbook bool) string {
	if allowRunbook {
		s = runbookRef.ReplaceAllString(s, "")
	}
	switch {
	case strings.ContainsAny(s, "<>"):
		i := strings.IndexAny(s, "<>")
		return "angle bracket: " + s[max(0, i-20):min(len(s), i+20)]
	case mentionRE.MatchString(s):
		return "mention: " + mentionRE.FindString(s)
	case mdLinkRE.MatchString(s):
		return "markdown link: " + mdLinkRE.FindString(s)
	case controlRE.MatchString(s):
		return "control character: " + strings.TrimSpace(controlRE.FindString(s))
	case !utf8.ValidString(s):
		return "invalid UTF-8"
	}
	return ""
}

// What a hostile instance says, through the real prober, reaches every
// sink as inert, bounded data: a real Alertmanager, a Slack-compatible
// webhook, the generic webhook and SNS (on the emulator, read back from
// SQS). The issue's example is among the responses.
func TestHostileInstanceThroughEverySink(t *testing.T) {
	reasons := []string{
		probeReason(t, testkit.RawHTTPServer(t, issueExample)),
		probeReason(t, testkit.RawHTTPServer(t, "HTTP/1.1 2<@here>0 OK\r\n\r\n")),
		probeReason(t, testkit.RawHTTPServer(t, "HTTP/1.1 503 <!channel> [log in](https://evil.example)\r\nX-Msg: <!here> @everyone\r\nContent-Length: 33\r\n\r\n<!channel> [log in](https://evil)")),
	}
	if want := `malformed HTTP response: bad header line, starting "<!channel> re-login now <https://evil.ex..."`; reasons[0] != want {
		t.Fatalf("reason of the issue's example = %q, want %q", reasons[0], want)
	}
	if reasons[2] != "status 503" {
		t.Fatalf("reason of a failing status = %q: the status line, headers or body leaked", reasons[2])
	}

	am := startAlertmanager(t)
	slack, hook := newRecorder(t, nil), newRecorder(t, nil)
	awsCfg := emulator.DefaultConfigT(t)
	topicARN, queueURL := snsToSQS(t, awsCfg, "medic-hostile")
	td := startDispatcher(t, Options{AWS: &awsCfg, Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{
			{Name: "am", Type: "alertmanager", URL: am},
			{Name: "chat", Type: "slack", URLFile: secretFile(t, slack.URL+"/hooks/T0/B0/x"), RunbookURL: "https://runbooks.example/medic.md"},
			{Name: "hook", Type: "webhook", URLFile: secretFile(t, hook.URL+"/hook")},
			{Name: "ops", Type: "sns", TopicARN: topicARN},
		},
	}}, true)
	td.Notify(hostileEvent(reasons))
	for _, s := range []string{"am", "chat", "hook", "ops"} {
		waitFor(t, s+" delivery", func() bool { return td.counter(s, "sent")+td.counter(s, "failed") == 1 })
		if td.counter(s, "sent") != 1 {
			t.Fatalf("%s: delivery failed", s)
		}
	}

	t.Run("alertmanager", func(t *testing.T) {
		var got []gettableAlert
		waitFor(t, "the alert", func() bool { got = getAlerts(t, am); return len(got) == 1 })
		for k, v := range got[0].Annots {
			if m := liveMarkup(strings.ReplaceAll(v, "\n", " "), false); m != "" && k != "runbook_url" {
				t.Errorf("annotation %s: %s\n%s", k, m, v)
			}
			if utf8.RuneCountInString(v) > maxDescriptionRunes {
				t.Errorf("annotation %s: %d runes", k, utf8.RuneCountInString(v))
			}
		}
		for k, v := range got[0].Labels {
			if m := liveMarkup(v, false); m != "" {
				t.Errorf("label %s: %s: %q", k, m, v)
			}
		}
		if !strings.Contains(got[0].Annots["evidence"], `"‹!channel› re-login now ‹https://evil.ex..."`) {
			t.Errorf("evidence lacks the inert excerpt:\n%s", got[0].Annots["evidence"])
		}
	})
	t.Run("slack", func(t *testing.T) {
		var m SlackMessage
		if err := json.Unmarshal(slack.body(0), &m); err != nil {
			t.Fatal(err)
		}
		if live := liveMarkup(strings.ReplaceAll(m.Text, "\n", " "), true); live != "" {
			t.Errorf("%s in\n%s", live, m.Text)
		}
		if !strings.Contains(m.Text, "&lt;!channel&gt; re-login now &lt;https://evil.ex...") {
			t.Errorf("text lacks the escaped excerpt:\n%s", m.Text)
		}
	})
	t.Run("webhook", func(t *testing.T) {
		p := hook.webhooks(t)[0]
		// The fields are data: JSON-encoded as they are, one line, bounded.
		for _, f := range append([]string{p.Summary, p.Action, p.State, p.Title}, p.Evidence...) {
			if strings.ContainsAny(f, "\r\n") || utf8.RuneCountInString(f) > maxFieldRunes {
				t.Errorf("field not one bounded line: %q", f)
			}
		}
		if !strings.Contains(p.Evidence[0], `"<!channel> re-login now <https://evil.ex..."`) {
			t.Errorf("evidence is not the data as sent: %q", p.Evidence[0])
		}
		if live := liveMarkup(strings.ReplaceAll(p.Title+" "+p.Text, "\n", " "), false); live != "" {
			t.Errorf("title/text: %s", live)
		}
	})
	t.Run("sns", func(t *testing.T) {
		msg := receiveOne(t, awsCfg, queueURL, topicARN)
		if live := liveMarkup(strings.ReplaceAll(msg, "\n", " "), false); live != "" {
			t.Errorf("%s in\n%s", live, msg)
		}
		if strings.Count(msg, "\nWhat medic did:") != 1 {
			t.Errorf("an AWS error forged a line of the message:\n%s", msg)
		}
	})
}
