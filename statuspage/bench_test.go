package statuspage

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-kit/log"
)

// countingWriter is a ResponseWriter that keeps only the byte count, so the
// benchmark measures rendering, not a growing buffer.
type countingWriter struct {
	h http.Header
	n int64
}

func (c *countingWriter) Header() http.Header         { return c.h }
func (c *countingWriter) WriteHeader(int)             {}
func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkRender renders the page for one service with 10,000 instance
// targets (16 probe results each, 1% bad and refused) from a fake Source:
// "default" shows the worst DefaultMaxRows rows, "all" every row (?all=1).
// It reports ms per render and bytes per page.
func BenchmarkRender(b *testing.B) {
	const targets = 10000
	src := &fakeSource{sts: bigStatuses(targets)}
	h := New(src, log.NewNopLogger(), WithClock(func() time.Time { return testNow }))
	for _, bc := range []struct{ name, target string }{
		{"targets=10000/default", "/"},
		{"targets=10000/all", "/?all=1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.target, nil)
			var w *countingWriter
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				w = &countingWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/render")
			b.ReportMetric(float64(w.n), "bytes/page")
		})
	}
}
