package probes

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/config"
)

// startScheduler runs s until the test ends and checks Run returns.
func startScheduler(t *testing.T, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// resultCounter counts OnResult calls by Key.
type resultCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *resultCounter) onResult(t Target, _ Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[t.Key]++
}

func (c *resultCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *resultCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func staticTarget(key, addr, path string, interval, timeout time.Duration) Target {
	return Target{
		Key:     key,
		Service: "svc",
		Address: addr,
		Settings: probeSettings(func(p *config.Probe) {
			p.Path = path
			p.Interval = config.Duration(interval)
			p.Timeout = config.Duration(timeout)
		}),
	}
}

func TestSchedulerNoOverlap(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(100 * time.Millisecond):
		}
	}))
	defer close(release)
	var rc resultCounter
	s := NewScheduler(Options{MaxConcurrent: 10, OnResult: rc.onResult})
	var targets []Target
	for i := range 3 {
		// The probe takes longer than the interval (timeout > interval
		// is refused by config, not by the scheduler).
		targets = append(targets, staticTarget(fmt.Sprint("t", i), srv.addr(), fmt.Sprint("/t", i), 20*time.Millisecond, time.Second))
	}
	s.Update(targets)
	startScheduler(t, s)

	waitFor(t, 20*time.Second, "3 results per target and overlap skips", func() bool {
		for _, tg := range targets {
			if rc.get(tg.Key) < 3 {
				return false
			}
		}
		return testutil.ToFloat64(s.m.skipped.WithLabelValues("svc", "overlap")) > 0
	})
	for i := range targets {
		if n := srv.maxFor(fmt.Sprint("/t", i)); n != 1 {
			t.Errorf("target %d had %d probes in flight at once, want 1", i, n)
		}
	}
}

func TestSchedulerConcurrencyBound(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond)
	}))
	var rc resultCounter
	s := NewScheduler(Options{MaxConcurrent: 2, OnResult: rc.onResult})
	var targets []Target
	for i := range 10 {
		targets = append(targets, staticTarget(fmt.Sprint("t", i), srv.addr(), fmt.Sprint("/t", i), 50*time.Millisecond, time.Second))
	}
	s.Update(targets)
	startScheduler(t, s)

	// 10 targets needing 30ms every 50ms want 6 workers; 2 leave slots
	// without a worker.
	waitFor(t, 30*time.Second, "30 results, 2 in flight and concurrency skips", func() bool {
		return rc.total() >= 30 && srv.maxConcurrent() == 2 &&
			testutil.ToFloat64(s.m.skipped.WithLabelValues("svc", "concurrency")) > 0
	})
	if n := srv.maxConcurrent(); n > 2 {
		t.Errorf("%d probes in flight at once, want at most 2", n)
	}
}

func TestSchedulerUpdate(t *testing.T) {
	var failing atomic.Bool
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flaky" && failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	reg := prometheus.NewRegistry()
	var rc resultCounter
	s := NewScheduler(Options{MaxConcurrent: 4, Registerer: reg, OnResult: rc.onResult})

	iv, to := 20*time.Millisecond, time.Second
	inst := staticTarget("svc/i-1", srv.addr(), "/flaky", iv, to)
	inst.InstanceID, inst.AZ = "i-1", "eu-west-1a"
	static := staticTarget("svc/static", srv.addr(), "/", iv, to)
	endpoint := staticTarget("svc/endpoint", srv.URL+"/", "/", iv, to)
	other := staticTarget("other/static", srv.addr(), "/", iv, to)
	other.Service = "other"

	s.Update([]Target{inst, static, endpoint, other})
	startScheduler(t, s)
	waitFor(t, 20*time.Second, "a result per target", func() bool {
		return rc.get(inst.Key) > 2 && rc.get(static.Key) > 0 && rc.get(endpoint.Key) > 0 && rc.get(other.Key) > 0
	})

	want := fmt.Sprintf(`
# HELP medic_probe_success 1 if the target's last probe passed.
# TYPE medic_probe_success gauge
medic_probe_success{az="eu-west-1a",instance_id="i-1",service="svc"} 1
medic_probe_success{az="",instance_id="%[1]s",service="other"} 1
medic_probe_success{az="",instance_id="%[1]s",service="svc"} 1
# HELP medic_probe_targets Targets scheduled.
# TYPE medic_probe_targets gauge
medic_probe_targets{scope="endpoint",service="svc"} 1
medic_probe_targets{scope="instance",service="other"} 1
medic_probe_targets{scope="instance",service="svc"} 2
# HELP medic_service_endpoint_success 1 if the last probe through the load balancer passed.
# TYPE medic_service_endpoint_success gauge
medic_service_endpoint_success{service="svc"} 1
`, srv.addr())
	if err := testutil.GatherAndCompare(s, strings.NewReader(want),
		"medic_probe_success", "medic_probe_targets", "medic_service_endpoint_success"); err != nil {
		t.Fatal(err)
	}
	before := len(s.History(inst.Key))

	// Keep inst with a new path (failing), drop the rest.
	failing.Store(true)
	inst2 := inst
	inst2.Settings.Path = "/flaky"
	inst2.Settings.ExpectStatus = []config.StatusRange{{Low: 200, High: 200}}
	s.Update([]Target{inst2})

	if h := s.History(static.Key); h != nil {
		t.Errorf("History of a removed target = %v, want nil", h)
	}
	if got := len(s.History(inst.Key)); got < before {
		t.Errorf("kept target's history shrank from %d to %d", before, got)
	}
	waitFor(t, 20*time.Second, "the kept target to fail with its new settings", func() bool {
		h := s.History(inst.Key)
		return len(h) > 0 && h[len(h)-1].Reason == "status 500"
	})
	want = `
# HELP medic_probe_success 1 if the target's last probe passed.
# TYPE medic_probe_success gauge
medic_probe_success{az="eu-west-1a",instance_id="i-1",service="svc"} 0
# HELP medic_probe_targets Targets scheduled.
# TYPE medic_probe_targets gauge
medic_probe_targets{scope="instance",service="svc"} 1
`
	names := []string{"medic_probe_success", "medic_probe_duration_seconds", "medic_probe_targets",
		"medic_service_endpoint_success", "medic_service_endpoint_duration_seconds"}
	if err := testutil.GatherAndCompare(s, strings.NewReader(want), names[0], names[2], names[3]); err != nil {
		t.Fatal(err)
	}
	// Every per-target series of the removed targets is gone; the counters
	// of scopes and services without targets too.
	if n, err := testutil.GatherAndCount(s, "medic_probe_duration_seconds"); err != nil || n != 1 {
		t.Errorf("%d medic_probe_duration_seconds series (%v), want 1", n, err)
	}
	if n, err := testutil.GatherAndCount(s, "medic_service_endpoint_duration_seconds"); err != nil || n != 0 {
		t.Errorf("%d medic_service_endpoint_duration_seconds series (%v), want 0", n, err)
	}
	for _, name := range names {
		if lv := labelValues(t, reg, name); len(lv) > 0 {
			t.Errorf("the registry has %s series %v: the scheduler gathers them", name, lv)
		}
	}
	for _, name := range []string{"medic_probes_total", "medic_probe_latency_seconds", "medic_probe_skipped_total"} {
		for _, lv := range labelValues(t, reg, name) {
			if strings.Contains(lv, `service="other"`) || strings.Contains(lv, `scope="endpoint"`) {
				t.Errorf("%s still has series %s", name, lv)
			}
		}
	}
	if got := len(s.Snapshot()); got != 1 {
		t.Errorf("Snapshot has %d targets, want 1", got)
	}
}

// labelValues lists the label sets of a metric family as text.
func labelValues(t *testing.T, reg *prometheus.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, lp := range m.GetLabel() {
				parts = append(parts, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			out = append(out, strings.Join(parts, ","))
		}
	}
	return out
}

func TestSchedulerHistory(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	var rc resultCounter
	s := NewScheduler(Options{MaxConcurrent: 2, OnResult: rc.onResult})
	tg := staticTarget("t", srv.addr(), "/", 5*time.Millisecond, time.Second)
	s.Update([]Target{tg})
	if h := s.History("t"); len(h) != 0 {
		t.Fatalf("History before any probe = %v, want empty", h)
	}
	if _, ok := s.Last("t"); ok {
		t.Fatal("Last before any probe reports a result")
	}
	stop := startScheduler(t, s)
	waitFor(t, 30*time.Second, "20 results", func() bool { return rc.get("t") >= 20 })
	stop()

	h := s.History("t")
	if len(h) != historySize {
		t.Fatalf("len(History) = %d, want %d", len(h), historySize)
	}
	if !slices.IsSortedFunc(h, func(a, b Result) int { return a.Start.Compare(b.Start) }) {
		t.Errorf("History not oldest first: %v", h)
	}
	h[0].Reason = "changed"
	if s.History("t")[0].Reason == "changed" {
		t.Error("History returned the scheduler's own slice")
	}
	if snap := s.Snapshot(); !slices.Equal(snap["t"], s.History("t")) {
		t.Errorf("Snapshot[t] differs from History(t)")
	}
	if last, ok := s.Last("t"); !ok || last != s.History("t")[historySize-1] {
		t.Errorf("Last(t) = %v, %t; want the newest of History(t)", last, ok)
	}
	if _, ok := s.Last("unknown"); ok {
		t.Error("Last of an unknown key reports a result")
	}
	if s.History("unknown") != nil {
		t.Error("History of an unknown key is not nil")
	}
	hs := s.Histories([]string{"t", "unknown"})
	if len(hs) != 1 || !slices.Equal(hs["t"], s.History("t")) {
		t.Errorf("Histories(t, unknown) = %d keys, want t only, equal to History(t)", len(hs))
	}
}

func TestSchedulerRunStopsAfterInFlight(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	var rc resultCounter
	s := NewScheduler(Options{MaxConcurrent: 2, OnResult: rc.onResult})
	s.Update([]Target{staticTarget("t", srv.addr(), "/", 10*time.Millisecond, time.Minute)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 20*time.Second, "a probe in flight", func() bool { return srv.maxFor("/") == 1 })
	if err := s.Run(ctx); err == nil {
		t.Error("a second Run did not fail")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := rc.total(); n != 0 {
		t.Errorf("OnResult called %d times for probes cut short by shutdown", n)
	}
}

func TestSchedulerUnknownType(t *testing.T) {
	got := make(chan Result, 1)
	s := NewScheduler(Options{OnResult: func(_ Target, r Result) {
		select {
		case got <- r:
		default:
		}
	}})
	tg := staticTarget("t", "127.0.0.1:1", "/", 10*time.Millisecond, time.Second)
	tg.Settings.Type = "icmp"
	s.Update([]Target{tg})
	startScheduler(t, s)
	select {
	case r := <-got:
		if r.Success || r.Reason != "unknown probe type icmp" {
			t.Errorf("got success=%v reason=%q", r.Success, r.Reason)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no result")
	}
}

func TestNextSlot(t *testing.T) {
	iv := 5 * time.Second
	now := time.Unix(1000, 0)
	tests := []struct {
		desc  string
		now   time.Time
		phase time.Duration
		want  time.Time
	}{
		{desc: "phase ahead", now: now, phase: 2 * time.Second, want: time.Unix(1002, 0)},
		{desc: "exactly on the slot goes to the next", now: time.Unix(1002, 0), phase: 2 * time.Second, want: time.Unix(1007, 0)},
		{desc: "just past the slot", now: time.Unix(1002, 1), phase: 2 * time.Second, want: time.Unix(1007, 0)},
		{desc: "zero phase", now: time.Unix(1001, 0), phase: 0, want: time.Unix(1005, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := nextSlot(tc.now, tc.phase, iv); !got.Equal(tc.want) {
				t.Errorf("nextSlot = %v, want %v", got, tc.want)
			}
		})
	}
	// Phases spread over the interval and stay put for a key.
	if a1, a2 := phaseOf("a", iv), phaseOf("a", iv); a1 != a2 {
		t.Error("phase of a key is not stable")
	}
	var buckets [5]int
	for i := range 1000 {
		buckets[phaseOf(fmt.Sprint("svc/i-", i), iv)/time.Second]++
	}
	for i, n := range buckets {
		if n < 150 || n > 250 {
			t.Errorf("second %d of the interval has %d of 1000 phases, want about 200", i, n)
		}
	}
}
