package statuspage

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/medic-sre/medic/healer"
)

// maxEvents is how many distinct recent events the page keeps per service.
const maxEvents = 50

// kindRefused is the Kind of a guard refusal; actions have their
// healer.ActionResult as Kind.
const kindRefused = "refused"

// event is one distinct action or refusal seen in a Report.
type event struct {
	// First and Last are when the page first and last saw it. A refusal
	// that lasts many cycles is one event whose Last moves on.
	First, Last time.Time
	// Kind is the action's result ("marked", "dry_run", "failed", …) or
	// "refused".
	Kind string
	// Reason is the refusal reason (max_unhealthy, rate_limit, …); empty
	// for actions.
	Reason    string
	Instances []string
	Detail    string
	RequestID string
}

// ring keeps the last max distinct events, oldest first. Distinct means:
// an action per (cycle, instance); a refusal per (reason, detail,
// instances), so the same refusal repeated every cycle is one event.
type ring struct {
	max   int
	items []*event
	byKey map[string]*event
	keys  map[*event]string
}

func newRing(max int) *ring {
	return &ring{max: max, byKey: map[string]*event{}, keys: map[*event]string{}}
}

// observe records rep's outcomes and refusals, seen at time at.
func (r *ring) observe(rep healer.Report, at time.Time) {
	ids := make([]string, 0, len(rep.Outcomes))
	for id := range rep.Outcomes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o := rep.Outcomes[id]
		r.add("o\x00"+rep.RequestID+"\x00"+id, event{
			Kind:      string(o.Result),
			Instances: []string{id},
			Detail:    outcomeDetail(o),
			RequestID: rep.RequestID,
		}, at)
	}
	for _, rf := range rep.Decision.Refusals {
		h := fnv.New64a()
		for _, id := range rf.Instances {
			h.Write([]byte(id))
			h.Write([]byte{0})
		}
		key := fmt.Sprintf("r\x00%s\x00%s\x00%x", rf.Reason, rf.Detail, h.Sum64())
		r.add(key, event{
			Kind:      kindRefused,
			Reason:    string(rf.Reason),
			Instances: rf.Instances,
			Detail:    rf.Detail,
			RequestID: rep.RequestID,
		}, at)
	}
}

func (r *ring) add(key string, ev event, at time.Time) {
	if old, ok := r.byKey[key]; ok {
		if at.After(old.Last) {
			old.Last = at
		}
		return
	}
	ev.First, ev.Last = at, at
	e := &ev
	r.byKey[key] = e
	r.keys[e] = key
	r.items = append(r.items, e)
	if len(r.items) > r.max {
		gone := r.items[0]
		delete(r.byKey, r.keys[gone])
		delete(r.keys, gone)
		r.items[0] = nil
		r.items = r.items[1:]
	}
}

// newestFirst returns copies of the events, the most recently first seen first.
func (r *ring) newestFirst() []event {
	out := make([]event, 0, len(r.items))
	for i := len(r.items) - 1; i >= 0; i-- {
		out = append(out, *r.items[i])
	}
	return out
}

// outcomeDetail says in words what came of one marking.
func outcomeDetail(o healer.Outcome) string {
	switch o.Result {
	case healer.ResultMarked:
		return fmt.Sprintf("marked Unhealthy; its group replaces it (%s)", plural(o.Attempts, "call"))
	case healer.ResultDryRun:
		return "dry run: would have marked it Unhealthy"
	case healer.ResultAlreadyUnhealthy:
		return "its group already reports it Unhealthy: nothing to do"
	case healer.ResultGone:
		return "the instance is gone or left its group: nothing to do"
	case healer.ResultFailed:
		if o.Err != nil {
			return fmt.Sprintf("marking failed after %s: %v", plural(o.Attempts, "call"), o.Err)
		}
		return fmt.Sprintf("marking failed after %s", plural(o.Attempts, "call"))
	}
	return string(o.Result)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
