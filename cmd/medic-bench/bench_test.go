package main

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestSlope(t *testing.T) {
	rows := []struct {
		desc string
		x, y []float64
		want float64
	}{
		{desc: "no points", want: 0},
		{desc: "one point", x: []float64{1}, y: []float64{5}, want: 0},
		{desc: "flat", x: []float64{0, 1, 2}, y: []float64{3, 3, 3}, want: 0},
		{desc: "rising 2 per unit", x: []float64{0, 1, 2, 3}, y: []float64{1, 3, 5, 7}, want: 2},
		{desc: "all x equal: no slope", x: []float64{1, 1}, y: []float64{1, 2}, want: 0},
	}
	for _, r := range rows {
		if got := slope(r.x, r.y); math.Abs(got-r.want) > 1e-9 {
			t.Errorf("%s: slope = %v, want %v", r.desc, got, r.want)
		}
	}
}

// Targets are spread over the addresses in services that never list an
// address twice; two sets with different offsets share no service name.
func TestSpreadAndConfig(t *testing.T) {
	addrs := []string{"127.1.1.1:1", "127.1.1.2:1", "127.1.1.3:1"}
	rows := []struct {
		desc  string
		n     int
		sizes []int
	}{
		{desc: "fewer targets than addresses", n: 2, sizes: []int{2}},
		{desc: "exactly the addresses", n: 3, sizes: []int{3}},
		{desc: "one more: a second service", n: 4, sizes: []int{3, 1}},
	}
	for _, r := range rows {
		ts := spread(addrs, r.n, 0)
		var sizes []int
		for _, s := range ts.services {
			sizes = append(sizes, len(s))
		}
		if ts.count() != r.n || len(sizes) != len(r.sizes) || sizes[0] != r.sizes[0] {
			t.Errorf("%s: services of %v, want %v", r.desc, sizes, r.sizes)
		}
	}
	path := t.TempDir() + "/medic.yml"
	if err := writeConfig(path, spread(addrs, 4, 500), 0, false, 0); err == nil {
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), "name: bench-500") || !strings.Contains(string(b), "name: bench-501") {
			t.Errorf("config lacks the offset service names:\n%s", b)
		}
	}
}

// The benchmark reads its own process the way it reads medic's.
func TestProcSelf(t *testing.T) {
	s, err := sampleOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.cpu < 0 || s.rss <= 0 {
		t.Errorf("sample of self = %+v", s)
	}
}

// The plain loop's /count is "ok failed": loopCount returns every probe
// made and those that failed, and refuses anything else.
func TestLoopCount(t *testing.T) {
	rows := []struct {
		body           string
		probes, failed float64
		wantErr        bool
	}{
		{"5 2\n", 7, 2, false},
		{"0 0\n", 0, 0, false},
		{"12\n", 0, 0, true},
		{"not a count\n", 0, 0, true},
	}
	for _, r := range rows {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, r.body)
		}))
		probes, failed, err := loopCount(srv.URL)
		srv.Close()
		if (err != nil) != r.wantErr || probes != r.probes || failed != r.failed {
			t.Errorf("loopCount(%q) = %v, %v, %v; want %v, %v, error %v", r.body, probes, failed, err, r.probes, r.failed, r.wantErr)
		}
	}
}

func TestQuarters(t *testing.T) {
	rows := []struct {
		y    []float64
		want string
	}{
		{[]float64{1, 1, 2, 2, 3, 3, 4, 4}, "1.0 / 2.0 / 3.0 / 4.0"},
		{[]float64{1, 2, 3, 4, 5}, "1.0 / 2.0 / 3.0 / 4.5"},
		{[]float64{7, 9}, "7.0 / 9.0"}, // quarters of no sample are left out
		{nil, ""},
	}
	for _, r := range rows {
		if got := quarters(r.y); got != r.want {
			t.Errorf("quarters(%v) = %q, want %q", r.y, got, r.want)
		}
	}
}

// scale measures every size twice, in order then in reverse, so that a
// drift of the machine's speed weighs on each size alike.
func TestPassOrder(t *testing.T) {
	for n, want := range map[int][]int{0: {}, 1: {0, 0}, 3: {0, 1, 2, 2, 1, 0}} {
		if got := passOrder(n); !slices.Equal(got, want) {
			t.Errorf("passOrder(%d) = %v, want %v", n, got, want)
		}
	}
}
