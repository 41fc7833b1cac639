package alerts

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Every message answers the same five questions, in this order: what
// happened, the evidence, what medic did, the service's state, and whether
// a person needs to act. One function per format builds it from the Event.

const noActionNeeded = "No action needed."

// Title is the one-line headline of e as plain text: "medic · web ·
// i-0abc marked Unhealthy", prefixed when the condition is resolved or
// needs a person.
func Title(e Event) string { return title(e.escaped(plain)) }

// title builds the headline of an event whose fields are escaped already.
func title(e Event) string {
	var b strings.Builder
	switch {
	case e.NeedsAction:
		b.WriteString("ACTION NEEDED: ")
	case e.Resolved:
		b.WriteString("RESOLVED: ")
	}
	b.WriteString("medic")
	if e.Service != "" {
		b.WriteString(" · " + e.Service)
	}
	b.WriteString(" · " + summaryOf(e))
	return b.String()
}

// RenderText renders e as plain text (SNS, e-mail, Alertmanager's
// description): a subject line and a body, bounded. Every field is one
// line of inert text (see plain); secrets in URLs are masked.
func RenderText(e Event, runbookURL string) (subject, body string) {
	e = e.escaped(plain)
	var b strings.Builder
	fmt.Fprintf(&b, "What happened: %s\n", summaryOf(e))
	if len(e.Evidence) == 0 {
		b.WriteString("Evidence: none recorded\n")
	} else {
		b.WriteString("Evidence:\n")
		for _, ev := range e.Evidence {
			fmt.Fprintf(&b, "  - %s\n", ev)
		}
	}
	fmt.Fprintf(&b, "What medic did: %s\n", actionOf(e))
	fmt.Fprintf(&b, "Service state: %s\n", stateOf(e))
	b.WriteString(verdictLine(e) + "\n")
	b.WriteString("\n" + footer(e) + "\n")
	if u := runbookLink(runbookURL, e.Kind); u != "" {
		fmt.Fprintf(&b, "Runbook: %s\n", u)
	}
	return clip(title(e), maxFieldRunes), clip(b.String(), maxTextRunes)
}

// SlackMessage is a Slack-compatible incoming-webhook payload (Slack,
// Mattermost and Rocket.Chat read "text" as mrkdwn).
type SlackMessage struct {
	Text string `json:"text"`
}

// RenderSlack renders e as Slack mrkdwn, bounded. Every field is escaped
// (see mrkdwn): what an instance or AWS said cannot mention anyone, link
// anywhere or restyle the message beyond its own field.
func RenderSlack(e Event, runbookURL string) SlackMessage {
	e = e.escaped(mrkdwn)
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*\n", title(e))
	fmt.Fprintf(&b, "*What happened:* %s\n", summaryOf(e))
	if len(e.Evidence) == 0 {
		b.WriteString("*Evidence:* none recorded\n")
	} else {
		b.WriteString("*Evidence:*\n")
		for _, ev := range e.Evidence {
			fmt.Fprintf(&b, "• %s\n", ev)
		}
	}
	fmt.Fprintf(&b, "*What medic did:* %s\n", actionOf(e))
	fmt.Fprintf(&b, "*Service state:* %s\n", stateOf(e))
	if e.NeedsAction {
		fmt.Fprintf(&b, "*%s*\n", verdictLine(e))
	} else {
		fmt.Fprintf(&b, "_%s_\n", noActionNeeded)
	}
	fmt.Fprintf(&b, "_%s_", footer(e))
	text := clip(b.String(), maxMessageRunes)
	if u := runbookLink(runbookURL, e.Kind); u != "" {
		text += "\n<" + slackURL(u) + "|Runbook>"
	}
	return SlackMessage{Text: text}
}

// WebhookPayload is the generic webhook's JSON: the event's fields, plus
// the rendered title and text for receivers that just display them.
type WebhookPayload struct {
	Version     string            `json:"version"`
	Kind        Kind              `json:"kind"`
	Severity    Severity          `json:"severity"`
	Time        time.Time         `json:"time"`
	Service     string            `json:"service"`
	Subject     string            `json:"subject,omitempty"`
	AZ          string            `json:"az,omitempty"`
	Summary     string            `json:"summary"`
	Evidence    []string          `json:"evidence"`
	Action      string            `json:"action"`
	State       string            `json:"state"`
	NeedsAction bool              `json:"needs_action"`
	Ask         string            `json:"ask,omitempty"`
	Resolved    bool              `json:"resolved"`
	Labels      map[string]string `json:"labels,omitempty"`
	RequestID   string            `json:"request_id,omitempty"`
	Digest      *WebhookDigest    `json:"digest,omitempty"`
	RunbookURL  string            `json:"runbook_url,omitempty"`
	Title       string            `json:"title"`
	Text        string            `json:"text"`
}

type WebhookDigest struct {
	Count        int       `json:"count"`
	Individually int       `json:"individually"`
	Subjects     []string  `json:"subjects"`
	Omitted      int       `json:"omitted"`
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until"`
}

// RenderWebhook renders e as the generic webhook's JSON document. Its
// fields are data (JSON-encoded, secrets masked, one line each, bounded);
// title and text are the plain-text rendering, for receivers that just
// display them.
func RenderWebhook(e Event, runbookURL string) WebhookPayload {
	title, text := RenderText(e, runbookURL)
	d := e.escaped(func(s string) string { return s })
	p := WebhookPayload{
		Version:     "1",
		Kind:        e.Kind,
		Severity:    severityOf(e),
		Time:        e.Time.UTC(),
		Service:     d.Service,
		Subject:     d.Subject,
		AZ:          d.AZ,
		Summary:     summaryOf(d),
		Evidence:    d.Evidence,
		Action:      actionOf(d),
		State:       stateOf(d),
		NeedsAction: e.NeedsAction,
		Ask:         d.Ask,
		Resolved:    e.Resolved,
		Labels:      d.Labels,
		RequestID:   d.RequestID,
		RunbookURL:  runbookLink(runbookURL, e.Kind),
		Title:       title,
		Text:        text,
	}
	if p.Evidence == nil {
		p.Evidence = []string{}
	}
	if dg := d.Digest; dg != nil {
		p.Digest = &WebhookDigest{
			Count: dg.Count, Individually: dg.Individually, Subjects: dg.Subjects,
			Omitted: dg.Omitted, Since: dg.Since.UTC(), Until: dg.Until.UTC(),
		}
	}
	return p
}

// alertmanagerAlert is one element of Alertmanager's POST /api/v2/alerts.
type alertmanagerAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertName is the Alertmanager alertname of a kind: instance_marked →
// MedicInstanceMarked.
func AlertName(k Kind) string {
	var b strings.Builder
	b.WriteString("Medic")
	for _, part := range strings.Split(string(k), "_") {
		switch part {
		case "":
			continue
		case "aws", "api":
			b.WriteString(strings.ToUpper(part))
		default:
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// alertLabels are the identity of the alert for e's condition (kind k):
// e's extra labels, then alertname, source="medic", service, severity,
// subject and az. Values are plain text (see plain), each bounded.
func alertLabels(e Event, k Kind) map[string]string {
	p := e.escaped(plain)
	l := make(map[string]string, len(p.Labels)+6)
	for name, v := range p.Labels {
		if labelNameRE.MatchString(name) && !strings.HasPrefix(name, "__") && v != "" {
			l[name] = clip(v, maxLabelRunes)
		}
	}
	l["alertname"] = AlertName(k)
	l["source"] = "medic"
	l["severity"] = string(severityOf(e))
	set := func(name, v string) {
		if v != "" {
			l[name] = clip(v, maxLabelRunes)
		} else {
			delete(l, name)
		}
	}
	set("service", p.Service)
	set("subject", p.Subject)
	set("az", p.AZ)
	return l
}

// alertAnnotations are the human side of the alert: plain text (see
// plain), each bounded, since Alertmanager's templates pass them on to
// chat and e-mail as they are.
func alertAnnotations(e Event, runbookURL string) map[string]string {
	_, text := RenderText(e, "")
	p := e.escaped(plain)
	a := map[string]string{
		"summary":     clip(title(p), maxAnnotationRunes),
		"description": clip(text, maxDescriptionRunes),
		"evidence":    clip(strings.Join(p.Evidence, "\n"), maxAnnotationRunes),
		"action":      clip(actionOf(p), maxAnnotationRunes),
		"state":       clip(stateOf(p), maxAnnotationRunes),
	}
	if u := runbookLink(runbookURL, e.Kind); u != "" {
		a["runbook_url"] = u
	}
	return a
}

func summaryOf(e Event) string {
	if e.Summary != "" {
		return e.Summary
	}
	s := string(e.Kind)
	if e.Subject != "" {
		s += " for " + e.Subject
	}
	return s
}

func actionOf(e Event) string {
	if e.Action == "" {
		return "nothing"
	}
	return e.Action
}

func stateOf(e Event) string {
	if e.State == "" {
		return "unknown"
	}
	return e.State
}

// severityOf is the one place an event's severity is decided, for every
// sink: what needs a person is critical whatever the event said, a missing
// severity is info, and an unknown one (not of the rules' set) counts as
// info too, so nothing leaves medic outside the vocabulary.
func severityOf(e Event) Severity {
	if e.NeedsAction {
		return Critical
	}
	if s, ok := ParseSeverity(string(e.Severity)); ok {
		return s
	}
	return Info
}

// verdictLine says whether a person needs to act.
func verdictLine(e Event) string {
	if !e.NeedsAction {
		return noActionNeeded
	}
	ask := e.Ask
	if ask == "" {
		ask = summaryOf(e)
	}
	return "A person should look: " + ask
}

// footer is the event's identity on one line.
func footer(e Event) string {
	parts := []string{}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+": "+v)
		}
	}
	add("service", e.Service)
	add("subject", e.Subject)
	add("az", e.AZ)
	add("kind", string(e.Kind))
	add("severity", string(severityOf(e)))
	if !e.Time.IsZero() {
		add("at", e.Time.UTC().Format(time.RFC3339))
	}
	for _, k := range sortedKeys(e.Labels) {
		add(k, e.Labels[k])
	}
	add("request", e.RequestID)
	return strings.Join(parts, " · ")
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// runbookLink is where a message of kind k points: base (docs/runbook.md
// as the sink's runbook_url serves it) at the heading "### Notification:
// <kind in words>", or base as it is when it already names an anchor.
func runbookLink(base string, k Kind) string {
	if base == "" {
		return ""
	}
	if strings.Contains(base, "#") {
		return base
	}
	return base + "#" + runbookAnchor(k)
}

// runbookAnchor is the GitHub anchor of k's section in docs/runbook.md.
func runbookAnchor(k Kind) string {
	return "notification-" + strings.ReplaceAll(string(k), "_", "-")
}

// Secrets that could reach a message through evidence or names: the user
// info of a URL, and token-like query parameters.
var (
	userinfoRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@`)
	tokenRE    = regexp.MustCompile(`(?i)([?&](?:access_token|token|key|api_key|apikey|secret|password|passwd|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s#]+`)
	bearerRE   = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}`)
)

// redact masks secrets in s.
func redact(s string) string {
	s = userinfoRE.ReplaceAllString(s, "${1}***@")
	s = tokenRE.ReplaceAllString(s, "${1}***")
	s = bearerRE.ReplaceAllString(s, "${1} ***")
	return s
}
