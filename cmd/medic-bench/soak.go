package main

import (
	"fmt"
	"strings"
	"time"
)

// soak runs medic for a long time on o.targets targets while, every
// o.churn, the targets come and go (a reload swaps between two sets with
// no target in common), sampling resident memory, the Go heap in use,
// goroutines and /metrics series every 10 s. It prints the slopes (least
// squares, per hour), the mean memory of each quarter, and the series
// count at the end of each phase of the same set, which must not grow.
func soak(o opts) error {
	n := orDefault(o.targets, 5000)
	dur := orDefault(o.duration, time.Hour)
	interval := o.interval
	srv, addrs, err := startServers(o.self, min(n, o.listeners))
	if err != nil {
		return err
	}
	defer srv.stop()
	o.interval = interval
	medic, base, cfg, _, err := idleMedic(o, addrs)
	if err != nil {
		return err
	}
	defer medic.stop()
	sets := [2]targetSet{spread(addrs, n, 0), spread(addrs, n, 500)}
	phase := 0
	apply := func() error {
		if err := writeConfig(cfg, sets[phase%2], interval, o.keepAlive, o.medicWorkers); err != nil {
			return err
		}
		return reload(base)
	}
	if err := apply(); err != nil {
		return err
	}
	if err := waitTargets(base, n); err != nil {
		return err
	}
	var ts, rss, heap, gor []float64
	var seriesA []int
	start := time.Now()
	nextChurn := start.Add(o.churn)
	for time.Since(start) < dur {
		time.Sleep(10 * time.Second)
		s, err := scrapeMetrics(base)
		if err != nil {
			return err
		}
		r, err := rssOf(medic.pid())
		if err != nil {
			return err
		}
		ts = append(ts, time.Since(start).Hours())
		rss = append(rss, mib(r))
		heap = append(heap, mib(int64(s.heapInuse)))
		gor = append(gor, s.goroutines)
		if time.Now().After(nextChurn) {
			if phase%2 == 0 {
				seriesA = append(seriesA, s.series)
			}
			phase++
			if err := apply(); err != nil {
				return err
			}
			nextChurn = time.Now().Add(o.churn)
		}
	}
	fmt.Printf("soak: %d targets at %s for %s, targets swapped every %s (%d swaps)\n", n, interval, dur, o.churn, phase)
	// The first quarter is warm-up (the heap grows to its GC goal); the
	// slopes that show a leak are those of the rest.
	w := len(ts) / 4
	fmt.Printf("  RSS %.1f -> %.1f MiB, slope %+.2f MiB/hour (after the first quarter: %+.2f MiB/hour)\n",
		rss[0], rss[len(rss)-1], slope(ts, rss), slope(ts[w:], rss[w:]))
	fmt.Printf("  mean of each quarter: RSS %s MiB; Go heap in use %s MiB\n", quarters(rss), quarters(heap))
	fmt.Printf("  goroutines %.0f -> %.0f, slope %+.1f /hour (after the first quarter: %+.1f /hour)\n",
		gor[0], gor[len(gor)-1], slope(ts, gor), slope(ts[w:], gor[w:]))
	fmt.Printf("  /metrics series at the end of each phase of set A: %v (must not grow)\n", seriesA)
	return nil
}

// quarters is the mean of each quarter of y, in order: a leak keeps
// rising from one to the next, a heap settling at its GC goal does not.
func quarters(y []float64) string {
	var out []string
	for q := range 4 {
		part := y[q*len(y)/4 : (q+1)*len(y)/4]
		if len(part) == 0 {
			continue
		}
		var sum float64
		for _, v := range part {
			sum += v
		}
		out = append(out, fmt.Sprintf("%.1f", sum/float64(len(part))))
	}
	return strings.Join(out, " / ")
}

// slope is the least-squares slope of y over x.
func slope(x, y []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	n := float64(len(x))
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
