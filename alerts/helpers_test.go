package alerts

import (
	"github.com/medic-sre/medic/internal/testkit"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medic-sre/medic/config"
)

// waitFor polls cond until it holds, at most about 20s (a bound, not a
// timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, what, cond)
}

// recorder is an httptest server on 127.0.0.1 that keeps what it receives.
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	auth   []string
	// handle, when set, answers instead of 200; it sees the request count.
	handle func(n int, w http.ResponseWriter, r *http.Request)
}

func newRecorder(t *testing.T, handle func(n int, w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{handle: handle}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.bodies = append(rec.bodies, b)
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		n := len(rec.bodies)
		rec.mu.Unlock()
		if rec.handle != nil {
			rec.handle(n, w, r)
		}
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func (r *recorder) body(i int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies[i]
}

func (r *recorder) webhooks(t *testing.T) []WebhookPayload {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []WebhookPayload
	for _, b := range r.bodies {
		var p WebhookPayload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("webhook body %s: %v", b, err)
		}
		out = append(out, p)
	}
	return out
}

// secretFile writes value to a file in a temp dir and returns its path.
func secretFile(t *testing.T, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// refusedURL is an http URL on 127.0.0.1 where nothing listens.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/hook"
}

// fastRetry retries quickly so tests do not wait on backoff.
var fastRetry = config.NotificationRetry{MaxAttempts: 3, InitialInterval: config.Duration(time.Millisecond), MaxInterval: config.Duration(5 * time.Millisecond)}

// testDispatcher builds a Dispatcher on a private registry and, unless
// noRun, runs it until the test ends.
type testDispatcher struct {
	*Dispatcher
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startDispatcher(t *testing.T, o Options, run bool) *testDispatcher {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	if o.TickInterval == 0 {
		o.TickInterval = 5 * time.Millisecond
	}
	d, err := NewDispatcher(o)
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	td := &testDispatcher{Dispatcher: d, reg: reg, done: make(chan error, 1)}
	if run {
		td.run(t)
	}
	return td
}

func (td *testDispatcher) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	td.cancel = cancel
	go func() { td.done <- td.Run(ctx) }()
	t.Cleanup(func() { td.stop(t) })
}

// stop ends Run and waits for it (idempotent).
func (td *testDispatcher) stop(t *testing.T) {
	t.Helper()
	if td.cancel == nil {
		return
	}
	td.cancel()
	td.cancel = nil
	select {
	case err := <-td.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func (td *testDispatcher) counter(sink, result string) float64 {
	return testutil.ToFloat64(td.m.notifications.WithLabelValues(sink, result))
}

func (td *testDispatcher) dropped(sink string) float64 {
	return testutil.ToFloat64(td.m.dropped.WithLabelValues(sink))
}

func (td *testDispatcher) queueLen(sink string) float64 {
	return testutil.ToFloat64(td.m.queueLength.WithLabelValues(sink))
}

func (td *testDispatcher) worker(t *testing.T, name string) *worker {
	t.Helper()
	td.mu.Lock()
	defer td.mu.Unlock()
	for _, w := range td.workers {
		if w.name == name {
			return w
		}
	}
	t.Fatalf("no sink %s", name)
	return nil
}

func numbered(k Kind, service string, i int) Event {
	e := ev(k, service, fmt.Sprintf("i-%04d", i))
	e.Evidence = []string{fmt.Sprintf("probe %d failed: connection refused", i)}
	return e
}

func writeFile(path, value string) error { return os.WriteFile(path, []byte(value), 0o600) }
