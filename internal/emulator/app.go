package emulator

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how an AppServer answers GET /health.
type Mode int

const (
	ModeOK      Mode = iota // 200 "ok"
	ModeStatus              // the set status code, body "status"
	ModeHang                // accept and read the request, never answer
	ModeBody                // 200 with the set body
	ModeDown                // no listener: connections are refused
	ModePattern             // each request takes the next outcome of a cycled pattern
	ModeFlaky               // each request fails at random with a set probability
	ModeDelay               // 200 "ok" after a set delay (a slow but correct instance)
)

func (m Mode) String() string {
	switch m {
	case ModeOK:
		return "ok"
	case ModeStatus:
		return "status"
	case ModeHang:
		return "hang"
	case ModeBody:
		return "body"
	case ModeDown:
		return "down"
	case ModePattern:
		return "pattern"
	case ModeFlaky:
		return "flaky"
	case ModeDelay:
		return "delay"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// AppServer is the stand-in for a service's process on one instance: an
// HTTP server on the instance's loopback IP answering GET /health in a
// mode that can be changed at any time, from any goroutine.
type AppServer struct {
	addr string // ip:port, fixed for the server's life

	mu     sync.Mutex
	mode   Mode
	status int
	body   string
	srv    *http.Server // nil while down
	closed bool
	// hung is closed to release every request held by ModeHang; it is
	// replaced when released.
	hung chan struct{}
	// pattern (ModePattern: F fails, anything else passes) and the next
	// position in it; failRate (ModeFlaky).
	pattern  string
	next     int
	failRate float64
	delay    time.Duration // ModeDelay

	requests atomic.Int64
}

// StartApp listens on ip:port (port 0: a free one) and serves GET /health
// with 200 "ok".
func StartApp(ip string, port int) (*AppServer, error) {
	if addr := net.ParseIP(ip); addr == nil || !addr.IsLoopback() {
		return nil, fmt.Errorf("app server address %q is not a loopback IP", ip)
	}
	a := &AppServer{mode: ModeOK, hung: make(chan struct{})}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("app server on %s: %w", ip, err)
	}
	a.addr = l.Addr().String()
	a.serve(l)
	return a, nil
}

// serve starts an http.Server on l. a.mu is held or a is not yet shared.
func (a *AppServer) serve(l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.health)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.srv = srv
	go func() { _ = srv.Serve(l) }()
}

func (a *AppServer) health(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	a.mu.Lock()
	mode, status, body, hung, delay := a.mode, a.status, a.body, a.hung, a.delay
	fail := false
	switch mode {
	case ModePattern:
		fail = a.pattern[a.next%len(a.pattern)] == 'F'
		a.next++
	case ModeFlaky:
		fail = rand.Float64() < a.failRate
	}
	a.mu.Unlock()
	if mode == ModePattern || mode == ModeFlaky {
		if fail {
			w.WriteHeader(status)
			_, _ = w.Write([]byte("status"))
			return
		}
		_, _ = w.Write([]byte("ok"))
		return
	}
	switch mode {
	case ModeDelay:
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			_, _ = w.Write([]byte("ok"))
		case <-r.Context().Done():
		}
	case ModeHang:
		select {
		case <-hung:
		case <-r.Context().Done():
		}
		// Drop the connection without an answer.
		panic(http.ErrAbortHandler)
	case ModeStatus:
		w.WriteHeader(status)
		_, _ = w.Write([]byte("status"))
	case ModeBody:
		_, _ = w.Write([]byte(body))
	default:
		_, _ = w.Write([]byte("ok"))
	}
}

// Addr is ip:port.
func (a *AppServer) Addr() string { return a.addr }

// URL is http://ip:port/health.
func (a *AppServer) URL() string { return "http://" + a.addr + "/health" }

// Mode is the current mode.
func (a *AppServer) Mode() Mode {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode
}

// Requests counts the /health requests received so far.
func (a *AppServer) Requests() int64 { return a.requests.Load() }

// OK answers 200 "ok".
func (a *AppServer) OK() error { return a.set(ModeOK, 0, "") }

// Status answers code with body "status".
func (a *AppServer) Status(code int) error { return a.set(ModeStatus, code, "") }

// Hang accepts requests and never answers them; they end when the client
// gives up, the mode changes or the server closes.
func (a *AppServer) Hang() error { return a.set(ModeHang, 0, "") }

// Body answers 200 with text as the body.
func (a *AppServer) Body(text string) error { return a.set(ModeBody, 0, text) }

// Pattern answers each request with the next outcome of pattern, cycled:
// F answers code, anything else 200 "ok". "FFP" fails 2 of every 3
// requests, never 3 in a row.
func (a *AppServer) Pattern(pattern string, code int) error {
	if pattern == "" {
		return fmt.Errorf("app server pattern: empty")
	}
	a.mu.Lock()
	a.pattern, a.next = pattern, 0
	a.mu.Unlock()
	return a.set(ModePattern, code, "")
}

// Flaky answers code to each request with probability rate, else 200 "ok".
func (a *AppServer) Flaky(rate float64, code int) error {
	a.mu.Lock()
	a.failRate = rate
	a.mu.Unlock()
	return a.set(ModeFlaky, code, "")
}

// Delay answers 200 "ok" d after each request arrives: slow but correct.
func (a *AppServer) Delay(d time.Duration) error {
	a.mu.Lock()
	a.delay = d
	a.mu.Unlock()
	return a.set(ModeDelay, 0, "")
}

// Down closes the listener and every connection: connections are refused
// until another mode listens again on the same address.
func (a *AppServer) Down() error { return a.set(ModeDown, 0, "") }

func (a *AppServer) set(mode Mode, status int, body string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errClosed
	}
	if a.mode == ModeHang && mode != ModeHang {
		close(a.hung)
		a.hung = make(chan struct{})
	}
	switch {
	case mode == ModeDown && a.srv != nil:
		_ = a.srv.Close()
		a.srv = nil
	case mode != ModeDown && a.srv == nil:
		l, err := net.Listen("tcp", a.addr)
		if err != nil {
			return fmt.Errorf("app server back up on %s: %w", a.addr, err)
		}
		a.serve(l)
	}
	a.mode, a.status, a.body = mode, status, body
	return nil
}

// Close stops the server for good and releases hung requests.
func (a *AppServer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	close(a.hung)
	if a.srv != nil {
		err := a.srv.Close()
		a.srv = nil
		return err
	}
	return nil
}
