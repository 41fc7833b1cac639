package probes

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/gather"
)

// Benchmarks only talk to 127.0.0.0/8: every listener and every target is
// a loopback address.

var minimalResponse = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

// startMinimalServers listens on 127.0.<third>.1 .. 127.0.<third>.n with a
// bare HTTP/1.1 responder (cheaper than net/http, so the figures are
// mostly the client's) and returns the host:port addresses.
func startMinimalServers(b *testing.B, third, n int) []string {
	b.Helper()
	var addrs []string
	for i := 1; i <= n; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.%d:0", third, i))
		if err != nil {
			b.Skipf("cannot listen on loopback alias: %v", err)
		}
		b.Cleanup(func() { l.Close() })
		addrs = append(addrs, l.Addr().String())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go serveMinimal(c)
			}
		}()
	}
	return addrs
}

func serveMinimal(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var buf [1024]byte
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			c.Write(minimalResponse)
			return
		}
		if err != nil {
			return
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drive runs probe(i) for i in [0, n) on workers goroutines and returns the
// process CPU time and wall time it took (GC of its garbage included) and
// the failures.
func drive(n, workers int, probe func(i int) bool) (cpu, wall time.Duration, failed int64) {
	runtime.GC()
	var next, fails atomic.Int64
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if !probe(i) {
					fails.Add(1)
				}
			}
		})
	}
	wg.Wait()
	wall = time.Since(t0)
	runtime.GC()
	return cpuTime() - cpu0, wall, fails.Load()
}

// BenchmarkSaturation compares the medic HTTP prober at full speed, fresh
// connection per probe, with a plain net/http loop doing the same requests
// (DisableKeepAlives client) at the same concurrency. CPU is the whole
// process's, so it includes the in-process responders' share on both
// sides.
func BenchmarkSaturation(b *testing.B) {
	const workers = 8
	addrs := startMinimalServers(b, 1, 8)
	targets := make([]Target, len(addrs))
	urls := make([]string, len(addrs))
	for i, a := range addrs {
		targets[i] = Target{Key: a, Service: "bench", Address: a, Settings: probeSettings(func(p *config.Probe) {
			p.Timeout = config.Duration(5 * time.Second)
		})}
		urls[i] = "http://" + a + "/"
	}
	ctx := context.Background()
	nop := log.NewNopLogger()
	medic := func(i int) bool { return probeHTTP(ctx, targets[i%len(targets)], nop).Success }
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	plain := func(i int) bool {
		resp, err := client.Get(urls[i%len(urls)])
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}

	// Alternate halves so drift (other load on the machine) hits both.
	var mCPU, mWall, pCPU, pWall time.Duration
	var mFail, pFail int64
	half := max(b.N/2, 1)
	b.ResetTimer()
	for range 2 {
		c, w, f := drive(half, workers, medic)
		mCPU, mWall, mFail = mCPU+c, mWall+w, mFail+f
		c, w, f = drive(half, workers, plain)
		pCPU, pWall, pFail = pCPU+c, pWall+w, pFail+f
	}
	b.StopTimer()
	if mFail+pFail > 0 {
		b.Errorf("failed probes: medic %d, net/http %d", mFail, pFail)
	}
	n := float64(2 * half)
	mRate, pRate := n/mWall.Seconds(), n/pWall.Seconds()
	mPerK, pPerK := mCPU.Seconds()/n*1000, pCPU.Seconds()/n*1000
	b.ReportMetric(mRate, "medic-probes/s")
	b.ReportMetric(pRate, "nethttp-probes/s")
	b.ReportMetric(mPerK, "medic-cpu-s/1000probes")
	b.ReportMetric(pPerK, "nethttp-cpu-s/1000probes")
	b.ReportMetric(mPerK/pPerK, "cpu-ratio")
	b.ReportMetric(mRate/pRate, "rate-ratio")
	b.Logf("N=%d per side, %d workers: medic %.0f probes/s, %.3f CPU-s/1000; net/http %.0f probes/s, %.3f CPU-s/1000; CPU ratio %.2f, rate ratio %.2f",
		int(n), workers, mRate, mPerK, pRate, pPerK, mPerK/pPerK, mRate/pRate)
}

func vmRSS(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkSchedule runs 10,000 targets at a 5s interval for
// MEDIC_BENCH_SCHEDULE_SECONDS (default 60) and reports how many probes
// started within 250ms of their slot (skipped slots count as late), the
// resident memory per target above idle, and the time to scrape /metrics.
// It runs once whatever b.N is.
func BenchmarkSchedule(b *testing.B) {
	const (
		nTargets  = 10000
		interval  = 5 * time.Second
		onTime    = 250 * time.Millisecond
		listeners = 100
	)
	secs := 60
	if v := os.Getenv("MEDIC_BENCH_SCHEDULE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("MEDIC_BENCH_SCHEDULE_SECONDS=%q: want a positive number of seconds", v)
		}
		secs = n
	}
	addrs := startMinimalServers(b, 2, listeners)

	// Lateness in 1ms buckets, allocated before the idle reading.
	var late [1001]atomic.Int64
	var results, failures atomic.Int64
	onResult := func(_ Target, r Result) {
		results.Add(1)
		if !r.Success {
			failures.Add(1)
		}
		late[min(max(r.Lateness.Milliseconds(), 0), 1000)].Add(1)
	}

	debug.FreeOSMemory()
	idle := vmRSS(b)
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)

	reg := prometheus.NewRegistry()
	s := NewScheduler(Options{MaxConcurrent: 512, Registerer: reg, OnResult: onResult})
	settings := probeSettings(func(p *config.Probe) {
		p.Interval = config.Duration(interval)
		p.Timeout = config.Duration(time.Second)
	})
	targets := make([]Target, nTargets)
	for i := range targets {
		targets[i] = Target{
			Key:        fmt.Sprintf("svc%d/i-%08x", i%10, i),
			Service:    fmt.Sprintf("svc%d", i%10),
			InstanceID: fmt.Sprintf("i-%08x", i),
			AZ:         fmt.Sprintf("eu-west-1%c", 'a'+i%3),
			Address:    addrs[i%listeners],
			Settings:   settings,
		}
	}
	b.ResetTimer()
	s.Update(targets)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	time.Sleep(time.Duration(secs) * time.Second)

	debug.FreeOSMemory()
	rss := vmRSS(b)
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)

	// Scrape while probing, as Prometheus would.
	h := promhttp.HandlerFor(gather.Merge(reg, s), promhttp.HandlerOpts{})
	const scrapes = 5
	var scrapeTotal time.Duration
	var scrapeBytes int
	for range scrapes {
		rec := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		scrapeTotal += time.Since(t0)
		scrapeBytes = rec.Body.Len()
		if rec.Code != http.StatusOK {
			b.Fatalf("scrape: status %d", rec.Code)
		}
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	skipped := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "medic_probe_skipped_total" {
			for _, m := range mf.GetMetric() {
				skipped += m.GetCounter().GetValue()
			}
		}
	}
	var within, p99 int64
	started := results.Load()
	for ms := range late {
		if time.Duration(ms)*time.Millisecond < onTime {
			within += late[ms].Load()
		}
	}
	var cum int64
	for ms := range late {
		cum += late[ms].Load()
		if float64(cum) >= 0.99*float64(started) {
			p99 = int64(ms)
			break
		}
	}
	slots := float64(started) + skipped
	pct := 100 * float64(within) / slots
	rssPer := float64(rss-idle) / nTargets
	heapPer := float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / nTargets
	scrapeMs := scrapeTotal.Seconds() * 1000 / scrapes

	b.ReportMetric(pct, "%on-time")
	b.ReportMetric(float64(p99), "p99-lateness-ms")
	b.ReportMetric(rssPer, "rss-B/target")
	b.ReportMetric(heapPer, "heap-B/target")
	b.ReportMetric(scrapeMs, "scrape-ms")
	b.ReportMetric(float64(started)/float64(secs), "probes/s")
	b.Logf("%d targets, %v interval, %ds: %d probes (%d failed), %.0f slots skipped; %.2f%% started within %v of their slot, p99 lateness <= %dms",
		nTargets, interval, secs, started, failures.Load(), skipped, pct, onTime, p99)
	b.Logf("memory above idle: RSS %.1f MiB (%.0f B/target), heap %.1f MiB (%.0f B/target)",
		float64(rss-idle)/(1<<20), rssPer, float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/(1<<20), heapPer)
	b.Logf("scrape /metrics: %.1f ms (mean of %d), %d KiB", scrapeMs, scrapes, scrapeBytes>>10)
}

// BenchmarkScrape times one /metrics scrape (promhttp, text format, no
// compression) of a scheduler holding 50,000 probed targets, served as
// medic serves it: the registry's families merged with the scheduler's
// (gather.Merge). The per-target gauges dominate. Diagnostic for the
// schedule figure in make bench; reports the wall clock and the CPU of a
// scrape.
func BenchmarkScrape(b *testing.B) {
	const n = 50000
	reg := prometheus.NewRegistry()
	s := NewScheduler(Options{Registerer: reg})
	ts := make([]Target, n)
	for i := range ts {
		addr := fmt.Sprintf("127.1.%d.%d:8080", i/250, i%250)
		ts[i] = Target{Key: fmt.Sprintf("svc-%02d/static/%s", i/1000, addr), Service: fmt.Sprintf("svc-%02d", i/1000),
			Address: addr, Settings: probeSettings()}
	}
	s.Update(ts)
	s.mu.Lock()
	for _, e := range s.entries {
		e.hist[0] = record{start: time.Now().UnixNano(), duration: 1000, success: true}
		e.n = 1
	}
	s.mu.Unlock()
	h := promhttp.HandlerFor(gather.Merge(reg, s), promhttp.HandlerOpts{Registry: reg})
	runtime.GC()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scrape")
	// CPU (the process's, GC included) varies less than the wall clock
	// on a machine running other work.
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/scrape")
}
