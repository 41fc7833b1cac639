package probes

import (
	"github.com/medic-sre/medic/internal/testkit"

	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, timeout, what, cond)
}

// probeSettings returns what config.Load would fill in, changed by mods.
func probeSettings(mods ...func(*config.Probe)) *config.Probe {
	p := &config.Probe{
		Type:         "http",
		Scheme:       "http",
		Path:         "/",
		Method:       http.MethodGet,
		Interval:     config.Duration(2 * time.Second),
		Timeout:      config.Duration(time.Second),
		ExpectStatus: []config.StatusRange{{Low: 200, High: 299}},
		MaxBodyBytes: 64 << 10,
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func prefixes(t *testing.T, ss ...string) []config.Prefix {
	t.Helper()
	var out []config.Prefix
	for _, s := range ss {
		out = append(out, config.Prefix{Prefix: netip.MustParsePrefix(s)})
	}
	return out
}

func mustRegexp(s string) *config.Regexp {
	return &config.Regexp{Regexp: regexp.MustCompile(s), Source: s}
}

func testLogger(t *testing.T) log.Logger {
	return log.NewLogfmtLogger(log.NewSyncWriter(testWriter{t}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// countingServer is an httptest server on 127.0.0.1 that counts the
// connections it accepts and the requests it serves concurrently.
type countingServer struct {
	*httptest.Server
	conns     atomic.Int64
	mu        sync.Mutex
	active    map[string]int // by path
	maxActive map[string]int
	total     int // all paths
	maxTotal  int
}

func newCountingServer(t *testing.T, h http.Handler) *countingServer {
	t.Helper()
	cs := &countingServer{active: map[string]int{}, maxActive: map[string]int{}}
	cs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		cs.active[r.URL.Path]++
		cs.maxActive[r.URL.Path] = max(cs.maxActive[r.URL.Path], cs.active[r.URL.Path])
		cs.total++
		cs.maxTotal = max(cs.maxTotal, cs.total)
		cs.mu.Unlock()
		defer func() {
			cs.mu.Lock()
			cs.active[r.URL.Path]--
			cs.total--
			cs.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	}))
	cs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cs.conns.Add(1)
		}
	}
	cs.Start()
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countingServer) addr() string { return cs.Listener.Addr().String() }

func (cs *countingServer) maxFor(path string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.maxActive[path]
}

func (cs *countingServer) maxConcurrent() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.maxTotal
}

// refusedAddr returns a 127.0.0.1 address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// closeIdle closes the idle connections of every keep-alive transport, so
// that a test's server can close.
func closeIdle() {
	transports.mu.Lock()
	defer transports.mu.Unlock()
	for _, c := range transports.kept {
		c.rt.CloseIdleConnections()
	}
}
