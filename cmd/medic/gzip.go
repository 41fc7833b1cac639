package main

import (
	"compress/gzip"
	"net/http"
	"strings"
	"sync"
)

// gzipFast serves h's response gzipped at gzip.BestSpeed to a client that
// takes gzip (Prometheus asks for it). promhttp compresses at gzip's
// default level, which was half of the CPU of a scrape of 50,000 targets;
// at BestSpeed the text, repetitive as it is, still shrinks about tenfold.
func gzipFast(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
		if !acceptsGzip(r.Header.Values("Accept-Encoding")) {
			h.ServeHTTP(w, r)
			return
		}
		gz := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(gz)
		gz.Reset(w)
		w.Header().Set("Content-Encoding", "gzip")
		h.ServeHTTP(gzipResponse{ResponseWriter: w, gz: gz}, r)
		_ = gz.Close() // a write error is the client gone: nothing to tell it
	})
}

var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
	return gz
}}

// gzipResponse writes the body through gz. Content-Length, if the handler
// set one, is that of the uncompressed body: it is dropped.
type gzipResponse struct {
	http.ResponseWriter
	gz *gzip.Writer
}

func (g gzipResponse) Write(b []byte) (int, error) { return g.gz.Write(b) }

func (g gzipResponse) WriteHeader(code int) {
	g.Header().Del("Content-Length")
	g.ResponseWriter.WriteHeader(code)
}

// acceptsGzip reads Accept-Encoding values: gzip (or *) listed without
// q=0.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && coding != "*" {
				continue
			}
			if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok && strings.Trim(q, "0.") == "" {
				continue // q=0: refused
			}
			return true
		}
	}
	return false
}
