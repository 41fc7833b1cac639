package main

import (
	"strings"
	"testing"
	"time"
)

// Each gap lands in the bucket whose bound is the first at or above it.
func TestGapBucket(t *testing.T) {
	for _, d := range []time.Duration{0, 500 * time.Microsecond, time.Millisecond, 1100 * time.Microsecond,
		1200 * time.Microsecond, 250 * time.Millisecond, time.Second, 9800 * time.Millisecond, time.Minute} {
		i := gapBucket(d)
		if d > gapBound(i)+time.Microsecond {
			t.Errorf("%v in bucket %d, whose bound is %v", d, i, gapBound(i))
		}
		if i > 0 && d <= gapBound(i-1)-time.Microsecond {
			t.Errorf("%v in bucket %d, but the bucket before (up to %v) holds it", d, i, gapBound(i-1))
		}
	}
	if i := gapBucket(time.Hour); i != gapBuckets-1 {
		t.Errorf("an hour in bucket %d, want the last, %d", i, gapBuckets-1)
	}
}

// The recorder tells the loop's requests from medic's by path, counts
// the gaps between one client's requests to one target, and reports the
// longest wait of a target not asked since.
func TestGapRecorder(t *testing.T) {
	var g gapRecorder
	a, b := g.target(), g.target()
	ms := int64(time.Millisecond)
	now := time.Now().UnixNano() - 10_000*ms
	for _, r := range []struct {
		t    *gapTarget
		path string
		at   int64
	}{
		{a, "/", 0}, {a, "/", 100}, {a, "/", 200}, {a, "/", 1200}, // medic: 100, 100, 1000 ms
		{b, "/", 50},                                            // medic: first request to b, no gap yet
		{a, loopPath, 0}, {a, loopPath, 300}, {b, loopPath, 10}, // loop: 300 ms on a
	} {
		g.seen(r.t, []byte(r.path), now+r.at*ms)
	}
	rep := g.report(true)
	m, l := rep[clientMedic], rep[clientLoop]
	if m.Sum != 1200*ms || m.Most != 1000*ms {
		t.Errorf("medic: sum %v, max %v; want 1.2s, 1s", time.Duration(m.Sum), time.Duration(m.Most))
	}
	if l.Sum != 300*ms || l.Most != 300*ms {
		t.Errorf("loop: sum %v, max %v; want 300ms, 300ms", time.Duration(l.Sum), time.Duration(l.Most))
	}
	// b was last asked by medic 50 ms in, a at 1.2 s: b has waited longest.
	if w := time.Duration(m.Wait); w < 9950*time.Millisecond || w > time.Minute {
		t.Errorf("medic's longest wait %v, want about 9.95 s", w)
	}
	s := m.summary() // p50: 100 ms, reported as its bucket's bound, 1.1^49 ms

	for _, want := range []string{"mean 400", "p50 107,", "max 1000,"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
	if after := g.report(false)[clientMedic]; after.Sum != 0 || after.Most != 0 || after.Wait == 0 {
		t.Errorf("after a reset: sum %d, max %d, wait %d; want 0, 0 and the wait kept", after.Sum, after.Most, after.Wait)
	}
}

func TestRequestPath(t *testing.T) {
	for line, want := range map[string]string{
		"GET /loop HTTP/1.1\r\n": "/loop",
		"GET / HTTP/1.1\r\n":     "/",
		"GET\r\n":                "",
	} {
		if got := string(requestPath([]byte(line))); got != want {
			t.Errorf("requestPath(%q) = %q, want %q", line, got, want)
		}
	}
}
