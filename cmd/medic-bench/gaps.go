package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// The target server records, per listener (one target each in
// saturation), the time between one client's requests: the plain loop's
// (it asks for loopPath) apart from medic's (any other path). A program
// that probes some targets often and leaves others waiting shows it here,
// measured from outside, where its mean rate would not.

// loopPath is the path the plain loop probes, telling its requests from
// medic's at the target server.
const loopPath = "/loop"

const (
	clientMedic = iota
	clientLoop
	clients
)

var clientNames = [clients]string{"medic", "plain loop"}

// gapBuckets are log-spaced: bucket i holds gaps up to gapBound(i), 10%
// apart from 1 ms (the first holds everything below) to about 3 minutes.
const gapBuckets = 128

func gapBound(i int) time.Duration {
	return time.Duration(float64(time.Millisecond) * math.Pow(1.1, float64(i)))
}

func gapBucket(d time.Duration) int {
	if d <= time.Millisecond {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(time.Millisecond)) / math.Log(1.1)))
	return min(i, gapBuckets-1)
}

// gapHist is one client's gaps since the last reset.
type gapHist struct {
	counts    [gapBuckets]atomic.Int64
	sum, most atomic.Int64 // nanoseconds
}

func (h *gapHist) add(d time.Duration) {
	h.counts[gapBucket(d)].Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.most.Load()
		if int64(d) <= m || h.most.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *gapHist) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.sum.Store(0)
	h.most.Store(0)
}

// gapRecorder is a server process's record.
type gapRecorder struct {
	hist    [clients]gapHist
	targets []*gapTarget
}

// gapTarget is one listener's last request from each client (UnixNano).
type gapTarget struct{ last [clients]atomic.Int64 }

func (g *gapRecorder) target() *gapTarget {
	t := &gapTarget{}
	g.targets = append(g.targets, t)
	return t
}

// seen records a request for path on t now.
func (g *gapRecorder) seen(t *gapTarget, path []byte, now int64) {
	c := clientMedic
	if string(path) == loopPath {
		c = clientLoop
	}
	if prev := t.last[c].Swap(now); prev != 0 {
		g.hist[c].add(time.Duration(now - prev))
	}
}

// gapReport is what /gaps answers: per client, the bucket counts and the
// sum and largest of the gaps since the last reset, and the longest any
// target has been waiting since its last request (a target left waiting
// has no gap to count yet).
type gapReport struct {
	Counts []int64 `json:"counts"`
	Sum    int64   `json:"sum_ns"`
	Most   int64   `json:"max_ns"`
	Wait   int64   `json:"wait_ns"`
}

func (g *gapRecorder) report(reset bool) [clients]gapReport {
	var out [clients]gapReport
	now := time.Now().UnixNano()
	for c := range out {
		h := &g.hist[c]
		r := gapReport{Counts: make([]int64, gapBuckets), Sum: h.sum.Load(), Most: h.most.Load()}
		for i := range h.counts {
			r.Counts[i] = h.counts[i].Load()
		}
		for _, t := range g.targets {
			if l := t.last[c].Load(); l != 0 {
				r.Wait = max(r.Wait, now-l)
			}
		}
		if reset {
			h.reset()
		}
		out[c] = r
	}
	return out
}

// serveGaps answers GET /gaps (?reset=1 starts a new window) on a
// loopback port of its own and returns its address.
func (g *gapRecorder) serveGaps() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/gaps", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(g.report(r.URL.Query().Get("reset") != ""))
	})
	go http.Serve(l, mux)
	return l.Addr().String(), nil
}

// fetchGaps reads (and with reset, restarts) the gaps of every server.
func fetchGaps(ss servers, reset bool) ([clients]gapReport, error) {
	var all [clients]gapReport
	for c := range all {
		all[c].Counts = make([]int64, gapBuckets)
	}
	for _, p := range ss {
		url := "http://" + p.stats + "/gaps"
		if reset {
			url += "?reset=1"
		}
		resp, err := http.Get(url)
		if err != nil {
			return all, fmt.Errorf("target server gaps: %w", err)
		}
		var r [clients]gapReport
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			return all, fmt.Errorf("target server gaps: %w", err)
		}
		for c := range all {
			for i, n := range r[c].Counts {
				all[c].Counts[i] += n
			}
			all[c].Sum += r[c].Sum
			all[c].Most = max(all[c].Most, r[c].Most)
			all[c].Wait = max(all[c].Wait, r[c].Wait)
		}
	}
	return all, nil
}

// summary is one client's line: the mean, quantiles (bucket bounds, so
// within 10%, and at most the largest) and largest gap, and the longest
// wait at the end.
func (r gapReport) summary() string {
	var n int64
	for _, c := range r.Counts {
		n += c
	}
	if n == 0 {
		return "no gaps recorded"
	}
	q := func(p float64) time.Duration {
		want, seen := int64(math.Ceil(p*float64(n))), int64(0)
		for i, c := range r.Counts {
			if seen += c; seen >= want {
				return min(gapBound(i), time.Duration(r.Most))
			}
		}
		return time.Duration(r.Most)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }
	return strings.Join([]string{
		"mean " + ms(time.Duration(r.Sum/n)),
		"p50 " + ms(q(0.5)), "p90 " + ms(q(0.9)), "p99 " + ms(q(0.99)),
		"max " + ms(time.Duration(r.Most)), "waiting at the end " + ms(time.Duration(r.Wait)) + " ms",
	}, ", ")
}
