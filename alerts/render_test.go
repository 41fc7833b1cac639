package alerts

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sampleEvents() map[string]Event {
	marked := Event{
		Kind:     InstanceMarked,
		Severity: Info,
		Time:     t0,
		Service:  "web",
		Subject:  "i-0abc",
		AZ:       "us-east-1a",
		Summary:  "i-0abc failed 3 probes in a row; marked Unhealthy",
		Evidence: []string{
			"12:00:01 GET http://127.0.0.5:8080/healthz → connection refused",
			"12:00:03 GET http://127.0.0.5:8080/healthz → connection refused",
			"12:00:05 GET http://127.0.0.5:8080/healthz → HTTP 503 in 12ms",
		},
		Action:    "marked Unhealthy (SetInstanceHealth); the Auto Scaling group replaces it",
		State:     "5/6 healthy, endpoint passing",
		Labels:    map[string]string{"reason": "probe_failures"},
		RequestID: "c-42",
	}
	notRecovered := marked
	notRecovered.Kind, notRecovered.Severity = ReplacementNotRecovered, Critical
	notRecovered.Summary = "i-0abc was replaced but the newcomer i-0def is not healthy after 10m"
	notRecovered.NeedsAction = true
	notRecovered.Ask = "why i-0def fails its health check (evidence above)"
	notRecovered.Evidence = []string{"i-0def: 12:11:00 GET /healthz → HTTP 500 <script>alert(1)</script>"}

	g := newGate(time.Minute, 10*time.Minute, 2)
	for _, s := range []string{"i-1", "i-2", "i-3", "i-4"} {
		e := ev(InstanceMarked, "web", s)
		e.AZ, e.Action, e.State = "us-east-1b", "marked Unhealthy", "8/12 healthy, endpoint passing"
		g.admit(e, t0)
	}
	digest := g.due(t0.Add(10 * time.Minute))[0]

	return map[string]Event{"marked": marked, "not-recovered": notRecovered, "digest": digest}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "render", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	const runbook = "https://runbooks.example/medic.md"
	for name, e := range sampleEvents() {
		t.Run(name, func(t *testing.T) {
			subject, body := RenderText(e, runbook)
			golden(t, name+".txt", subject+"\n\n"+body)

			slack, _ := json.MarshalIndent(RenderSlack(e, runbook), "", "  ")
			golden(t, name+".slack.json", string(slack)+"\n")

			hook, _ := json.MarshalIndent(RenderWebhook(e, runbook), "", "  ")
			golden(t, name+".webhook.json", string(hook)+"\n")

			am, _ := json.MarshalIndent(alertmanagerAlert{
				Labels: alertLabels(e, e.Kind), Annotations: alertAnnotations(e, runbook), StartsAt: e.Time,
			}, "", "  ")
			golden(t, name+".alertmanager.json", string(am)+"\n")
		})
	}
}

// Every message answers the five questions.
func TestRenderSaysWhatHappenedAndWhetherToAct(t *testing.T) {
	for name, e := range sampleEvents() {
		_, body := RenderText(e, "")
		for _, want := range []string{"What happened: ", "Evidence:", "What medic did: ", "Service state: "} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: text lacks %q", name, want)
			}
		}
		verdict := "No action needed."
		if e.NeedsAction {
			verdict = "A person should look: "
		}
		for format, msg := range map[string]string{"text": body, "slack": RenderSlack(e, "").Text} {
			if !strings.Contains(msg, verdict) {
				t.Errorf("%s %s: lacks %q", name, format, verdict)
			}
			for _, ev := range e.Evidence {
				if format == "text" && !strings.Contains(msg, plain(data(ev))) {
					t.Errorf("%s %s: lacks evidence %q", name, format, ev)
				}
			}
		}
	}
}

func TestRenderEscapesSlackMarkup(t *testing.T) {
	e := sampleEvents()["not-recovered"]
	e.Service = "<!channel> web & co"
	text := RenderSlack(e, "").Text
	if strings.Contains(text, "<!channel>") || strings.Contains(text, "<script>") {
		t.Errorf("markup not escaped:\n%s", text)
	}
	if !strings.Contains(text, "&lt;!channel&gt; web &amp; co") {
		t.Errorf("escaped name missing:\n%s", text)
	}
}

func TestRenderRedactsSecrets(t *testing.T) {
	e := Event{
		Kind: AWSAPITrouble, Service: "web", Summary: "POST https://medic:hunter2@hooks.example/x failed",
		Evidence: []string{
			"GET https://api.example/v1?token=s3cr3t&page=2",
			"header Authorization: Bearer abcdefghijkl",
			"https://bucket.s3.amazonaws.com/k?X-Amz-Signature=deadbeef",
		},
		Labels: map[string]string{"url": "http://u:pw@h/"},
	}
	_, body := RenderText(e, "")
	hook, _ := json.Marshal(RenderWebhook(e, ""))
	am, _ := json.Marshal(alertmanagerAlert{Labels: alertLabels(e, e.Kind), Annotations: alertAnnotations(e, "")})
	for format, msg := range map[string]string{
		"title": Title(e), "text": body, "slack": RenderSlack(e, "").Text, "webhook": string(hook), "alertmanager": string(am),
	} {
		for _, secret := range []string{"hunter2", "s3cr3t", "abcdefghijkl", "deadbeef", ":pw@"} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s shows secret %q:\n%s", format, secret, msg)
			}
		}
		if format == "text" && !strings.Contains(msg, "page=2") {
			t.Errorf("redaction took too much:\n%s", msg)
		}
	}
}

func TestSNSSubject(t *testing.T) {
	long := strings.Repeat("x", 150)
	for _, tc := range []struct{ desc, in, want string }{
		{"plain", "medic · web · ok", "medic - web - ok"},
		{"non-ASCII and newline", "é\nx", "? x"},
		{"exactly 100", long[:100], long[:100]},
		{"101 is cut", long[:101], long[:97] + "..."},
	} {
		if got := snsSubject(tc.in); got != tc.want {
			t.Errorf("%s: snsSubject = %q, want %q", tc.desc, got, tc.want)
		}
	}
}
