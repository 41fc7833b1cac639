package healer

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/medic-sre/medic/probes"
)

// This file finds latency outliers: instances that answer their probes
// correctly but well slower than their peers ("gray failure"). It holds
// three pure pieces: LatencyWindow (a small ring of recent successful probe
// durations per instance), DetectLatencyOutliers (one cycle's standing of
// every instance against its peers) and OutlierTracker (how long each has
// stood out, and when that makes it bad).

// LatencyWindowSize is how many probe durations a LatencyWindow keeps: 64
// samples are 2m8s at the default 2 s probe interval.
const LatencyWindowSize = 64

// LatencyWindow is a bounded ring of the most recent successful probe
// durations of one instance, with the time each probe started. It holds
// durations in microseconds and times in Unix seconds, both uint32 (512
// bytes in all): durations cap at about 71 minutes, far above any probe
// timeout. The zero value is empty and ready. Not safe for concurrent use.
type LatencyWindow struct {
	us   [LatencyWindowSize]uint32 // durations, µs
	at   [LatencyWindowSize]uint32 // probe start, Unix seconds
	next uint8                     // where the next sample goes
	n    uint8                     // samples held, ≤ LatencyWindowSize
}

// Add records one probe duration taken at at, replacing the oldest sample
// when the window is full. Negative durations count as zero.
func (w *LatencyWindow) Add(at time.Time, d time.Duration) {
	us := d.Microseconds()
	switch {
	case us < 0:
		us = 0
	case us > math.MaxUint32:
		us = math.MaxUint32
	}
	w.us[w.next] = uint32(us)
	w.at[w.next] = unixSeconds(at)
	w.next = uint8((int(w.next) + 1) % LatencyWindowSize)
	if int(w.n) < LatencyWindowSize {
		w.n++
	}
}

// AddResult records r when it succeeded; failed probes say nothing about
// latency (their failures are Judge's business) and are skipped.
func (w *LatencyWindow) AddResult(r probes.Result) {
	if r.Success {
		w.Add(r.Start, r.Duration)
	}
}

// Len is the number of samples held, whatever their age.
func (w *LatencyWindow) Len() int { return int(w.n) }

// Samples appends to buf the durations of the samples taken at or after
// since (to the second), in no particular order, and returns it.
func (w *LatencyWindow) Samples(since time.Time, buf []time.Duration) []time.Duration {
	from := unixSeconds(since)
	for i := 0; i < int(w.n); i++ {
		if w.at[i] >= from {
			buf = append(buf, time.Duration(w.us[i])*time.Microsecond)
		}
	}
	return buf
}

// Quantile is the q-quantile (0 ≤ q ≤ 1, linear between closest ranks) of
// the samples taken at or after since, and how many samples that was; 0, 0
// when there are none.
func (w *LatencyWindow) Quantile(q float64, since time.Time) (time.Duration, int) {
	var buf [LatencyWindowSize]time.Duration
	s := w.Samples(since, buf[:0])
	return quantile(s, q), len(s)
}

// LatencyBook holds the LatencyWindow of every instance of every service.
// The scheduler's result callback (Healer.Observe) adds to it as probes
// finish; the heal cycle reads copies. Safe for concurrent use; memory is
// bounded by the instances of the last Windows call per service.
type LatencyBook struct {
	mu sync.Mutex
	m  map[string]map[string]*bookEntry // service → instance id → window
}

// bookEntry is one instance's window and the start of the newest result
// added, so a result offered twice (by Observe and by a cycle's History)
// counts once.
type bookEntry struct {
	w    LatencyWindow
	last time.Time
}

// NewLatencyBook returns an empty book.
func NewLatencyBook() *LatencyBook {
	return &LatencyBook{m: map[string]map[string]*bookEntry{}}
}

// Observe adds one instance probe result (successful ones only). A result
// that started no later than the newest one added for the instance is
// skipped: it was added already.
func (b *LatencyBook) Observe(service, instanceID string, r probes.Result) {
	if !r.Success || instanceID == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observe(service, instanceID, r)
}

// ObserveHistory adds the results of each instance's history (oldest
// first) that are newer than those already added.
func (b *LatencyBook) ObserveHistory(service string, history map[string][]probes.Result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, rs := range history {
		for _, r := range rs {
			if r.Success && id != "" {
				b.observe(service, id, r)
			}
		}
	}
}

func (b *LatencyBook) observe(service, instanceID string, r probes.Result) {
	ws := b.m[service]
	if ws == nil {
		ws = map[string]*bookEntry{}
		b.m[service] = ws
	}
	e := ws[instanceID]
	if e == nil {
		e = &bookEntry{}
		ws[instanceID] = e
	}
	if !r.Start.After(e.last) {
		return
	}
	e.last = r.Start
	e.w.AddResult(r)
}

// Windows returns copies of the windows of instanceIDs (an instance with
// no window gets an empty one) for DetectInput, and drops the service's
// windows of every other instance: they left the fleet.
func (b *LatencyBook) Windows(service string, instanceIDs []string) map[string]*LatencyWindow {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.m[service]
	out := make(map[string]*LatencyWindow, len(instanceIDs))
	keep := make(map[string]*bookEntry, len(instanceIDs))
	for _, id := range instanceIDs {
		c := &LatencyWindow{}
		if e, ok := ws[id]; ok {
			*c = e.w
			keep[id] = e
		}
		out[id] = c
	}
	b.m[service] = keep
	return out
}

// Forget drops a service's windows (it left the config).
func (b *LatencyBook) Forget(service string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, service)
}

func unixSeconds(t time.Time) uint32 {
	s := t.Unix()
	switch {
	case s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// quantile sorts s in place and returns its q-quantile, linear between the
// closest ranks (q 0.5 of an even count is the midpoint of the middle two).
func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	q = min(max(q, 0), 1)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	frac := pos - float64(lo)
	return s[lo] + time.Duration(math.Round(frac*float64(s[hi]-s[lo])))
}

// OutlierPolicy sets how DetectLatencyOutliers and OutlierTracker judge
// latency. DefaultOutlierPolicy gives the documented defaults; a zero field
// is not replaced by its default (Enabled false turns detection off).
type OutlierPolicy struct {
	// Enabled turns latency outlier detection on. Default true.
	Enabled bool
	// Window: only probes started this long before now count. Default 2m.
	Window time.Duration
	// Quantile of an instance's window taken as its typical latency.
	// Default 0.5 (the median): one slow probe moves it by one rank.
	Quantile float64
	// MinSamples: an instance with fewer successful probes in the window is
	// not judged, nor counted as anyone's peer. Default 10.
	MinSamples int
	// MinPeers: an instance is judged only against at least this many other
	// instances with MinSamples each. Default 2 (a fleet of three); below 1
	// counts as 1.
	MinPeers int
	// RelativeMargin: an outlier's typical latency is at least this many
	// times its peers' (exactly at the margin counts). Default 3.
	RelativeMargin float64
	// AbsoluteMargin: ... and at least this much above it (exactly at the
	// margin counts). Default 100ms: a 1 ms instance among 0.2 ms peers is
	// not worth replacing.
	AbsoluteMargin time.Duration
	// SlowService: when the median of every judged instance's typical
	// latency reaches this, the service is slow as a whole: no instance is
	// an outlier and the finding is service_slow. Zero means half the probe
	// timeout (DetectInput.ProbeTimeout); both zero turn the check off.
	SlowService time.Duration
	// DegradedFor: an instance that stands out this long without a break is
	// bad. Default 3m.
	DegradedFor time.Duration
}

// DefaultOutlierPolicy returns the defaults documented on OutlierPolicy.
func DefaultOutlierPolicy() OutlierPolicy {
	return OutlierPolicy{
		Enabled:        true,
		Window:         2 * time.Minute,
		Quantile:       0.5,
		MinSamples:     10,
		MinPeers:       2,
		RelativeMargin: 3,
		AbsoluteMargin: 100 * time.Millisecond,
		DegradedFor:    3 * time.Minute,
	}
}

// LatencyStatus is one instance's standing in one cycle. The values are
// usable as the `status` label of a per-service gauge.
type LatencyStatus string

const (
	// LatencyNormal: judged, and within the margins of its peers.
	LatencyNormal LatencyStatus = "normal"
	// LatencyOutlier: judged, and above its peers by both margins.
	LatencyOutlier LatencyStatus = "outlier"
	// LatencyTooFewSamples: fewer than MinSamples successful probes in the
	// window; not judged.
	LatencyTooFewSamples LatencyStatus = "too_few_samples"
	// LatencyTooFewPeers: fewer than MinPeers other instances with enough
	// samples; not judged.
	LatencyTooFewPeers LatencyStatus = "too_few_peers"
	// LatencyNotJudged: above its peers by both margins, but the fleet as a
	// whole is slow or too many instances stand out (see LatencyFinding):
	// not an outlier.
	LatencyNotJudged LatencyStatus = "not_judged"
)

// LatencyFinding is the service-level result of one cycle. The values are
// usable as the `finding` label of a per-service gauge.
type LatencyFinding string

const (
	// FindingDisabled: OutlierPolicy.Enabled is false.
	FindingDisabled LatencyFinding = "disabled"
	// FindingInsufficient: fewer than MinPeers+1 instances have MinSamples;
	// nobody could be judged.
	FindingInsufficient LatencyFinding = "insufficient_data"
	// FindingNone: instances were judged and none stands out.
	FindingNone LatencyFinding = "none"
	// FindingOutliers: one or more instances stand out (a minority).
	FindingOutliers LatencyFinding = "outliers"
	// FindingServiceSlow: the fleet's median latency is at or above
	// SlowService: the service is slow as a whole, nothing is an outlier.
	FindingServiceSlow LatencyFinding = "service_slow"
	// FindingWidespread: half or more of the judged instances stand out:
	// that is the fleet's condition, not a few instances'; nothing is an
	// outlier.
	FindingWidespread LatencyFinding = "widespread"
)

// LatencyStanding is one instance against its peers in one cycle.
type LatencyStanding struct {
	InstanceID string
	Status     LatencyStatus
	// Samples is the number of successful probes in the window.
	Samples int
	// Typical is its OutlierPolicy.Quantile latency; zero with too few samples.
	Typical time.Duration
	// Peers is the median of the other judged instances' Typical, and
	// PeerCount how many there were; zero when not computed.
	Peers     time.Duration
	PeerCount int
	// Ratio is Typical / Peers; 0 when Peers is 0 or unknown.
	Ratio float64
	// Reason is a sentence with the figures.
	Reason string
}

// LatencyReport is one cycle's latency view of a service.
type LatencyReport struct {
	Finding LatencyFinding
	// FleetTypical is the median of the judged instances' Typical (zero
	// when none has enough samples).
	FleetTypical time.Duration
	// Reason is a sentence for the status page and notifications.
	Reason string
	// Standings, one per instance given, sorted by instance id.
	Standings []LatencyStanding
}

// Outliers returns the ids of the instances that stand out, sorted.
func (r LatencyReport) Outliers() []string {
	var out []string
	for _, s := range r.Standings {
		if s.Status == LatencyOutlier {
			out = append(out, s.InstanceID)
		}
	}
	return out
}

// DetectInput is what DetectLatencyOutliers looks at.
type DetectInput struct {
	// Windows by instance id: the InService, out-of-grace instances of one
	// service. Instances in grace or not InService should be left out: a
	// booting instance is slow for its own reasons.
	Windows map[string]*LatencyWindow
	Policy  OutlierPolicy
	// ProbeTimeout of the instance probes; half of it is the default
	// SlowService.
	ProbeTimeout time.Duration
	Now          time.Time
}

// DetectLatencyOutliers gives every instance its standing against its peers
// and the service a finding. In this order:
//
//  1. Policy disabled → FindingDisabled, no standings.
//  2. Each instance's Typical is its Quantile latency over the probes
//     started within Window before Now; with fewer than MinSamples it is
//     LatencyTooFewSamples and nobody's peer.
//  3. Fewer than MinPeers+1 instances with enough samples → every one of
//     them LatencyTooFewPeers, FindingInsufficient.
//  4. Each judged instance's Peers is the median of the other judged
//     instances' Typical; it stands out when Typical ≥ RelativeMargin ×
//     Peers AND Typical − Peers ≥ AbsoluteMargin (both inclusive).
//  5. The fleet's median Typical at or above SlowService (default half the
//     probe timeout) → FindingServiceSlow: those standing out are
//     LatencyNotJudged, the rest LatencyNormal.
//  6. Half or more of the judged instances standing out → FindingWidespread,
//     likewise nobody is an outlier.
//  7. Otherwise those standing out are LatencyOutlier (FindingOutliers), the
//     rest LatencyNormal (FindingNone when none stands out).
func DetectLatencyOutliers(in DetectInput) LatencyReport {
	p := in.Policy
	if !p.Enabled {
		return LatencyReport{Finding: FindingDisabled, Reason: "latency outlier detection is off"}
	}
	since := in.Now.Add(-p.Window)
	rep := LatencyReport{Standings: make([]LatencyStanding, 0, len(in.Windows))}
	var judged []int // indexes into rep.Standings
	for _, id := range sortedKeys(in.Windows) {
		s := LatencyStanding{InstanceID: id}
		if w := in.Windows[id]; w != nil {
			s.Typical, s.Samples = w.Quantile(p.Quantile, since)
		}
		if s.Samples < max(p.MinSamples, 1) {
			s.Typical = 0
			s.Status = LatencyTooFewSamples
			s.Reason = fmt.Sprintf("%s in the last %s, below min_samples %d",
				plural(s.Samples, "successful probe"), p.Window, p.MinSamples)
		} else {
			judged = append(judged, len(rep.Standings))
		}
		rep.Standings = append(rep.Standings, s)
	}
	typicals := make([]time.Duration, 0, len(judged))
	for _, i := range judged {
		typicals = append(typicals, rep.Standings[i].Typical)
	}
	rep.FleetTypical = quantile(slices.Clone(typicals), 0.5)
	minPeers := max(p.MinPeers, 1)
	if len(judged) < minPeers+1 {
		for _, i := range judged {
			s := &rep.Standings[i]
			s.Status = LatencyTooFewPeers
			s.Reason = fmt.Sprintf("%s latency %s, but only %s with min_samples %d, below min_peers %d",
				quantileName(p.Quantile), s.Typical, plural(len(judged)-1, "other instance"), p.MinSamples, minPeers)
		}
		rep.Finding = FindingInsufficient
		rep.Reason = fmt.Sprintf("%s of %d with at least %d successful probes in the last %s: latency outliers need %d",
			plural(len(judged), "instance"), len(in.Windows), p.MinSamples, p.Window, minPeers+1)
		return rep
	}

	var standOut []int
	peers := make([]time.Duration, 0, len(judged))
	for k, i := range judged {
		peers = append(peers[:0], typicals[:k]...)
		peers = append(peers, typicals[k+1:]...)
		s := &rep.Standings[i]
		s.Peers = quantile(peers, 0.5)
		s.PeerCount = len(peers)
		if s.Peers > 0 {
			s.Ratio = float64(s.Typical) / float64(s.Peers)
		}
		if standsOut(s.Typical, s.Peers, p) {
			standOut = append(standOut, i)
		}
		s.Status = LatencyNormal
		s.Reason = standingSentence(*s, p)
	}

	slow := p.SlowService
	if slow == 0 {
		slow = in.ProbeTimeout / 2
	}
	fleetFinding(&rep, standOut, len(judged), slow, p)
	return rep
}

// fleetFinding applies steps 5 to 7 of DetectLatencyOutliers to rep, whose
// judged instances are all LatencyNormal and standOut of them stand out.
func fleetFinding(rep *LatencyReport, standOut []int, judged int, slow time.Duration, p OutlierPolicy) {
	switch {
	case slow > 0 && rep.FleetTypical >= slow:
		rep.Finding = FindingServiceSlow
		rep.Reason = fmt.Sprintf("the service is slow as a whole: the %s latency of its %d judged instances is %s, at or above %s; no instance is an outlier",
			quantileName(p.Quantile), judged, rep.FleetTypical, slow)
		notJudged(rep.Standings, standOut, "the service is slow as a whole")
	case len(standOut) > 0 && 2*len(standOut) >= judged:
		rep.Finding = FindingWidespread
		rep.Reason = fmt.Sprintf("%d of %d judged instances are slower than their peers by both margins: a condition of the fleet, not of a few instances; no instance is an outlier",
			len(standOut), judged)
		notJudged(rep.Standings, standOut, "half or more of the fleet stands out")
	case len(standOut) > 0:
		rep.Finding = FindingOutliers
		ids := make([]string, 0, len(standOut))
		for _, i := range standOut {
			rep.Standings[i].Status = LatencyOutlier
			ids = append(ids, rep.Standings[i].InstanceID)
		}
		rep.Reason = fmt.Sprintf("%s of %d judged instances slower than their peers by both margins (%s): %v",
			plural(len(standOut), "latency outlier"), judged, marginsText(p), ids)
	default:
		rep.Finding = FindingNone
		rep.Reason = fmt.Sprintf("no latency outlier among %d judged instances (%s latency %s)",
			judged, quantileName(p.Quantile), rep.FleetTypical)
	}
}

// standsOut applies both margins, inclusive.
func standsOut(typical, peers time.Duration, p OutlierPolicy) bool {
	return float64(typical) >= p.RelativeMargin*float64(peers) && typical-peers >= p.AbsoluteMargin
}

func standingSentence(s LatencyStanding, p OutlierPolicy) string {
	ratio := "n/a"
	if s.Peers > 0 {
		ratio = fmt.Sprintf("%.1f×", s.Ratio)
	}
	verdict := "within the margins"
	if standsOut(s.Typical, s.Peers, p) {
		verdict = "above both margins"
	}
	return fmt.Sprintf("%s latency %s over %d probes, %s its %s' %s (%s): %s",
		quantileName(p.Quantile), s.Typical, s.Samples, ratio, plural(s.PeerCount, "peer"), s.Peers, marginsText(p), verdict)
}

func notJudged(ss []LatencyStanding, idx []int, why string) {
	for _, i := range idx {
		ss[i].Status = LatencyNotJudged
		ss[i].Reason += "; not an outlier: " + why
	}
}

func marginsText(p OutlierPolicy) string {
	return fmt.Sprintf("margins %g× and +%s", p.RelativeMargin, p.AbsoluteMargin)
}

// quantileName says "median" for 0.5, else "p90".
func quantileName(q float64) string {
	if q == 0.5 {
		return "median"
	}
	return fmt.Sprintf("p%g", math.Round(q*1000)/10)
}

// OutlierState is an instance's latency state across cycles.
type OutlierState struct {
	InstanceID string
	// Degraded: it stood out in every cycle since Since.
	Degraded bool
	Since    time.Time
	// Bad: degraded for at least DegradedFor; it should go through the
	// guard like any other bad instance.
	Bad bool
	// Reason is a sentence with the evidence (the latest standing's).
	Reason string
}

// OutlierTracker turns each cycle's standings into "degraded since T" and
// "bad after degraded for D". One tracker serves one service; it is pure
// (the clock is passed in) and safe for concurrent use, so a status page
// may read it while the healer updates it.
type OutlierTracker struct {
	mu    sync.Mutex
	since map[string]time.Time
	last  []OutlierState
}

// NewOutlierTracker returns an empty tracker.
func NewOutlierTracker() *OutlierTracker {
	return &OutlierTracker{since: map[string]time.Time{}}
}

// Update records one cycle and returns every degraded instance's state,
// sorted by id. An instance is degraded from the first cycle it is
// LatencyOutlier and stays so while it is in every cycle after; any other
// status (normal, not judged, too few samples or peers), or its absence,
// ends the episode: bad needs unbroken evidence. It turns Bad once now −
// Since ≥ degradedFor (exactly at it counts).
func (t *OutlierTracker) Update(rep LatencyReport, degradedFor time.Duration, now time.Time) []OutlierState {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[string]bool, len(rep.Standings))
	var out []OutlierState
	for _, s := range rep.Standings {
		if s.Status != LatencyOutlier {
			continue
		}
		seen[s.InstanceID] = true
		since, ok := t.since[s.InstanceID]
		if !ok {
			since = now
			t.since[s.InstanceID] = now
		}
		st := OutlierState{InstanceID: s.InstanceID, Degraded: true, Since: since, Bad: now.Sub(since) >= degradedFor}
		if st.Bad {
			st.Reason = fmt.Sprintf("latency outlier since %s (for %s, degraded_for %s): %s",
				clock(since), now.Sub(since).Round(time.Second), degradedFor, s.Reason)
		} else {
			st.Reason = fmt.Sprintf("degraded since %s, bad after %s: %s", clock(since), degradedFor, s.Reason)
		}
		out = append(out, st)
	}
	for id := range t.since {
		if !seen[id] {
			delete(t.since, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	t.last = out
	return out
}

// States returns what the last Update returned, for status pages.
func (t *OutlierTracker) States() []OutlierState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.last)
}

// ApplyLatency turns the Healthy verdicts of instances that the tracker
// finds Bad into Bad verdicts with the latency reason and its Since, so they
// go through Guard like any other bad instance. Other verdicts (Suspect,
// Bad on failures, Grace, …) are left as they are: failures speak louder.
// It returns a new slice; verdicts is not modified.
func ApplyLatency(verdicts []Verdict, states []OutlierState) []Verdict {
	bad := make(map[string]OutlierState, len(states))
	for _, s := range states {
		if s.Bad {
			bad[s.InstanceID] = s
		}
	}
	out := slices.Clone(verdicts)
	for i, v := range out {
		if s, ok := bad[v.Instance.ID]; ok && v.State == Healthy {
			out[i].State = Bad
			out[i].Since = s.Since
			out[i].Reason = s.Reason
			out[i].Detector = DetectorLatencyOutlier
		}
	}
	return out
}
