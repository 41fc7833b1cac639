package healer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The latency outlier benchmarks simulate a fleet's probe durations and run
// the pure detector and tracker on them, cycle by cycle, with the default
// OutlierPolicy: no network, no clock. Figures are in simulated time.
//
//	go test -run '^$' -bench 'BenchmarkLatencyOutlier' -benchtime 1x ./healer/

// latNoise is a fleet's latency: log-normal around Median with shape Sigma,
// each instance's own median off the fleet's by up to ±Spread (fixed per
// instance), and a probe taking SpikeLatency with probability SpikeP.
type latNoise struct {
	Median       time.Duration
	Sigma        float64
	Spread       float64
	SpikeP       float64
	SpikeLatency time.Duration
}

// realistic: 50 ms median, σ 0.5 (p99 ≈ 3.2 × median), instances within
// ±20% of each other, 1 probe in 200 taking 1 s.
var realistic = latNoise{Median: 50 * ms, Sigma: 0.5, Spread: 0.2, SpikeP: 0.005, SpikeLatency: time.Second}

// latSim is one simulated fleet.
type latSim struct {
	noise   latNoise
	rng     *rand.Rand
	bias    []float64 // per instance multiplier
	slow    []float64 // per instance fault multiplier (1 = none)
	ids     []string
	windows map[string]*LatencyWindow
	tracker *OutlierTracker
	policy  OutlierPolicy
	now     time.Time
}

const latSimInterval = 2 * time.Second // the default probe interval

func newLatSim(n int, noise latNoise, seed uint64) *latSim {
	s := &latSim{noise: noise, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		windows: map[string]*LatencyWindow{}, tracker: NewOutlierTracker(), policy: DefaultOutlierPolicy(), now: latNow}
	for i := range n {
		id := fmt.Sprintf("i-%03d", i)
		s.ids = append(s.ids, id)
		s.windows[id] = &LatencyWindow{}
		s.bias = append(s.bias, 1+noise.Spread*(2*s.rng.Float64()-1))
		s.slow = append(s.slow, 1)
	}
	return s
}

func (s *latSim) sample(i int) time.Duration {
	if s.rng.Float64() < s.noise.SpikeP {
		return s.noise.SpikeLatency
	}
	d := float64(s.noise.Median) * s.bias[i] * s.slow[i] * math.Exp(s.noise.Sigma*s.rng.NormFloat64())
	return time.Duration(d)
}

// step probes every instance once, runs one detector cycle and returns the
// instances the tracker finds bad.
func (s *latSim) step() []string {
	s.now = s.now.Add(latSimInterval)
	for i, id := range s.ids {
		s.windows[id].Add(s.now, s.sample(i))
	}
	rep := DetectLatencyOutliers(DetectInput{Windows: s.windows, Policy: s.policy, ProbeTimeout: 5 * time.Second, Now: s.now})
	var bad []string
	for _, st := range s.tracker.Update(rep, s.policy.DegradedFor, s.now) {
		if st.Bad {
			bad = append(bad, st.InstanceID)
		}
	}
	return bad
}

// BenchmarkLatencyOutlierDelay: a fleet of 6 under realistic noise; after
// 5 minutes one instance turns k times slower; the time from then until the
// tracker finds it bad, over 20 fleets (different seeds). An outlier not
// found in 30 minutes counts as missed.
func BenchmarkLatencyOutlierDelay(b *testing.B) {
	for _, k := range []float64{2, 5, 20} {
		b.Run(fmt.Sprintf("slowdown=%gx", k), func(b *testing.B) {
			var delays []time.Duration
			missed := 0
			for b.Loop() {
				delays, missed = delays[:0], 0
				for seed := range uint64(20) {
					d, ok := outlierDelay(k, seed)
					if !ok {
						missed++
						continue
					}
					delays = append(delays, d)
				}
			}
			slices.Sort(delays)
			b.ReportMetric(float64(missed), "missed/20")
			if len(delays) > 0 {
				b.ReportMetric(delays[len(delays)/2].Seconds(), "median-delay-s")
				b.ReportMetric(delays[len(delays)-1].Seconds(), "max-delay-s")
				b.Logf("slowdown %gx: detected %d/20, delay min %s median %s max %s (window %s, degraded_for %s)",
					k, len(delays), delays[0], delays[len(delays)/2], delays[len(delays)-1],
					DefaultOutlierPolicy().Window, DefaultOutlierPolicy().DegradedFor)
			} else {
				b.Logf("slowdown %gx: never detected in 30m (below the %g× relative margin)", k, DefaultOutlierPolicy().RelativeMargin)
			}
		})
	}
}

func outlierDelay(k float64, seed uint64) (time.Duration, bool) {
	s := newLatSim(6, realistic, seed)
	for range int(5 * time.Minute / latSimInterval) {
		s.step()
	}
	s.slow[0] = k
	start := s.now
	for range int(30 * time.Minute / latSimInterval) {
		if bad := s.step(); slices.Contains(bad, s.ids[0]) {
			return s.now.Sub(start), true
		}
	}
	return 0, false
}

// BenchmarkLatencyOutlierFalseMarks: healthy fleets of 10 under noise for
// 1,000 fleet-hours (10 instances × 100 hours); every instance the tracker
// turns bad is a false mark.
func BenchmarkLatencyOutlierFalseMarks(b *testing.B) {
	profiles := []struct {
		name  string
		noise latNoise
	}{
		{"realistic", realistic},
		// Harsher: σ 1.0 (p99 ≈ 10 × median), ±50% between instances, 1 probe in 50 at 1 s.
		{"harsh", latNoise{Median: 50 * ms, Sigma: 1.0, Spread: 0.5, SpikeP: 0.02, SpikeLatency: time.Second}},
	}
	const instances, hours = 10, 100
	for _, p := range profiles {
		b.Run("noise="+p.name, func(b *testing.B) {
			marks, degraded := 0, 0
			for b.Loop() {
				marks, degraded = 0, 0
				s := newLatSim(instances, p.noise, 7)
				wasBad, wasDegraded := map[string]bool{}, map[string]bool{}
				for range int(hours * time.Hour / latSimInterval) {
					s.step()
					nowBad, nowDegraded := map[string]bool{}, map[string]bool{}
					for _, st := range s.tracker.States() {
						nowDegraded[st.InstanceID] = true
						if !wasDegraded[st.InstanceID] {
							degraded++
						}
						if st.Bad {
							nowBad[st.InstanceID] = true
							if !wasBad[st.InstanceID] {
								marks++
							}
						}
					}
					wasBad, wasDegraded = nowBad, nowDegraded
				}
			}
			fleetHours := float64(instances * hours)
			b.ReportMetric(float64(marks)*1000/fleetHours, "false-marks/1000fleet-h")
			b.ReportMetric(float64(degraded)*1000/fleetHours, "degraded-episodes/1000fleet-h")
			b.Logf("noise %s: %d false marks and %d degraded episodes in %.0f fleet-hours (%d instances, probes every %s)",
				p.name, marks, degraded, fleetHours, instances, latSimInterval)
		})
	}
}
