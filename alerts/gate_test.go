package alerts

import (
	"fmt"
	"github.com/medic-sre/medic/alerts/rules"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ev(k Kind, service, subject string) Event {
	return Event{Kind: k, Service: service, Subject: subject, Severity: Info, Summary: subject + " " + string(k)}
}

func resolved(e Event) Event { e.Resolved = true; return e }

// step is one moment in a gate scenario: an event arriving (want is its
// verdict), or, when ev is nil, a look at the due digests (digests are
// their summaries).
type step struct {
	at      time.Duration
	ev      *Event
	want    verdict
	digests []string
	flush   bool // flushAll instead of due
}

func at(d time.Duration, e Event, want verdict) step { return step{at: d, ev: &e, want: want} }
func dueAt(d time.Duration, summaries ...string) step {
	return step{at: d, digests: summaries}
}

// burst returns n events of one kind for web with subjects i-0…, all at d.
func burst(d time.Duration, n, from int, want func(i int) verdict) []step {
	var s []step
	for i := from; i < from+n; i++ {
		s = append(s, at(d, ev(InstanceMarked, "web", fmt.Sprintf("i-%d", i)), want(i)))
	}
	return s
}

func TestGate(t *testing.T) {
	const W = 10 * time.Minute
	marked := func(subj string) Event { return ev(InstanceMarked, "web", subj) }
	all := func(v verdict) func(int) verdict { return func(int) verdict { return v } }
	firstN := func(n int) func(int) verdict {
		return func(i int) verdict {
			if i < n {
				return deliver
			}
			return digested
		}
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	for _, tc := range []struct {
		desc      string
		threshold int
		steps     []step
	}{
		{
			desc: "identical event within the window is a duplicate; at the window's end it is not",
			steps: []step{
				at(0, marked("i-1"), deliver),
				at(W-time.Second, marked("i-1"), duplicate),
				at(W, marked("i-1"), deliver),
			},
		},
		{
			desc: "another subject, kind, service or resolved flag is not a duplicate",
			steps: []step{
				at(0, marked("i-1"), deliver),
				at(1, marked("i-2"), deliver),
				at(2, ev(MarkRefused, "web", "i-1"), deliver),
				at(3, ev(InstanceMarked, "api", "i-1"), deliver),
				at(4, resolved(marked("i-1")), deliver),
			},
		},
		{
			desc: "a condition that clears and comes back is reported again",
			steps: []step{
				at(0, ev(EndpointFailing, "web", ""), deliver),
				at(time.Minute, resolved(ev(EndpointFailing, "web", "")), deliver),
				at(2*time.Minute, ev(EndpointFailing, "web", ""), deliver),
				at(3*time.Minute, ev(EndpointFailing, "web", ""), duplicate),
			},
		},
		{
			desc: "a kind that ends another clears its duplicate state",
			steps: []step{
				at(0, marked("i-1"), deliver),
				at(time.Minute, ev(ReplacementRecovered, "web", "i-1"), deliver),
				at(2*time.Minute, marked("i-1"), deliver),
			},
		},
		{
			desc:      "exactly threshold events in a window: all sent, no digest",
			threshold: 3,
			steps: cat(
				burst(0, 3, 0, all(deliver)),
				[]step{dueAt(2 * W)},
			),
		},
		{
			desc:      "threshold+1 events open a digest, due one window after it opened",
			threshold: 3,
			steps: cat(
				burst(0, 3, 0, all(deliver)),
				[]step{
					at(time.Minute, marked("i-3"), digested),
					dueAt(W + time.Minute - time.Second),
					dueAt(W+time.Minute, "4 instances marked Unhealthy in web in the last 11 minutes (the first 3 were reported one by one)"),
				},
			),
		},
		{
			desc:      "events spread wider than the window are no flood (boundary: exactly one window apart)",
			threshold: 3,
			steps: []step{
				at(0, marked("i-0"), deliver),
				at(4*time.Minute, marked("i-1"), deliver),
				at(8*time.Minute, marked("i-2"), deliver),
				at(W, marked("i-3"), deliver), // i-0 is exactly one window old: out
				at(W+time.Second, marked("i-4"), digested),
			},
		},
		{
			desc:      "a flood that goes on gets one digest per window; a quiet window ends it",
			threshold: 2,
			steps: cat(
				burst(0, 5, 0, firstN(2)),
				[]step{
					at(W-time.Minute, marked("i-5"), digested),
					dueAt(W, "6 instances marked Unhealthy in web in the last 10 minutes (the first 2 were reported one by one)"),
					at(W+time.Minute, marked("i-6"), digested),
					dueAt(2*W, "1 instance marked Unhealthy in web in the last 10 minutes"),
					dueAt(3 * W),
					at(3*W, marked("i-7"), deliver),
				},
			),
		},
		{
			desc:      "floods are per kind and service",
			threshold: 1,
			steps: []step{
				at(0, marked("i-1"), deliver),
				at(0, ev(InstanceMarked, "api", "i-2"), deliver),
				at(0, ev(MarkRefused, "web", "i-3"), deliver),
				at(0, resolved(marked("i-4")), deliver),
				at(0, marked("i-5"), digested),
				dueAt(W, "2 instances marked Unhealthy in web in the last 10 minutes (the first was reported on its own)"),
			},
		},
		{
			desc:      "50 events in a burst: the threshold sent, one digest for all 50",
			threshold: 5,
			steps: cat(
				burst(0, 50, 0, firstN(5)),
				[]step{dueAt(W, "50 instances marked Unhealthy in web in the last 10 minutes (the first 5 were reported one by one)")},
			),
		},
		{
			desc:      "duplicates inside a flood are dropped, not digested",
			threshold: 1,
			steps: []step{
				at(0, marked("i-1"), deliver),
				at(0, marked("i-2"), digested),
				at(0, marked("i-2"), duplicate),
				dueAt(W, "2 instances marked Unhealthy in web in the last 10 minutes (the first was reported on its own)"),
			},
		},
		{
			desc:      "one instance: a threshold of 1 still sends the first",
			threshold: 1,
			steps: []step{
				at(0, marked("i-1"), deliver),
				dueAt(W),
			},
		},
		{
			desc:      "shutdown flushes an open digest before it is due",
			threshold: 1,
			steps: []step{
				at(0, marked("i-1"), deliver),
				at(0, marked("i-2"), digested),
				{at: time.Minute, flush: true, digests: []string{"2 instances marked Unhealthy in web in the last minute (the first was reported on its own)"}},
				dueAt(W),
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			th := tc.threshold
			if th == 0 {
				th = 100
			}
			g := newGate(W, W, th)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.ev != nil {
					if got := g.admit(*s.ev, now); got != s.want {
						t.Errorf("step %d (%s %s at %s): got %s, want %s", i, s.ev.Kind, s.ev.Subject, s.at, got, s.want)
					}
					continue
				}
				var got []Event
				if s.flush {
					got = g.flushAll(now)
				} else {
					got = g.due(now)
				}
				var sums []string
				for _, d := range got {
					sums = append(sums, d.Summary)
				}
				if !reflect.DeepEqual(sums, s.digests) {
					t.Errorf("step %d (digests at %s): got %q, want %q", i, s.at, sums, s.digests)
				}
			}
		})
	}
}

func TestGateDigestEvent(t *testing.T) {
	g := newGate(time.Minute, 10*time.Minute, 1)
	first := ev(ReplacementNotRecovered, "web", "i-0")
	first.Severity, first.AZ, first.Action, first.State = Warning, "us-east-1a", "marked Unhealthy", "5/6 healthy"
	g.admit(first, t0)
	for i := 1; i <= MaxDigestSubjects+10; i++ {
		e := ev(ReplacementNotRecovered, "web", fmt.Sprintf("i-%d", i))
		e.Action, e.State, e.RequestID = "marked Unhealthy", "4/6 healthy", "r-9"
		if i == 7 {
			e.Severity, e.NeedsAction, e.Ask = Action, true, "why does i-7 not start?"
		}
		if v := g.admit(e, t0.Add(time.Second)); v != digested {
			t.Fatalf("event %d: %s", i, v)
		}
	}
	ds := g.due(t0.Add(10*time.Minute + time.Second))
	if len(ds) != 1 {
		t.Fatalf("got %d digests, want 1", len(ds))
	}
	d := ds[0]
	if d.Digest == nil || d.Digest.Count != MaxDigestSubjects+11 || d.Digest.Individually != 1 ||
		len(d.Digest.Subjects) != MaxDigestSubjects || d.Digest.Omitted != 11 {
		t.Fatalf("digest = %+v", d.Digest)
	}
	if d.Severity != Action || !d.NeedsAction || d.Ask != "why does i-7 not start?" {
		t.Errorf("severity %s, needs action %v, ask %q: want the most severe and its ask", d.Severity, d.NeedsAction, d.Ask)
	}
	if d.State != "4/6 healthy" || d.Action != "marked Unhealthy" || d.RequestID != "r-9" {
		t.Errorf("state %q, action %q, request %q: want the latest", d.State, d.Action, d.RequestID)
	}
	if d.Evidence[0] != "i-0 (us-east-1a): i-0 replacement_not_recovered" || d.Evidence[len(d.Evidence)-1] != "… and 11 more" {
		t.Errorf("evidence = %q … %q", d.Evidence[0], d.Evidence[len(d.Evidence)-1])
	}
	if d.Subject != "" || d.Service != "web" || d.Kind != ReplacementNotRecovered {
		t.Errorf("identity = %s/%s/%q", d.Kind, d.Service, d.Subject)
	}
}

func TestAlertName(t *testing.T) {
	for k, want := range map[Kind]string{
		InstanceMarked:          "MedicInstanceMarked",
		AWSAPITrouble:           "MedicAWSAPITrouble",
		ReplacementNotRecovered: "MedicReplacementNotRecovered",
	} {
		if got := AlertName(k); got != want {
			t.Errorf("AlertName(%s) = %s, want %s", k, got, want)
		}
	}
}

// TestOneSourcePerAlertName: an alertname comes either from medic's
// Alertmanager sink (AlertName of a kind) or from a Prometheus rule, never
// both; the rules that own a kind exist.
func TestOneSourcePerAlertName(t *testing.T) {
	ruleAlerts := map[string]bool{}
	for _, a := range rules.Default().Alerts() {
		ruleAlerts[a] = true
	}
	s := &alertmanagerSink{}
	for _, k := range allKinds {
		name := AlertName(k)
		if s.Sends(k) && ruleAlerts[name] {
			t.Errorf("%s: the sink sends %s and a rule raises it too", k, name)
		}
		for _, owner := range RuleOwned[k] {
			if !ruleAlerts[owner] {
				t.Errorf("%s: owned by rule %s, which does not exist", k, owner)
			}
		}
	}
	if !s.Sends(ReplacementNotRecovered) || ruleAlerts[AlertName(ReplacementNotRecovered)] {
		t.Errorf("MedicReplacementNotRecovered must come from the sink only")
	}
}
