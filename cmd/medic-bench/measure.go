package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux medic runs on).
const clockTick = 10 * time.Millisecond

// cpuOf returns the CPU time (user + system) process pid has used, read
// from /proc/PID/stat.
func cpuOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis are numbered from 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * clockTick, nil
}

// rssOf returns the resident memory of pid in bytes (VmRSS).
func rssOf(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// sample is what one look at a process from outside gives.
type sample struct {
	at  time.Time
	cpu time.Duration
	rss int64
}

func sampleOf(pid int) (sample, error) {
	s := sample{at: time.Now()}
	var err error
	if s.cpu, err = cpuOf(pid); err != nil {
		return s, err
	}
	s.rss, err = rssOf(pid)
	return s, err
}

// scrape is one read of medic's /metrics, summed the way the benchmarks
// need, and how long the read took.
type scrape struct {
	took                  time.Duration
	bytes                 int
	series                int                // sample lines
	probes, failed        float64            // medic_probes_total, all series; failure only
	skipped               float64            // medic_probe_skipped_total{reason="concurrency"}
	lateCount, lateOnTime float64            // medic_probe_lateness_seconds: _count, le="0.25"
	lateLE                map[string]float64 // medic_probe_lateness_seconds buckets, by le
	latencySum            float64            // medic_probe_latency_seconds_sum, all series
	goroutines            float64
	heapInuse             float64 // go_memstats_heap_inuse_bytes
	targets               float64 // medic_probe_targets
}

func scrapeMetrics(base string) (scrape, error) {
	s := scrape{lateLE: map[string]float64{}}
	t0 := time.Now()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return s, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.took = time.Since(t0)
	if err != nil {
		return s, err
	}
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/metrics: %s", resp.Status)
	}
	s.bytes = len(body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		s.series++
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name, v := line[:sp], line[sp+1:]
		val, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "medic_probes_total{"):
			s.probes += val
			if strings.Contains(name, `result="failure"`) {
				s.failed += val
			}
		case strings.HasPrefix(name, "medic_probe_skipped_total{") && strings.Contains(name, `reason="concurrency"`):
			s.skipped += val
		case name == "medic_probe_lateness_seconds_count":
			s.lateCount += val
		case strings.HasPrefix(name, "medic_probe_lateness_seconds_bucket{"):
			le := strings.TrimSuffix(strings.TrimPrefix(name, `medic_probe_lateness_seconds_bucket{le="`), `"}`)
			s.lateLE[le] += val
			if le == "0.25" {
				s.lateOnTime += val
			}
		case strings.HasPrefix(name, "medic_probe_latency_seconds_sum{"):
			s.latencySum += val
		case name == "go_goroutines":
			s.goroutines = val
		case name == "go_memstats_heap_inuse_bytes":
			s.heapInuse = val
		case strings.HasPrefix(name, "medic_probe_targets{"):
			s.targets += val
		}
	}
	return s, nil
}

// timeGet reads url whole and returns how long it took.
func timeGet(url string) (time.Duration, int, error) {
	t0 := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return time.Since(t0), int(n), err
}

// loopCount reads the plain loop's probe counts from its /count: every
// probe made, and those that failed.
func loopCount(base string) (probes, failed float64, err error) {
	resp, err := http.Get(base + "/count")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var ok, fail float64
	if _, err := fmt.Fscan(resp.Body, &ok, &fail); err != nil {
		return 0, 0, fmt.Errorf("/count: %w", err)
	}
	return ok + fail, fail, nil
}
