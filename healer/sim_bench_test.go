package healer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/probes"
)

// The fleet simulation runs the real decision path — Detector.Add for every
// probe result, then Judge and Guard — over a simulated fleet, pure and
// single-threaded. Figures:
//
//   - false marks per 1,000 fleet-hours: 60 healthy instances, 10,000
//     simulated hours at a 30 s probe interval (72 million results), with
//     medic-side uniform random probe loss of 1%, 5%, 10% and 30%. Goal 0.
//   - detection delay: the same fleet without loss, one instance failing
//     100%, 67% or 50% of its probes at random (or 2 of every 3, never 3 in
//     a row) from some moment on; the probes from its first failure to the
//     mark, over many trials. Goal ≤ unhealthy_after + 1 for 100%, ≤ 15 for
//     67%. And with 5% loss on every instance meanwhile, counted from the
//     moment it turned bad.
//
// Judge and Guard run after a result that could make an instance Bad
// (Detector.mayBeBad): any other round cannot change what is marked.
//
//	go test -run '^$' -bench BenchmarkFleetSimulation -benchtime 1x ./healer/
//
// MEDIC_SIM_HOURS shortens (or lengthens) the false-mark runs.

const (
	simInstances = 60
	simInterval  = 30 * time.Second
)

func simPolicy() config.Policy {
	return config.Policy{UnhealthyAfter: 3, HealthyAfter: 2, MaxUnhealthy: config.IntOrPercent{Value: 34, IsPercent: true},
		GracePeriod: config.GracePeriod{Duration: time.Minute}, MaxActionsPerHour: 10, AZCorrelation: true,
		FailureRatio: 0.6, FailureWindow: 15, StopAfterFailedReplacements: 1}
}

func simProbe() config.Probe {
	return config.Probe{Interval: config.Duration(simInterval), Timeout: config.Duration(time.Second)}
}

// simFleet is the simulated service: its instances, their detectors, and
// what was marked.
type simFleet struct {
	policy  config.Policy
	params  DetectorParams
	snap    discovery.Snapshot
	dets    map[string]*Detector
	det     []*Detector // by position in snap.Instances
	rate    []float64   // by position: the instance's own failure probability
	pattern []string    // by position: a fixed pattern of its own outcomes (F fails), cycled
	actions []time.Time
	nextID  int
	rng     *rand.Rand
	loss    float64
	now     time.Time
	rounds  int
	judged  int
}

func newSimFleet(seed uint64, loss float64) *simFleet {
	f := &simFleet{policy: simPolicy(), dets: map[string]*Detector{},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), loss: loss, now: t0}
	f.params = ParamsFor(f.policy, simProbe())
	f.snap = discovery.Snapshot{Service: "sim", Groups: []discovery.Group{{Name: "sim-asg", Desired: simInstances, Max: simInstances * 2}}}
	for range simInstances {
		inst := f.newInstance(t0.Add(-time.Hour))
		f.snap.Instances = append(f.snap.Instances, inst)
		f.det = append(f.det, f.dets[inst.ID])
		f.rate = append(f.rate, 0)
		f.pattern = append(f.pattern, "")
	}
	return f
}

func (f *simFleet) newInstance(since time.Time) discovery.Instance {
	f.nextID++
	id := fmt.Sprintf("i-%06d", f.nextID)
	f.dets[id] = &Detector{}
	azs := []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	return discovery.Instance{ID: id, Group: "sim-asg", AZ: azs[f.nextID%3], LaunchTime: since, InServiceSince: since,
		LifecycleState: discovery.LifecycleInService, HealthStatus: discovery.HealthHealthy}
}

// round probes every instance once and returns the instances marked.
func (f *simFleet) round() []Verdict {
	f.now = f.now.Add(simInterval)
	f.rounds++
	check := false
	for i := range f.snap.Instances {
		failed := f.rng.Float64() < f.loss || f.rng.Float64() < f.rate[i] ||
			(f.pattern[i] != "" && f.pattern[i][f.rounds%len(f.pattern[i])] == 'F')
		r := probes.Result{Start: f.now, Success: !failed}
		if failed {
			r.Reason = "timeout"
		}
		d := f.det[i]
		if d.Add(r, f.params) && d.mayBeBad(f.params) {
			check = true
		}
	}
	if !check {
		return nil
	}
	f.judged++
	verdicts := Judge(JudgeInput{Snapshot: f.snap, Detectors: f.dets, Policy: f.policy, Probe: simProbe(), Now: f.now, NoReasons: true})
	if !slices.ContainsFunc(verdicts, func(v Verdict) bool { return v.State == Bad }) {
		return nil // the guard marks Bad instances only
	}
	dec := Guard(GuardInput{Verdicts: verdicts, Groups: f.snap.Groups, Endpoint: EndpointState{Configured: true, Healthy: true},
		RecentActions: f.actions, Policy: f.policy, Now: f.now})
	for _, m := range dec.Mark {
		f.actions = append(f.actions, f.now)
		f.replace(m.Instance.ID)
	}
	f.actions = keepWindow(f.actions, f.now)
	return dec.Mark
}

// replace stands for the group replacing a marked instance: a new one
// enters InService at once (and is in grace for a minute).
func (f *simFleet) replace(id string) {
	for i, inst := range f.snap.Instances {
		if inst.ID == id {
			delete(f.dets, id)
			f.snap.Instances[i] = f.newInstance(f.now)
			f.det[i], f.rate[i], f.pattern[i] = f.dets[f.snap.Instances[i].ID], 0, ""
			return
		}
	}
}

func simHours() int {
	if s := os.Getenv("MEDIC_SIM_HOURS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 10000
}

func BenchmarkFleetSimulation(b *testing.B) {
	hours := simHours()
	for _, loss := range []float64{0.01, 0.05, 0.10, 0.30} {
		b.Run(fmt.Sprintf("loss=%g%%", loss*100), func(b *testing.B) {
			for range b.N {
				f := newSimFleet(uint64(loss*1000)+1, loss)
				rounds := hours * int(time.Hour/simInterval)
				falseMarks := 0
				for range rounds {
					falseMarks += len(f.round())
				}
				fleetHours := float64(hours * simInstances)
				b.ReportMetric(float64(falseMarks)*1000/fleetHours, "false-marks/1000fleet-h")
				b.ReportMetric(float64(f.judged)/float64(f.rounds)*100, "%rounds-judged")
				b.Logf("loss %g%%: %d hours × %d instances at %s (%d results): %d false marks (%.3f per 1,000 fleet-hours); judge+guard ran in %d of %d rounds",
					loss*100, hours, simInstances, simInterval, rounds*simInstances, falseMarks, float64(falseMarks)*1000/fleetHours, f.judged, f.rounds)
			}
		})
	}
	for _, bc := range []struct {
		name    string
		rate    float64
		pattern string
		loss    float64 // medic-side loss on every instance meanwhile
	}{
		{"bad=100%", 1, "", 0}, {"bad=67%", 0.67, "", 0}, {"bad=50%", 0.5, "", 0},
		{"bad=FFP", 0, "FFP", 0}, // fails 2 of every 3, never 3 in a row
		// The price of "is it me?": more evidence while the peers fail too.
		{"bad=100%,loss=5%", 1, "", 0.05}, {"bad=67%,loss=5%", 0.67, "", 0.05},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				const trials, limit = 300, 200
				var delays []int
				missed, wrong := 0, 0
				for trial := range trials {
					f := newSimFleet(uint64(trial)+7, bc.loss)
					for range 70 { // fill every window
						f.round()
					}
					bad := f.snap.Instances[trial%simInstances].ID
					f.rate[trial%simInstances] = bc.rate
					f.pattern[trial%simInstances] = bc.pattern
					first := 0 // probes since the first failure of the bad instance
					done := false
					for p := 1; p <= limit+100 && !done; p++ {
						marks := f.round()
						if first == 0 && (bc.loss > 0 || f.dets[bad] != nil && f.dets[bad].fails > 0) {
							first = p
						}
						for _, m := range marks {
							if m.Instance.ID != bad {
								wrong++
								continue
							}
							delays = append(delays, p-first+1)
							done = true
						}
						if first > 0 && p-first+1 > limit {
							break
						}
					}
					if !done {
						missed++
					}
				}
				mean, worst, p95 := summarize(delays)
				b.ReportMetric(mean, "mean-probes")
				b.ReportMetric(float64(worst), "max-probes")
				b.ReportMetric(float64(missed), "missed")
				b.Logf("one instance failing (%s), %d trials: marked in %d; delay from its first failure: mean %.1f, p95 %d, max %d probes; not marked within %d probes: %d; other instances marked: %d",
					bc.name, trials, len(delays), mean, p95, worst, limit, missed, wrong)
			}
		})
	}
}

func summarize(ds []int) (mean float64, worst, p95 int) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sorted := append([]int(nil), ds...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	sum := 0
	for _, d := range ds {
		sum += d
	}
	return float64(sum) / float64(len(ds)), sorted[len(sorted)-1], sorted[len(sorted)*95/100]
}
