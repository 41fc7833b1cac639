package probes

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// prepared is what one scheduled target's probes reuse from one probe to
// the next: built on its first probe, dropped when the scheduler gives the
// target new settings (Update makes a new one), so whatever it holds is
// keyed by the target's settings without comparing them per probe.
type prepared struct {
	http atomic.Pointer[httpPlan]
}

// httpPlan is the part of an HTTP probe that does not change between two
// probes of the same target: the request (URL parsed once, headers set
// once, secrets among them) and the client (transport and redirect
// policy). Requests made from it share its URL and Header, which neither
// net/http nor the prober writes to.
type httpPlan struct {
	req     *http.Request // without context: WithContext per probe
	timeout time.Duration
	// client is nil when the transport must be looked up per probe
	// (ca_file set: a rewritten file builds a new transport).
	client *http.Client
}

// planFor returns t's HTTP plan: cached in t.prep when the scheduler gave
// it one, else built for this probe only. reason is the probe's Reason when
// no plan can be built; err, when set, is what to log with it.
func planFor(t Target) (plan *httpPlan, reason string, err error) {
	if t.prep != nil {
		if p := t.prep.http.Load(); p != nil {
			return p, "", nil
		}
	}
	p := t.Settings
	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, probeURL(t), nil)
	if err != nil {
		return nil, "bad request: " + innermost(err), nil
	}
	req.Header.Set("User-Agent", userAgent)
	for k, vs := range p.RequestHeader() { // headers and headers_from_env secrets
		if strings.EqualFold(k, "Host") {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}
	plan = &httpPlan{req: req, timeout: timeoutOf(p)}
	if p.TLS.CAFile == "" {
		rt, err := transportFor(t)
		if err != nil {
			return nil, err.Error(), err
		}
		plan.client = clientFor(p.FollowRedirects, rt)
	}
	if t.prep != nil {
		t.prep.http.Store(plan)
	}
	return plan, "", nil
}

// clientFor is the client of one target's probes: rt, and checkRedirect
// with follow_redirects, else no redirect followed.
func clientFor(follow bool, rt http.RoundTripper) *http.Client {
	if follow {
		return &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	}
	return &http.Client{Transport: rt, CheckRedirect: useLastResponse}
}

func useLastResponse(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
