package emulator

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// FaultProxy is a reverse proxy on a loopback port in front of the
// emulator. medic under test uses its URL as AWS_ENDPOINT_URL; the test
// counts the AWS actions medic called and injects throttling or an outage.
type FaultProxy struct {
	url    string
	target *url.URL
	srv    *http.Server
	proxy  *httputil.ReverseProxy

	mu        sync.Mutex
	counts    map[string]int
	forwarded map[string]int // calls that went on to the emulator, by action
	hooks     map[string]Hook
	calls     int // calls received while up, for the throttle pattern
	throttled int
	fraction  float64
	down      bool
}

// Hook sees a call the proxy is about to forward to the emulator (the
// proxy is up and did not throttle it). It may change the emulator's state
// first, and it may answer the call itself: it writes the answer to w and
// returns true. Returning false forwards the call. It runs on the call's
// own goroutine, so the client waits for it.
type Hook func(w http.ResponseWriter, r *http.Request) (answered bool)

// StartFaultProxy starts a proxy on 127.0.0.1:free-port forwarding to
// target (a loopback URL such as Moto.URL()).
func StartFaultProxy(target string) (*FaultProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("fault proxy target: %w", err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("fault proxy target %q is not on a loopback IP", target)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy: %w", err)
	}
	p := &FaultProxy{
		url:       "http://" + l.Addr().String(),
		target:    u,
		counts:    map[string]int{},
		forwarded: map[string]int{},
		hooks:     map[string]Hook{},
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// Keep the Host the client signed (SigV4 signs it); moto does
			// not check signatures, but a faithful proxy does not
			// rewrite what was signed.
			r.Out.Host = r.In.Host
		},
		// A client that gives up (medic shutting down) is not news: answer
		// 502 without logging "proxy error: context canceled".
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	p.srv = &http.Server{Handler: p}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// URL is the proxy's base URL.
func (p *FaultProxy) URL() string { return p.url }

// Env is EnvFor(p.URL()).
func (p *FaultProxy) Env() []string { return EnvFor(p.url) }

// Close stops the proxy.
func (p *FaultProxy) Close() error { return p.srv.Close() }

// ThrottleFraction makes the proxy answer fraction f (0..1) of the calls
// it receives with a throttling error instead of forwarding them. The
// pattern is deterministic: call k is throttled when floor(k·f) steps up,
// so 0.5 throttles every 2nd call, 1 every call and 0 none.
func (p *FaultProxy) ThrottleFraction(f float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fraction = min(max(f, 0), 1)
}

// SetDown makes the proxy drop every connection without an answer (down)
// or forward again (up).
func (p *FaultProxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Count is how many calls of action (e.g. "SetInstanceHealth") the proxy
// received while up, throttled or not.
func (p *FaultProxy) Count(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[action]
}

// Counts is a copy of the calls received per action.
func (p *FaultProxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for a, n := range p.counts {
		out[a] = n
	}
	return out
}

// OnAction installs h for the calls of action that the proxy forwards
// (nil removes it): e.g. to change the emulator between a client's
// decision and its call arriving, or to answer in the emulator's place
// where it differs from AWS.
func (p *FaultProxy) OnAction(action string, h Hook) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h == nil {
		delete(p.hooks, action)
		return
	}
	p.hooks[action] = h
}

// Forwarded is how many calls of action got past the proxy's faults
// (down, throttling): those forwarded to the emulator or answered by an
// OnAction hook.
func (p *FaultProxy) Forwarded(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forwarded[action]
}

// Throttled is how many calls were answered with a throttling error.
func (p *FaultProxy) Throttled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttled
}

// MutatingCalls counts calls of actions that may change something: any
// action whose name does not start with Describe, List or Get.
func (p *FaultProxy) MutatingCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for a, c := range p.counts {
		if IsMutating(a) {
			n += c
		}
	}
	return n
}

// IsMutating reports whether an AWS action may change something.
func IsMutating(action string) bool {
	for _, read := range []string{"Describe", "List", "Get"} {
		if strings.HasPrefix(action, read) {
			return false
		}
	}
	return true
}

// ResetCounts forgets the calls counted so far (and restarts the throttle
// pattern).
func (p *FaultProxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.counts)
	clear(p.forwarded)
	p.calls, p.throttled = 0, 0
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		hijackAndClose(w)
		return
	}

	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	action := actionOf(r, body)

	p.mu.Lock()
	p.counts[action]++
	p.calls++
	k := float64(p.calls)
	throttle := math.Floor(k*p.fraction) > math.Floor((k-1)*p.fraction)
	var hook Hook
	if throttle {
		p.throttled++
	} else {
		p.forwarded[action]++
		hook = p.hooks[action]
	}
	p.mu.Unlock()

	if throttle {
		writeThrottle(w, r, serviceOf(r))
		return
	}
	if hook != nil {
		if hook(w, r) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body)) // the hook may have read it
	}
	p.proxy.ServeHTTP(w, r)
}

// DropConnection resets the connection of the call w answers, with no
// answer at all: what a client sees when the network drops a call. For
// OnAction hooks (return true after it).
func DropConnection(w http.ResponseWriter) { hijackAndClose(w) }

func hijackAndClose(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // reset, not a graceful close
	}
	_ = conn.Close()
}

// actionOf names the AWS action of a request: Action= in the query or form
// body (query protocols: autoscaling, ec2, elb, sns, ...), the part after
// the dot of X-Amz-Target (JSON protocols: service quotas, sqs), or the
// last path element after /operation/ (RPC v2 CBOR: cloudwatch).
func actionOf(r *http.Request, body []byte) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if _, op, ok := strings.Cut(t, "."); ok {
			return op
		}
		return t
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if v, err := url.ParseQuery(string(body)); err == nil && v.Get("Action") != "" {
			return v.Get("Action")
		}
	}
	if _, op, ok := strings.Cut(r.URL.Path, "/operation/"); ok {
		return op
	}
	return "unknown"
}

// serviceOf is the signing name in the SigV4 credential scope
// (Credential=AKID/DATE/REGION/SERVICE/aws4_request), e.g. "ec2",
// "autoscaling".
func serviceOf(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[3]
}

// writeThrottle answers with the throttling error in the shape the SDK's
// deserializer for the request's protocol reads:
//   - awsquery (autoscaling, elb, sns, ...): <ErrorResponse><Error>…
//   - ec2query (ec2): <Response><Errors><Error>…
//   - awsJson (service quotas, sqs): a JSON body with __type
//   - RPC v2 CBOR (cloudwatch): the same map, CBOR-encoded
func writeThrottle(w http.ResponseWriter, r *http.Request, service string) {
	const reqID = "00000000-0000-0000-0000-00000000fa17"
	w.Header().Set("X-Amzn-RequestId", reqID)
	switch {
	case service == "ec2":
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>`+reqID+`</RequestID></Response>`)
	case strings.Contains(r.URL.Path, "/operation/"):
		w.Header().Set("Content-Type", "application/cbor")
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(cborThrottle())
	case r.Header.Get("X-Amz-Target") != "":
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
	default:
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>`+reqID+`</RequestId></ErrorResponse>`)
	}
}

// cborThrottle is the CBOR encoding of
// {"__type": "ThrottlingException", "message": "Rate exceeded"}.
func cborThrottle() []byte {
	text := func(s string) []byte { // major type 3, length < 24
		return append([]byte{0x60 | byte(len(s))}, s...)
	}
	b := []byte{0xa2} // map, 2 pairs
	for _, s := range []string{"__type", "ThrottlingException", "message", "Rate exceeded"} {
		b = append(b, text(s)...)
	}
	return b
}
