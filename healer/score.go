package healer

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/discovery"
)

// This file keeps a score for every detector: how many marks it made, after
// how many of them the service recovered and after how many it did not, and
// how long it took from the first failed probe to a serving replacement.
// A detector that marks often and rarely helps is one to tune.

// DetectorKind names what judged an instance bad. The values are the `detector`
// label of the score metrics.
type DetectorKind string

const (
	// DetectorConsecutiveFailures: unhealthy_after failed probes in a row.
	DetectorConsecutiveFailures DetectorKind = "consecutive_failures"
	// DetectorFailureRatio: too many failed probes in a window.
	DetectorFailureRatio DetectorKind = "failure_ratio"
	// DetectorLatencyOutlier: slower than its peers for degraded_for.
	DetectorLatencyOutlier DetectorKind = "latency_outlier"
)

// Detectors lists every DetectorKind.
var Detectors = []DetectorKind{DetectorConsecutiveFailures, DetectorFailureRatio, DetectorLatencyOutlier}

// MarkOutcome is how a mark ended. The values are the `outcome` label of
// medic_detector_mark_outcomes_total.
type MarkOutcome string

const (
	// Recovered: after the mark the service recovered (ServiceRecovered)
	// within the recovery deadline.
	Recovered MarkOutcome = "recovered"
	// NotRecovered: the deadline passed with the service not recovered.
	NotRecovered MarkOutcome = "not_recovered"
)

// DefaultRecoveryDeadline is how long after a mark the service has to
// recover for the mark to count as Recovered.
const DefaultRecoveryDeadline = 30 * time.Minute

// repairBuckets span 30 s to 2 h, in seconds.
var repairBuckets = []float64{30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200}

// Settled is one mark whose outcome is now known.
type Settled struct {
	Service, InstanceID string
	Detector            DetectorKind
	Outcome             MarkOutcome
	FirstFailure        time.Time
	MarkedAt            time.Time
	// Repair is from the first failed probe to the cycle that found the
	// service recovered; zero when NotRecovered.
	Repair time.Duration
}

// DetectorScore is one detector's record for one service.
type DetectorScore struct {
	Detector                       DetectorKind
	Marks, Recovered, NotRecovered int
	// Pending marks await their outcome.
	Pending int
}

type pendingMark struct {
	detector     DetectorKind
	firstFailure time.Time
	markedAt     time.Time
}

// Scorer keeps the scores of every service. Safe for concurrent use.
type Scorer struct {
	deadline time.Duration

	marks    *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	repair   *prometheus.HistogramVec

	mu      sync.Mutex
	pending map[string]map[string]pendingMark // service → instance → mark
	scores  map[string]map[DetectorKind]*DetectorScore
}

// NewScorer returns a Scorer whose marks count as NotRecovered when the
// service has not recovered deadline after them (0 means
// DefaultRecoveryDeadline), with its metrics registered on r (nil registers
// nothing):
//
//	medic_detector_marks_total{service,detector}
//	medic_detector_mark_outcomes_total{service,detector,outcome}
//	medic_repair_duration_seconds{service,detector} (first failed probe to a serving replacement)
func NewScorer(r prometheus.Registerer, deadline time.Duration) (*Scorer, error) {
	if deadline <= 0 {
		deadline = DefaultRecoveryDeadline
	}
	s := &Scorer{
		deadline: deadline,
		marks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_detector_marks_total",
			Help: "Instances marked Unhealthy, by the detector that judged them bad.",
		}, []string{"service", "detector"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_detector_mark_outcomes_total",
			Help: "Marks whose outcome is known: recovered (the service recovered within the deadline) or not_recovered.",
		}, []string{"service", "detector", "outcome"}),
		repair: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "medic_repair_duration_seconds",
			Help:    "Time from an instance's first failed probe to the service recovered with a serving replacement.",
			Buckets: repairBuckets,
		}, []string{"service", "detector"}),
		pending: map[string]map[string]pendingMark{},
		scores:  map[string]map[DetectorKind]*DetectorScore{},
	}
	if err := registerAll(r, "scorer", s.marks, s.outcomes, s.repair); err != nil {
		return nil, err
	}
	return s, nil
}

// registerAll registers cs on r (nil registers nothing), stopping at the
// first error, which names what.
func registerAll(r prometheus.Registerer, what string, cs ...prometheus.Collector) error {
	if r == nil {
		return nil
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register %s metrics: %w", what, err)
		}
	}
	return nil
}

// Marked records that instance of service was marked on detector's word;
// firstFailure is when its evidence began (the verdict's Since). Marking an
// instance whose earlier mark is still pending changes nothing: the first
// mark and its detector stand.
func (s *Scorer) Marked(service, instance string, d DetectorKind, firstFailure, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pending[service]
	if ps == nil {
		ps = map[string]pendingMark{}
		s.pending[service] = ps
	}
	if _, again := ps[instance]; again {
		return
	}
	s.score(service, d).Marks++
	s.marks.WithLabelValues(service, string(d)).Inc()
	ps[instance] = pendingMark{detector: d, firstFailure: firstFailure, markedAt: at}
}

// Settle is called once a cycle per service with whether the service is
// recovered now (ServiceRecovered). Recovered settles every pending mark of
// the service as Recovered and observes its repair time; otherwise marks
// older than the deadline (exactly at it counts) settle as NotRecovered. It
// returns what settled, oldest mark first, for the recovery notification.
func (s *Scorer) Settle(service string, recovered bool, now time.Time) []Settled {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Settled
	for id, p := range s.pending[service] {
		st := Settled{Service: service, InstanceID: id, Detector: p.detector, FirstFailure: p.firstFailure, MarkedAt: p.markedAt}
		switch {
		case recovered:
			st.Outcome = Recovered
			st.Repair = max(now.Sub(p.firstFailure), 0)
			s.score(service, p.detector).Recovered++
			s.repair.WithLabelValues(service, string(p.detector)).Observe(st.Repair.Seconds())
		case now.Sub(p.markedAt) >= s.deadline:
			st.Outcome = NotRecovered
			s.score(service, p.detector).NotRecovered++
		default:
			continue
		}
		s.outcomes.WithLabelValues(service, string(p.detector), string(st.Outcome)).Inc()
		delete(s.pending[service], id)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].MarkedAt.Equal(out[j].MarkedAt) {
			return out[i].MarkedAt.Before(out[j].MarkedAt)
		}
		return out[i].InstanceID < out[j].InstanceID
	})
	return out
}

// score returns service's record of d, creating it; s.mu held.
func (s *Scorer) score(service string, d DetectorKind) *DetectorScore {
	m := s.scores[service]
	if m == nil {
		m = map[DetectorKind]*DetectorScore{}
		s.scores[service] = m
	}
	sc := m[d]
	if sc == nil {
		sc = &DetectorScore{Detector: d}
		m[d] = sc
	}
	return sc
}

// Scores returns service's record per detector that has marked, sorted by
// detector, with Pending filled in: for the status page.
func (s *Scorer) Scores(service string) []DetectorScore {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DetectorScore, 0, len(s.scores[service]))
	for _, sc := range s.scores[service] {
		c := *sc
		c.Pending = 0
		for _, p := range s.pending[service] {
			if p.detector == c.Detector {
				c.Pending++
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Detector < out[j].Detector })
	return out
}

// Summary is one line for the notification that reports a recovery: what
// just settled and each detector's record for the service, e.g.
// "i-0abc (latency_outlier) replaced, serving 4m10s after its first failed
// probe; record: latency_outlier 3 marks, 2 recovered, 1 not, consecutive_failures 1 mark, 1 recovered".
func (s *Scorer) Summary(service string, settled []Settled) string {
	var parts []string
	for _, st := range settled {
		if st.Outcome == Recovered {
			parts = append(parts, fmt.Sprintf("%s (%s) replaced, serving %s after its first failed probe",
				st.InstanceID, st.Detector, st.Repair.Round(time.Second)))
		} else {
			parts = append(parts, fmt.Sprintf("%s (%s) marked at %s, the service not recovered within %s",
				st.InstanceID, st.Detector, clock(st.MarkedAt), s.deadline))
		}
	}
	var rec []string
	for _, sc := range s.Scores(service) {
		r := fmt.Sprintf("%s %s, %d recovered, %d not", sc.Detector, plural(sc.Marks, "mark"), sc.Recovered, sc.NotRecovered)
		if sc.Pending > 0 {
			r += fmt.Sprintf(", %d pending", sc.Pending)
		}
		rec = append(rec, r)
	}
	line := strings.Join(parts, "; ")
	if len(rec) > 0 {
		if line != "" {
			line += "; "
		}
		line += "record: " + strings.Join(rec, "; ")
	}
	return line
}

// Forget drops service's records and metric series (the service left the
// config).
func (s *Scorer) Forget(service string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, service)
	delete(s.scores, service)
	l := prometheus.Labels{"service": service}
	s.marks.DeletePartialMatch(l)
	s.outcomes.DeletePartialMatch(l)
	s.repair.DeletePartialMatch(l)
}

// ServiceRecovered decides whether a service counts as recovered for the
// score: its endpoint passes (or it has none), no instance is Bad, and every
// group has at least its desired capacity of InService instances judged
// Healthy and held Healthy by the group — so a marked instance's
// replacement is in and serving. A group missing from the verdicts with a
// desired capacity above zero is not recovered.
func ServiceRecovered(verdicts []Verdict, groups []discovery.Group, ep EndpointState) bool {
	if ep.Configured && !ep.Healthy {
		return false
	}
	serving := map[string]int{}
	for _, v := range verdicts {
		if v.State == Bad {
			return false
		}
		if v.State == Healthy && v.Instance.InService() && !v.Instance.HeldUnhealthy() {
			serving[v.Instance.Group]++
		}
	}
	for _, g := range groups {
		if serving[g.Name] < g.Desired {
			return false
		}
	}
	return true
}
