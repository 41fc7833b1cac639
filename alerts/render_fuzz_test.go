package alerts

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRenderers: whatever text an event carries (a probe's reason, a name
// or an error from AWS), every sink's renderer returns without panicking,
// within its bounds, and with no mention, link or control character a
// chat application or a template would act on. The seed corpus in
// testdata/fuzz/FuzzRenderers runs with plain `go test`; explore with
// `go test -run '^$' -fuzz FuzzRenderers ./alerts`.
func FuzzRenderers(f *testing.F) {
	f.Add("i-0bad was bad: malformed HTTP response", "GET / → "+issueExample, "web-asg", "i-0bad", false)
	f.Fuzz(func(t *testing.T, summary, evidence, label, subject string, needsAction bool) {
		e := Event{
			Kind: InstanceMarked, Service: "web", Subject: subject, AZ: label, Summary: summary,
			Evidence: strings.Split(evidence, "|"), Action: evidence, State: summary, NeedsAction: needsAction,
			Ask: label, Labels: map[string]string{"asg": label, label: subject}, RequestID: subject,
		}
		const runbook = "https://runbooks.example/medic.md"
		check := func(format, s string, maxRunes int, allowRunbook bool) {
			t.Helper()
			if n := utf8.RuneCountInString(s); n > maxRunes {
				t.Errorf("%s: %d runes, bound %d", format, n, maxRunes)
			}
			if live := liveMarkup(strings.ReplaceAll(s, "\n", " "), allowRunbook); live != "" {
				t.Errorf("%s: %s\n%q", format, live, s)
			}
		}

		subj, body := RenderText(e, runbook)
		check("text subject", subj, maxFieldRunes, false)
		check("text body", body, maxTextRunes, false)
		check("title", Title(e), maxFieldRunes+len("ACTION NEEDED: medic · web · "), false)
		check("slack", RenderSlack(e, runbook).Text, maxMessageRunes+len("\n<"+runbook+"#notification-instance-marked|Runbook>"), true)
		for k, v := range alertAnnotations(e, runbook) {
			if k != "runbook_url" {
				check("annotation "+k, v, maxDescriptionRunes, false)
			}
		}
		labels := alertLabels(e, e.Kind)
		if len(labels) > maxLabels+6 {
			t.Errorf("%d labels", len(labels))
		}
		for k, v := range labels {
			check("label "+k, v, maxLabelRunes, false)
		}
		p := RenderWebhook(e, runbook)
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("webhook: %v", err)
		}
		if len(p.Evidence) > maxEvidence+1 {
			t.Errorf("webhook: %d evidence lines", len(p.Evidence))
		}
		for _, s := range append([]string{p.Service, p.Subject, p.AZ, p.Summary, p.Action, p.State, p.Ask, p.RequestID}, p.Evidence...) {
			if utf8.RuneCountInString(s) > maxFieldRunes || strings.ContainsAny(s, "\r\n") || !utf8.ValidString(s) {
				t.Errorf("webhook field not one bounded line of UTF-8: %q", s)
			}
		}
		check("webhook title", p.Title, maxFieldRunes, false)
		check("webhook text", p.Text, maxTextRunes, false)
		check("sns subject", snsSubject(subj), 100, false)
	})
}
