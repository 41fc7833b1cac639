package alerts

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What medic repeats from a probed instance or from AWS (a probe's
// reason, a name, an error) is data, never markup: every sink escapes it
// for its own format, and every field is bounded. The renderers take the
// event through data (bound, redact, one line), then through their
// format's escaper.

// Bounds of what one message repeats.
const (
	// maxFieldRunes bounds one field: a summary, an evidence line, the
	// action, the state, a label value.
	maxFieldRunes = 1024
	// maxEvidence bounds the evidence lines of one message; the rest are
	// counted.
	maxEvidence = 50
	// maxLabels bounds the extra labels of one event.
	maxLabels = 32
	// maxLabelRunes bounds an Alertmanager label value.
	maxLabelRunes = 256
	// maxMessageRunes bounds a whole chat message (Slack shows 4,000
	// characters before folding, Mattermost takes 16,383).
	maxMessageRunes = 12000
	// maxAnnotationRunes bounds one Alertmanager annotation;
	// maxDescriptionRunes the description (the whole message).
	maxAnnotationRunes  = 4096
	maxDescriptionRunes = 16384
	// maxTextRunes bounds a plain-text message (SNS, the webhook's text).
	maxTextRunes = 65536
)

// zwsp is the zero-width space put inside a mention or a link so that no
// chat application recognises it, while people read the same text.
const zwsp = "\u200b"

// clip returns s cut to at most n runes, marked with "…" when cut; invalid
// UTF-8 becomes U+FFFD.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// oneLine makes s a single line of visible text: line breaks and tabs
// become spaces (a field cannot forge a line of the message), and other
// control characters, bidirectional overrides (which can make text read
// differently from what it is) and line/paragraph separators are dropped.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == '\u2028' || r == '\u2029':
			return ' '
		case unicode.IsControl(r), isBidiControl(r), r == '\uFEFF':
			return -1
		}
		return r
	}, s)
}

func isBidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069') || r == '\u200E' || r == '\u200F' || r == '\u061C'
}

// data is the first step of every field, whatever the format: secrets
// masked, one line, bounded.
func data(s string) string {
	return clip(oneLine(redact(s)), maxFieldRunes)
}

// defuse breaks the syntax of mentions and Markdown links that chat
// applications act on: "@name" (Mattermost's and Rocket.Chat's @channel,
// @here, @all, @everyone and user mentions) and "[text](url)" / "[ref]:"
// links get a zero-width space after "@" and after "]".
func defuse(s string) string {
	if !strings.ContainsAny(s, "@]") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		b.WriteByte(c)
		if i+1 == len(s) {
			// What the format puts after the field ("_" closing italics)
			// must not complete a mention or a link either.
			if c == '@' || c == ']' {
				b.WriteString(zwsp)
			}
			break
		}
		next := s[i+1]
		switch {
		case c == '@' && isWordByte(next):
			b.WriteString(zwsp)
		case c == ']' && (next == '(' || next == ':' || next == '['):
			b.WriteString(zwsp)
		}
	}
	return b.String()
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// mrkdwnEscaper escapes Slack's three control characters; Slack,
// Mattermost and Rocket.Chat decode them back.
var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// mrkdwn escapes a field for Slack mrkdwn (read by Mattermost and
// Rocket.Chat too): no <!channel>, <@U…>, <url|text>, @here, [text](url).
func mrkdwn(s string) string { return defuse(mrkdwnEscaper.Replace(s)) }

// plainEscaper replaces the angle brackets of text that other tools may
// render as markup (Alertmanager's templates put annotations into Slack
// unescaped; SNS e-mail and chat bots): "<!channel>", "<url|text>" and
// HTML tags become inert look-alikes.
var plainEscaper = strings.NewReplacer("<", "‹", ">", "›")

// plain makes a field inert in any destination: angle brackets replaced,
// mentions and Markdown links broken.
func plain(s string) string { return defuse(plainEscaper.Replace(s)) }

// slackURL makes a trusted URL (the configured runbook) safe inside
// Slack's <url|text>.
func slackURL(u string) string {
	return strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E", " ", "%20").Replace(u)
}

// escaped returns a copy of e whose free-text fields, the ones that may
// hold what an instance or AWS said, went through data and then esc: the
// summary, evidence (at most maxEvidence lines, the rest counted), action,
// state, ask, subject, AZ, service, request id, extra labels (at most
// maxLabels) and a digest's subjects. The kind and severity are medic's own.
func (e Event) escaped(esc func(string) string) Event {
	f := func(s string) string { return esc(data(s)) }
	out := e
	out.Summary, out.Action, out.State, out.Ask = f(e.Summary), f(e.Action), f(e.State), f(e.Ask)
	out.Subject, out.AZ, out.Service, out.RequestID = f(e.Subject), f(e.AZ), f(e.Service), f(e.RequestID)
	out.Evidence = boundedList(e.Evidence, maxEvidence, f, "evidence lines")
	if len(e.Labels) > 0 {
		out.Labels = make(map[string]string, min(len(e.Labels), maxLabels))
		for _, k := range sortedKeys(e.Labels) {
			if len(out.Labels) == maxLabels {
				break
			}
			out.Labels[f(k)] = f(e.Labels[k])
		}
	}
	if d := e.Digest; d != nil {
		dd := *d
		dd.Subjects = boundedList(d.Subjects, MaxDigestSubjects, f, "subjects")
		out.Digest = &dd
	}
	return out
}

// boundedList maps f over at most n items of l, then says how many more
// there were.
func boundedList(l []string, n int, f func(string) string, what string) []string {
	if l == nil {
		return nil
	}
	out := make([]string, 0, min(len(l), n+1))
	for i, s := range l {
		if i == n {
			out = append(out, "… and "+strconv.Itoa(len(l)-n)+" more "+what)
			break
		}
		out = append(out, f(s))
	}
	return out
}
