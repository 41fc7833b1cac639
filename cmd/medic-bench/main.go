// Command medic-bench measures the built medic binary from outside, beside
// a plain net/http loop (cmd/medic-plainloop), against a loopback target
// server it starts itself. Every figure is read from outside the measured
// process: CPU from /proc/PID/stat, memory from /proc/PID/status, probes
// from medic's /metrics and the loop's /count. Traffic stays on 127.0.0.0/8.
//
//	medic-bench saturation [-targets 10240] [-keep-alive]   medic vs the loop, flat out
//	medic-bench schedule   [-targets 50000] [-interval 10s] [-duration 120s]
//	medic-bench scale      [-sizes 1000,10000,50000] [-rate 1000]
//	medic-bench soak       [-targets 5000] [-duration 1h] [-churn 1m]
//	medic-bench serve      [-listeners 1000]                 the target server alone
//
// make bench runs the first three; make soak the fourth.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

type opts struct {
	medic, loop, self string
	dir               string
	targets           int
	listeners         int
	offset            int
	keepAlive         bool
	loopWorkers       int
	medicWorkers      int
	warmup, measure   time.Duration
	interval          time.Duration
	duration          time.Duration
	churn             time.Duration
	sizes             string
	rate              int
	cpuProfile        string
	allocProfile      string
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: medic-bench saturation|schedule|scale|soak|serve [flags]")
		return 2
	}
	mode := args[0]
	var o opts
	fs := flag.NewFlagSet("medic-bench "+mode, flag.ContinueOnError)
	fs.StringVar(&o.medic, "medic", "bin/medic", "the medic binary")
	fs.StringVar(&o.loop, "loop", "bin/medic-plainloop", "the plain-loop baseline binary")
	fs.IntVar(&o.targets, "targets", 0, "targets (default per mode)")
	fs.IntVar(&o.listeners, "listeners", 0, "loopback listeners of the target servers (127.1.x.y); default one per target for saturation, 1000 otherwise")
	fs.IntVar(&o.offset, "offset", 0, "serve: the first listener's index")
	fs.BoolVar(&o.keepAlive, "keep-alive", false, "probe with keep-alive (medic and the loop)")
	fs.IntVar(&o.loopWorkers, "loop-workers", 64, "plain loop workers")
	fs.IntVar(&o.medicWorkers, "medic-workers", 0, "medic max_concurrent_probes (0: medic's default)")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up before measuring (default 5s; saturation with keep-alive 15s, so that every target's connection is open)")
	fs.DurationVar(&o.measure, "measure", 15*time.Second, "measuring window")
	fs.DurationVar(&o.interval, "interval", 0, "probe interval (default: saturation 1s, schedule and soak 10s)")
	fs.DurationVar(&o.duration, "duration", 0, "run length (schedule, soak)")
	fs.DurationVar(&o.churn, "churn", time.Minute, "soak: how often targets come and go")
	fs.StringVar(&o.sizes, "sizes", "1000,10000,50000", "scale: target counts")
	fs.IntVar(&o.rate, "rate", 1000, "scale: probes per second at every size (interval = targets / rate)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write medic's CPU profile over the measuring window here (saturation: the plain loop's beside it, in FILE.loop)")
	fs.StringVar(&o.allocProfile, "allocprofile", "", "write medic's allocation profile (since start) at the end of the measuring window here (needs --debug.pprof)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if mode == "serve" {
		return serve(orDefault(o.listeners, 1000), o.offset)
	}
	if mode != "saturation" {
		o.listeners = orDefault(o.listeners, 1000)
	}
	if mode == "saturation" {
		o.interval = orDefault(o.interval, time.Second)
	}
	o.interval = orDefault(o.interval, 10*time.Second)
	if mode == "saturation" && o.keepAlive {
		o.warmup = orDefault(o.warmup, 15*time.Second)
	}
	o.warmup = orDefault(o.warmup, 5*time.Second)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	o.self = self
	o.dir, err = os.MkdirTemp("", "medic-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(o.dir)
	switch mode {
	case "saturation":
		err = saturation(o)
	case "schedule":
		err = schedule(o)
	case "scale":
		err = scale(o)
	case "soak":
		err = soak(o)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "medic-bench:", err)
		return 1
	}
	return 0
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// medicArgs are the extra flags medic gets: the pprof endpoints when a
// profile is asked for.
func (o opts) medicArgs() []string {
	if o.cpuProfile != "" || o.allocProfile != "" {
		return []string{"--debug.pprof"}
	}
	return nil
}

// profile fetches medic's CPU profile over d into o.cpuProfile; run it in
// a goroutine at the start of the measuring window.
func (o opts) profile(base string, d time.Duration) chan error {
	return o.profileTo(o.cpuProfile, base, d)
}

// profileTo fetches the CPU profile over d of the program serving base
// into path (nothing when path is empty).
func (o opts) profileTo(path, base string, d time.Duration) chan error {
	done := make(chan error, 1)
	if path == "" {
		done <- nil
		return done
	}
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds())))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = f.ReadFrom(resp.Body)
		f.Close()
		done <- err
	}()
	return done
}

// allocs fetches medic's allocation profile into o.allocProfile.
func (o opts) allocs(base string) error {
	if o.allocProfile == "" {
		return nil
	}
	resp, err := http.Get(base + "/debug/pprof/allocs")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(o.allocProfile)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadFrom(resp.Body)
	return err
}

// saturation runs medic and the plain loop side by side on the same
// targets at a short interval (1 s: more than two cores can probe with a
// fresh connection each; with keep-alive use a shorter one, as make bench
// does, or medic's schedule caps it at targets/interval) — so both run
// flat out — and compares probes/s and CPU per probe, measured from
// outside over o.measure after o.warmup, and how evenly each program
// probes the targets (the time between one target's probes, as the target
// server saw it: gaps.go).
func saturation(o opts) error {
	n := orDefault(o.targets, 10240)
	srv, addrs, err := startServers(o.self, min(n, orDefault(o.listeners, n)))
	if err != nil {
		return err
	}
	defer srv.stop()
	ts := spread(addrs, n, 0)
	cfg := filepath.Join(o.dir, "medic.yml")
	if err := writeConfig(cfg, ts, o.interval, o.keepAlive, o.medicWorkers); err != nil {
		return err
	}
	medic, mbase, err := startMedic(o.medic, cfg, o.dir, o.medicArgs()...)
	if err != nil {
		return err
	}
	defer medic.stop()
	loop, lbase, err := startLoop(o.loop, o.dir, ts, o.loopWorkers, o.keepAlive, probeTimeout(o.interval), o.cpuProfile != "")
	if err != nil {
		return err
	}
	defer loop.stop()

	time.Sleep(o.warmup)
	if _, err := fetchGaps(srv, true); err != nil {
		return err
	}
	m0, l0, c0, err := satSample(medic, loop, mbase, lbase)
	if err != nil {
		return err
	}
	prof := o.profile(mbase, o.measure)
	lprof := o.profileTo(loopProfile(o.cpuProfile), lbase, o.measure)
	time.Sleep(o.measure)
	m1, l1, c1, err := satSample(medic, loop, mbase, lbase)
	if err != nil {
		return err
	}
	gaps, err := fetchGaps(srv, false)
	if err != nil {
		return err
	}
	if err := <-prof; err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := <-lprof; err != nil {
		return fmt.Errorf("plain loop's cpu profile: %w", err)
	}
	if err := o.allocs(mbase); err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	conn := "fresh connection per probe"
	if o.keepAlive {
		conn = "keep-alive"
	}
	secs := func(a, b sample) float64 { return b.at.Sub(a.at).Seconds() }
	mProbes, lProbes := c1.medic-c0.medic, c1.loop-c0.loop
	mRate, lRate := mProbes/secs(m0, m1), lProbes/secs(l0, l1)
	mCPU := (m1.cpu - m0.cpu).Seconds() * 1000 / mProbes
	lCPU := (l1.cpu - l0.cpu).Seconds() * 1000 / lProbes
	fmt.Printf("saturation: %d targets at %s, timeout %s (%d listeners), %s, loop %d workers, medic max_concurrent_probes %s; "+
		"%s after %s warm-up, both side by side\n", n, o.interval, probeTimeout(o.interval), len(addrs), conn, o.loopWorkers,
		workersWord(o.medicWorkers), o.measure, o.warmup)
	fmt.Printf("  %-11s %10s %14s %9s\n", "", "probes/s", "CPU ms/probe", "RSS MiB")
	fmt.Printf("  %-11s %10.0f %14.3f %9.1f\n", "plain loop", lRate, lCPU, mib(l1.rss))
	fmt.Printf("  %-11s %10.0f %14.3f %9.1f\n", "medic", mRate, mCPU, mib(m1.rss))
	fmt.Printf("  %-11s %9.2fx %13.2fx    (targets: throughput >= 0.90x, CPU/probe <= 1.20x)\n",
		"medic/loop", mRate/lRate, mCPU/lCPU)
	fmt.Printf("  probes failed in the window: medic %.0f of %.0f, plain loop %.0f of %.0f\n",
		c1.medicFailed-c0.medicFailed, mProbes, c1.loopFailed-c0.loopFailed, lProbes)
	fmt.Printf("  time between one target's probes, ms (at the target server):\n")
	for c, g := range gaps {
		fmt.Printf("    %-11s %s\n", clientNames[c], g.summary())
	}
	return nil
}

// loopProfile is where the plain loop's CPU profile goes beside medic's
// (path.loop); none without medic's.
func loopProfile(path string) string {
	if path == "" {
		return ""
	}
	return path + ".loop"
}

func satSample(medic, loop *proc, mbase, lbase string) (m, l sample, c satCounts, err error) {
	if m, err = sampleOf(medic.pid()); err != nil {
		return
	}
	s, err := scrapeMetrics(mbase)
	if err != nil {
		return
	}
	c.medic, c.medicFailed = s.probes, s.failed
	if l, err = sampleOf(loop.pid()); err != nil {
		return
	}
	c.loop, c.loopFailed, err = loopCount(lbase)
	return
}

// satCounts are the probe counters of both programs at one satSample:
// every probe made, and those that failed.
type satCounts struct{ medic, medicFailed, loop, loopFailed float64 }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// idleMedic starts medic on one target, waits for it to settle, and
// returns it with its resident memory then: the idle baseline the memory
// per target is measured above.
func idleMedic(o opts, addrs []string) (*proc, string, string, int64, error) {
	cfg := filepath.Join(o.dir, "medic.yml")
	if err := writeConfig(cfg, spread(addrs[:1], 1, 0), o.interval, o.keepAlive, o.medicWorkers); err != nil {
		return nil, "", "", 0, err
	}
	medic, base, err := startMedic(o.medic, cfg, o.dir, o.medicArgs()...)
	if err != nil {
		return nil, "", "", 0, err
	}
	time.Sleep(3 * time.Second)
	idle, err := rssOf(medic.pid())
	if err != nil {
		medic.stop()
		return nil, "", "", 0, err
	}
	return medic, base, cfg, idle, nil
}

// load gives the idle medic at base n targets over addrs by a reload, waits
// until it schedules them all, and then for one interval and the warm-up,
// so that every target is past its first slot.
func (o opts) load(base, cfg string, addrs []string, n int) error {
	if err := writeConfig(cfg, spread(addrs, n, 0), o.interval, o.keepAlive, o.medicWorkers); err != nil {
		return err
	}
	if err := reload(base); err != nil {
		return err
	}
	if err := waitTargets(base, n); err != nil {
		return fmt.Errorf("medic never scheduled %d targets: %w", n, err)
	}
	time.Sleep(o.interval + o.warmup)
	return nil
}

// loaded starts medic idle (measuring its resident memory), loads it with
// n targets over addrs, and returns it with the opening scrape and sample
// of the measuring window.
func (o opts) loaded(addrs []string, n int) (medic *proc, base string, idle int64, s0 scrape, c0 sample, err error) {
	medic, base, cfg, idle, err := idleMedic(o, addrs)
	if err != nil {
		return nil, "", 0, s0, c0, err
	}
	if err = o.load(base, cfg, addrs, n); err == nil {
		s0, err = scrapeMetrics(base)
	}
	if err != nil {
		medic.stop()
		return nil, "", 0, s0, c0, err
	}
	c0, _ = sampleOf(medic.pid())
	return medic, base, idle, s0, c0, nil
}

// schedule loads medic with many targets at an ordinary interval and
// checks that it keeps time: the share of probes started within 250 ms of
// their slot (skipped slots count as late), resident memory above idle per
// target, and how long /metrics and the status page take.
func schedule(o opts) error {
	n := orDefault(o.targets, 50000)
	dur := orDefault(o.duration, 120*time.Second)
	srv, addrs, err := startServers(o.self, min(n, o.listeners))
	if err != nil {
		return err
	}
	defer srv.stop()
	medic, base, idle, s0, c0, err := o.loaded(addrs, n)
	if err != nil {
		return err
	}
	defer medic.stop()
	prof := o.profile(base, min(dur, 30*time.Second))
	var scrapes, pages []time.Duration
	var scrapeBytes, pageBytes int
	var peak int64
	end := time.Now().Add(dur)
	for i := 0; time.Now().Before(end); i++ {
		time.Sleep(min(10*time.Second, time.Until(end)))
		if r, err := rssOf(medic.pid()); err == nil {
			peak = max(peak, r)
		}
		if i%3 == 1 {
			if s, err := scrapeMetrics(base); err == nil {
				scrapes = append(scrapes, s.took)
				scrapeBytes = s.bytes
			}
			if d, nb, err := timeGet(base + "/"); err == nil {
				pages = append(pages, d)
				pageBytes = nb
			}
		}
	}
	// CPU is read before the closing scrape, after the opening one: the
	// window holds no scrape of its own (the timed ones above are medic's
	// work too, and stay in).
	c1, _ := sampleOf(medic.pid())
	s1, err := scrapeMetrics(base)
	if err != nil {
		return err
	}
	if err := <-prof; err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	started := s1.lateCount - s0.lateCount
	skipped := s1.skipped - s0.skipped
	onTime := 100 * (s1.lateOnTime - s0.lateOnTime) / (started + skipped)
	probes := s1.probes - s0.probes
	fmt.Printf("schedule: %d targets at %s, %s measured after %s\n", n, o.interval, dur, o.interval+o.warmup)
	fmt.Printf("  probes %.0f (%.0f/s, %.0f failed), slots skipped %.0f\n", probes, probes/c1.at.Sub(c0.at).Seconds(), s1.failed-s0.failed, skipped)
	fmt.Printf("  started within 250 ms of slot: %.2f%%   (target >= 99%%)\n", onTime)
	// Where lateness comes from: the lateness buckets, and the workers
	// the probes kept busy (probes/s × mean probe duration, Little's law)
	// against the pool.
	fmt.Printf("  lateness, share of probes started within: %s\n", lateShares(s0, s1))
	rate := probes / c1.at.Sub(c0.at).Seconds()
	meanDur := (s1.latencySum - s0.latencySum) / probes
	fmt.Printf("  mean probe duration %.1f ms: %.0f workers busy on average of max_concurrent_probes %d\n",
		meanDur*1000, rate*meanDur, cmp.Or(o.medicWorkers, 512))
	fmt.Printf("  RSS idle %.1f MiB, loaded %.1f MiB (peak %.1f): %.0f B/target above idle   (target <= 4096)\n",
		mib(idle), mib(c1.rss), mib(peak), float64(c1.rss-idle)/float64(n))
	fmt.Printf("  CPU %.3f ms/probe (%.0f%% of one core)\n", (c1.cpu-c0.cpu).Seconds()*1000/probes,
		100*(c1.cpu-c0.cpu).Seconds()/c1.at.Sub(c0.at).Seconds())
	fmt.Printf("  /metrics scrape: %s (%d KiB, %d series)   (target <= 500ms)\n", durs(scrapes), scrapeBytes>>10, s1.series)
	fmt.Printf("  status page:     %s (%d KiB)   (target <= 200ms)\n", durs(pages), pageBytes>>10)
	return nil
}

// lateShares prints the cumulative share of probes started within each
// lateness bucket bound between the two scrapes.
func lateShares(s0, s1 scrape) string {
	total := s1.lateCount - s0.lateCount
	if total <= 0 {
		return "no probes"
	}
	les := slices.Collect(maps.Keys(s1.lateLE))
	slices.SortFunc(les, func(a, b string) int {
		x, _ := strconv.ParseFloat(a, 64)
		y, _ := strconv.ParseFloat(b, 64)
		return cmp.Compare(x, y)
	})
	var out []string
	for _, le := range les {
		if le == "+Inf" {
			continue
		}
		out = append(out, fmt.Sprintf("%ss %.1f%%", le, 100*(s1.lateLE[le]-s0.lateLE[le])/total))
	}
	return strings.Join(out, ", ")
}

func durs(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Round(time.Millisecond).String())
	}
	return strings.Join(s, ", ")
}

// scale runs medic at each size with the same probe rate (interval =
// targets / rate), so CPU per probe and memory per target should not
// depend on the size.
func scale(o opts) error {
	var sizes []int
	for f := range strings.SplitSeq(o.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-sizes: %q", f)
		}
		sizes = append(sizes, n)
	}
	measure := orDefault(o.measure, 30*time.Second)
	srv, addrs, err := startServers(o.self, o.listeners)
	if err != nil {
		return err
	}
	defer srv.stop()
	// Each size is measured twice, the sizes in order and then in reverse
	// (1k, 10k, 50k, 50k, 10k, 1k), and its two measurements summed: a
	// machine whose speed drifts during the run then weighs on every size
	// alike instead of on the last one.
	type row struct {
		n                      int
		interval               time.Duration
		secs, probes, cpu, rss float64   // summed over the passes
		passes                 []float64 // CPU ms per probe of each pass
	}
	rows := make([]row, len(sizes))
	for _, i := range passOrder(len(sizes)) {
		n := sizes[i]
		o := o
		o.interval = time.Duration(float64(n) / float64(o.rate) * float64(time.Second))
		medic, base, idle, s0, c0, err := o.loaded(addrs, n)
		if err != nil {
			return fmt.Errorf("%d targets: %w", n, err)
		}
		err = func() error {
			defer medic.stop()
			time.Sleep(measure)
			c1, _ := sampleOf(medic.pid()) // before the scrape: see schedule
			s1, err := scrapeMetrics(base)
			if err != nil {
				return err
			}
			r := &rows[i]
			probes, cpu := s1.probes-s0.probes, (c1.cpu-c0.cpu).Seconds()*1000
			r.n, r.interval = n, o.interval
			r.secs += c1.at.Sub(c0.at).Seconds()
			r.probes += probes
			r.cpu += cpu
			r.rss += float64(c1.rss - idle)
			r.passes = append(r.passes, cpu/probes)
			return nil
		}()
		if err != nil {
			return fmt.Errorf("%d targets: %w", n, err)
		}
	}
	fmt.Printf("scale: same probe rate (%d/s) at every size, %s measured after one interval + %s, "+
		"each size twice (in order, then in reverse)\n", o.rate, measure, o.warmup)
	// RSS above idle also holds what the probe rate costs whatever the
	// size (garbage between collections, workers): the marginal column,
	// the growth from the previous size per target added, leaves it out.
	fmt.Printf("  %8s %9s %9s %14s %16s %14s %18s\n", "targets", "interval", "probes/s", "CPU ms/probe", "(each pass)", "RSS B/target", "marginal B/target")
	lo, hi := [3]float64{1e18, 1e18, 1e18}, [3]float64{}
	perTarg := func(r row) float64 { return r.rss / float64(len(r.passes)) / float64(r.n) }
	for i, r := range rows {
		marginal := "-"
		if i > 0 {
			p := rows[i-1]
			m := (perTarg(r)*float64(r.n) - perTarg(p)*float64(p.n)) / float64(r.n-p.n)
			marginal = fmt.Sprintf("%.0f", m)
			lo[2], hi[2] = min(lo[2], m), max(hi[2], m)
		}
		cpu := r.cpu / r.probes
		passes := make([]string, len(r.passes))
		for j, c := range r.passes {
			passes[j] = fmt.Sprintf("%.3f", c)
		}
		fmt.Printf("  %8d %9s %9.0f %14.3f %16s %14.0f %18s\n", r.n, r.interval, r.probes/r.secs, cpu,
			"("+strings.Join(passes, ", ")+")", perTarg(r), marginal)
		lo[0], hi[0] = min(lo[0], cpu), max(hi[0], cpu)
		lo[1], hi[1] = min(lo[1], perTarg(r)), max(hi[1], perTarg(r))
	}
	fmt.Printf("  spread (max/min): CPU/probe %.2fx, memory/target %.2fx, marginal memory/target %.2fx   (target: flat within 20%%, <= 1.20x)\n",
		hi[0]/lo[0], hi[1]/lo[1], hi[2]/lo[2])
	fmt.Println("  (memory/target at the smallest size carries the fixed cost of the probe rate; the marginal column is what each target adds)")
	return nil
}

// passOrder is the order scale measures n sizes in: each once in order,
// then each again in reverse.
func passOrder(n int) []int {
	out := make([]int, 0, 2*n)
	for i := range n {
		out = append(out, i)
	}
	for i := n - 1; i >= 0; i-- {
		out = append(out, i)
	}
	return out
}

func workersWord(n int) string {
	if n == 0 {
		return "default (512)"
	}
	return strconv.Itoa(n)
}
