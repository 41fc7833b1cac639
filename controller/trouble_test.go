package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/healer"
)

// An AWS outage is told once when the fleet view goes stale (medic stops
// acting: three refreshes missed) and once when a refresh succeeds again —
// not on every failed refresh.
func TestAWSTroubleEvents(t *testing.T) {
	now := time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)
	disc := &seedDisc{}
	rec := &recorder{}
	c := New(Options{Config: seedConfig(t, "web"), Discoverer: disc, Notifier: rec,
		Actuator: healer.DryRun(log.NewNopLogger()), Now: func() time.Time { return now }})
	ctx := context.Background()
	kinds := func() string {
		var ks []string
		for _, e := range rec.take() {
			if e.Kind != alerts.AWSAPITrouble {
				continue
			}
			k := string(e.Severity)
			if e.Resolved {
				k += "/resolved"
			}
			ks = append(ks, k)
			if !e.Resolved && (len(e.Evidence) == 0 || !strings.Contains(e.Evidence[0], "aws down") || e.Action == "") {
				t.Errorf("trouble event lacks the error or what medic did: %+v", e)
			}
		}
		return strings.Join(ks, ",")
	}
	steps := []struct {
		desc  string
		after time.Duration // clock advance before the refresh
		down  bool
		want  string
	}{
		{desc: "first refresh works", want: ""},
		{desc: "one failure: still fresh", after: time.Second, down: true, want: ""},
		{desc: "failures up to 3 intervals: still fresh", after: 2 * time.Second, down: true, want: ""},
		{desc: "stale: trouble starts", after: 2 * time.Second, down: true, want: "warning"},
		{desc: "still failing: said once only", after: time.Second, down: true, want: ""},
		{desc: "recovered: resolved once", after: time.Second, want: "info/resolved"},
		{desc: "healthy again: nothing", after: time.Second, want: ""},
	}
	for _, st := range steps {
		now = now.Add(st.after)
		disc.mu.Lock()
		disc.down = st.down
		disc.mu.Unlock()
		c.refresh(ctx)
		if got := kinds(); got != st.want {
			t.Errorf("%s: events %q, want %q", st.desc, got, st.want)
		}
	}
}

// Never read since start is trouble from the first stale refresh.
func TestAWSTroubleFromStart(t *testing.T) {
	disc := &seedDisc{down: true}
	rec := &recorder{}
	c := New(Options{Config: seedConfig(t, "web"), Discoverer: disc, Notifier: rec,
		Actuator: healer.DryRun(log.NewNopLogger())})
	c.refresh(context.Background())
	evs := rec.take()
	if len(evs) != 1 || evs[0].Kind != alerts.AWSAPITrouble || !strings.Contains(evs[0].Summary, "never") {
		t.Errorf("events = %+v, want one AWS trouble event saying it never read the fleet", evs)
	}
}
