// Command medic-plainloop is the baseline medic's probe engine is measured
// against (make bench): the simplest program that makes the same probes —
// a fixed pool of workers taking targets in turn from a list and sending
// each one GET with net/http, no schedule, no history, no metrics library.
//
// It reads host:port targets, one a line, from --targets (loopback only:
// anything outside 127.0.0.0/8 is refused at start), and serves the count
// of probes made on --listen at /count ("<success> <failure>\n") so that
// it can be read from outside.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	targetsFile := flag.String("targets", "", "file of host:port targets, one a line (loopback only)")
	workers := flag.Int("workers", 64, "probes in flight at once")
	keepAlive := flag.Bool("keep-alive", false, "reuse connections (one idle connection per target address)")
	path := flag.String("path", "/", "path probed")
	listen := flag.String("listen", "127.0.0.1:0", "where /count is served; the address is printed on stdout")
	timeout := flag.Duration("timeout", time.Second, "timeout of one probe")
	debugPprof := flag.Bool("debug.pprof", false, "serve /debug/pprof/profile")
	flag.Parse()

	targets, err := readTargets(*targetsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "medic-plainloop:", err)
		return 2
	}
	urls := make([]string, len(targets))
	for i, t := range targets {
		urls[i] = "http://" + t + *path
	}

	tr := &http.Transport{
		DisableKeepAlives:   !*keepAlive,
		MaxIdleConns:        len(targets) + *workers,
		MaxIdleConnsPerHost: *workers,
		DialContext:         (&net.Dialer{KeepAlive: -1}).DialContext,
	}
	client := &http.Client{Transport: tr, Timeout: *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var ok, fail atomic.Int64
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "medic-plainloop:", err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d %d\n", ok.Load(), fail.Load())
	})
	if *debugPprof { // to compare its profile with medic's
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	go http.Serve(ln, mux)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var next atomic.Uint64
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				u := urls[next.Add(1)%uint64(len(urls))]
				if probe(ctx, client, u) {
					ok.Add(1)
				} else {
					fail.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return 0
}

// probe sends one GET and passes on a 2xx status, reading the body.
func probe(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}

// readTargets reads host:port lines, refusing any address outside
// 127.0.0.0/8.
func readTargets(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read targets: %w", err)
	}
	defer f.Close()
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(line)
		if err != nil || !loopback.Contains(ap.Addr()) {
			return nil, fmt.Errorf("target %q: not a 127.0.0.0/8 host:port", line)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read targets: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no targets in %s", name)
	}
	return out, nil
}
