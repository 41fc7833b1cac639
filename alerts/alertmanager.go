package alerts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/medic-sre/medic/config"
)

// maxActiveAlerts bounds the alerts an Alertmanager sink keeps re-posting;
// past it the one with the oldest event is let go (Alertmanager resolves
// it at its endsAt).
const maxActiveAlerts = 10000

// alertmanagerSink posts events to Alertmanager's v2 API as alerts.
//
// An event fires the alert of its condition (Kind, Service, Subject); an
// event with Resolved set, or of a kind that Ends other kinds, resolves
// the alerts of those conditions by posting them with endsAt = now and the
// labels they fired with. Active alerts carry endsAt = now + 4 resend
// intervals and are re-posted every resend interval, so Alertmanager keeps
// them firing while medic runs and resolves them on its own if medic
// stops. An alert with no fresh event for the TTL is no longer re-posted.
//
// Every alert goes to each Alertmanager of the list (a cluster's replicas
// deduplicate), as Prometheus sends to each; a post counts as delivered
// when at least one took it, and the others catch up at the next resend.
type alertmanagerSink struct {
	name  string
	urls  []string // .../api/v2/alerts; secret when it came from a file or env
	token string
	// generatorURL links each alert to medic's status page; may be empty.
	generatorURL string
	runbook      string
	resend       time.Duration
	ttl          time.Duration
	client       *http.Client
	now          func() time.Time
	// leads reports whether this replica leads; nil: always (Options.Leads).
	leads func() bool

	mu     sync.Mutex
	active map[string]*activeAlert
}

type activeAlert struct {
	kind      Kind
	alert     alertmanagerAlert
	lastEvent time.Time
}

func newAlertmanagerSink(sc config.NotificationSink, bases []string, token string, client *http.Client, now func() time.Time) *alertmanagerSink {
	urls := make([]string, len(bases))
	for i, b := range bases {
		urls[i] = strings.TrimSuffix(b, "/") + "/api/v2/alerts"
	}
	return &alertmanagerSink{
		name:    sc.Name,
		urls:    urls,
		token:   token,
		runbook: sc.RunbookURL,
		resend:  sc.ResendInterval.D(),
		ttl:     sc.AlertTTL.D(),
		client:  client,
		now:     now,
		active:  map[string]*activeAlert{},
	}
}

// RuleOwned maps the event kinds whose alert in Alertmanager comes from
// medic's Prometheus rules (alerts/rules) to those rules' alertnames. The
// rules watch the metrics that report the same condition, so the
// Alertmanager sink leaves these kinds out and every alertname has one
// source; the other sinks still get the events. Every other kind arrives
// as AlertName(kind), which no rule uses (TestOneSourcePerAlertName).
var RuleOwned = map[Kind][]string{
	QuotaNearLimit:          {"MedicQuotaHeadroomLow", "MedicScaleOutNotFeasible"},
	QuotaExhaustionForecast: {"MedicQuotaExhaustionForecast"},
	PrewarmNeeded:           {"MedicPrewarmNeeded"},
	PrewarmApplied:          {"MedicPrewarmNeeded"}, // ends PrewarmNeeded
}

// Sends reports whether the sink posts events of kind k: not those a rule
// owns (RuleOwned).
func (s *alertmanagerSink) Sends(k Kind) bool {
	_, owned := RuleOwned[k]
	return !owned
}

func (s *alertmanagerSink) Name() string                  { return s.name }
func (s *alertmanagerSink) EachEvent() bool               { return true }
func (s *alertmanagerSink) ResendInterval() time.Duration { return s.resend }

// adopt takes over the active alerts of the sink it replaces on reload.
func (s *alertmanagerSink) adopt(old *alertmanagerSink) {
	old.mu.Lock()
	defer old.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, a := range old.active {
		s.active[k] = a
	}
}

func conditionKey(k Kind, service, subject string) string {
	return string(k) + "\x00" + service + "\x00" + subject
}

// Send fires or resolves the alerts e concerns, in one POST.
func (s *alertmanagerSink) Send(ctx context.Context, e Event) error {
	now := s.now()
	var post []alertmanagerAlert

	s.mu.Lock()
	ends := e.Kind.Ends()
	if e.Resolved {
		ends = []Kind{e.Kind}
	}
	for _, k := range ends {
		key := conditionKey(k, e.Service, e.Subject)
		a, ok := s.active[key]
		if ok {
			delete(s.active, key)
			r := a.alert
			r.EndsAt = now
			r.Annotations = alertAnnotations(e, s.runbook)
			post = append(post, r)
			continue
		}
		// Not known here (medic restarted?): resolve what the labels would
		// have been. If they differ, Alertmanager resolves the old alert
		// at its endsAt anyway.
		started := e.Time
		if started.IsZero() || started.After(now) {
			started = now
		}
		post = append(post, alertmanagerAlert{
			Labels:      alertLabels(e, k),
			Annotations: alertAnnotations(e, s.runbook),
			StartsAt:    started,
			EndsAt:      now,
		})
	}
	if !e.Resolved && len(e.Kind.Ends()) == 0 {
		key := conditionKey(e.Kind, e.Service, e.Subject)
		a := alertmanagerAlert{
			Labels:      alertLabels(e, e.Kind),
			Annotations: alertAnnotations(e, s.runbook),
			StartsAt:    e.Time,
			EndsAt:      now.Add(4 * s.resend),
		}
		if a.StartsAt.IsZero() || a.StartsAt.After(now) {
			a.StartsAt = now
		}
		if old, ok := s.active[key]; ok {
			a.StartsAt = old.alert.StartsAt
		}
		s.active[key] = &activeAlert{kind: e.Kind, alert: a, lastEvent: now}
		s.evictLocked()
		post = append(post, a)
	}
	s.mu.Unlock()

	return s.post(ctx, post)
}

// post sends alerts to every Alertmanager at once. It fails when none
// took them (permanently when every refusal was permanent); when only some
// did, it returns a *partialError, which counts as delivered.
func (s *alertmanagerSink) post(ctx context.Context, alerts []alertmanagerAlert) error {
	if len(alerts) == 0 {
		return nil
	}
	for i := range alerts {
		alerts[i].GeneratorURL = s.generatorURL
	}
	errs := make([]error, len(s.urls))
	var wg sync.WaitGroup
	for i, u := range s.urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = postJSON(ctx, s.client, u, s.token, alerts)
		}()
	}
	wg.Wait()
	var failed []string
	permanent := true
	for i, err := range errs {
		if err == nil {
			continue
		}
		var pe *backoff.PermanentError
		if !errors.As(err, &pe) {
			permanent = false
		}
		// The index, not the URL: a URL from a file may be a secret.
		failed = append(failed, fmt.Sprintf("alertmanager %d of %d: %v", i+1, len(s.urls), err))
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(failed) < len(s.urls):
		return &partialError{msg: strings.Join(failed, "; ")}
	case permanent:
		return backoff.Permanent(errors.New(strings.Join(failed, "; ")))
	}
	return errors.New(strings.Join(failed, "; "))
}

// partialError is a delivery that some destinations took and others did
// not: it counts as sent, and the failures are logged.
type partialError struct{ msg string }

func (e *partialError) Error() string { return "delivered, but " + e.msg }

// evictLocked lets go of the alerts with the oldest events past the bound.
func (s *alertmanagerSink) evictLocked() {
	for len(s.active) > maxActiveAlerts {
		var oldest string
		var t time.Time
		for k, a := range s.active {
			if oldest == "" || a.lastEvent.Before(t) {
				oldest, t = k, a.lastEvent
			}
		}
		delete(s.active, oldest)
	}
}

// Resend re-posts every active alert with a fresh endsAt, forgetting those
// whose last event is older than the TTL. A standby re-posts none of a kind
// only the leader tells: it keeps them, to go on re-posting if it leads
// again before a new event, and Alertmanager ends them at their endsAt
// unless the leader tells them (it does, with the same labels, while the
// condition holds).
func (s *alertmanagerSink) Resend(ctx context.Context) error {
	now := s.now()
	standby := s.leads != nil && !s.leads()
	s.mu.Lock()
	keys := make([]string, 0, len(s.active))
	for k, a := range s.active {
		if now.Sub(a.lastEvent) >= s.ttl {
			delete(s.active, k)
			continue
		}
		if standby && a.kind.ToldByLeader() {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	post := make([]alertmanagerAlert, 0, len(keys))
	for _, k := range keys {
		a := s.active[k]
		a.alert.EndsAt = now.Add(4 * s.resend)
		post = append(post, a.alert)
	}
	s.mu.Unlock()
	return s.post(ctx, post)
}

// activeCount is the number of alerts being kept alive.
func (s *alertmanagerSink) activeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}
