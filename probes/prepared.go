package probes

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/medic-sre/medic/config"
)

// prepared is what one scheduled target's probes reuse from one probe to
// the next: built on its first probe, dropped when the scheduler gives the
// target new settings (Update makes a new one), so whatever it holds is
// keyed by the target's settings without comparing them per probe.
type prepared struct {
	http atomic.Pointer[httpPlan]
	// shape is the part of the target's requests that its settings fix,
	// shared by every target with the same settings (one per service).
	shape *shape
}

// shape is what an HTTP probe sends that does not depend on the target:
// method, headers (secrets among them), the URL but its host. Shared and
// never written once built: a request and a header map per target were
// most of a target's memory.
type shape struct {
	method string
	h      http.Header
	host   string   // from a configured Host header, else empty
	url    *url.URL // scheme, path and query; nil when they do not parse
	close  bool     // Connection: close (no keep-alive)
}

// shapeOf builds the shape of probes with settings p: User-Agent, then
// headers and headers_from_env secrets, Host taken out.
func shapeOf(p *config.Probe) *shape {
	sh := &shape{method: p.Method, h: http.Header{"User-Agent": {userAgent}}, close: !p.KeepAlive}
	if sh.method == "" {
		sh.method = http.MethodGet
	}
	for k, vs := range p.RequestHeader() {
		if strings.EqualFold(k, "Host") {
			sh.host = vs[0]
			continue
		}
		sh.h[k] = vs
	}
	if u, err := url.Parse(probeURL(Target{Address: "host", Settings: p})); err == nil {
		u.Host = ""
		sh.url = u
	}
	return sh
}

// preparer makes what the targets of one Update share: one shape per
// distinct settings, one label pair per distinct label value.
type preparer struct {
	shapes map[*config.Probe]*shape
	pairs  map[pairKey]*dto.LabelPair
}

func newPreparer() preparer {
	return preparer{shapes: map[*config.Probe]*shape{}, pairs: map[pairKey]*dto.LabelPair{}}
}

func (pp preparer) prepare(t Target) *prepared {
	p := t.Probe()
	sh := pp.shapes[p]
	if sh == nil {
		sh = shapeOf(p)
		pp.shapes[p] = sh
	}
	return &prepared{shape: sh}
}

// httpPlan is the part of an HTTP probe that does not change between two
// probes of the same target: its shape, its URL when the shape's with the
// target's address would not do (an endpoint), and the client (transport
// and redirect policy). Requests made from it share the shape's Header and
// the plan's URL, which neither net/http nor the prober writes to.
type httpPlan struct {
	shape   *shape
	url     *url.URL // nil: the shape's URL with the target's address
	timeout time.Duration
	// client is nil when the transport must be looked up per probe
	// (ca_file set: a rewritten file builds a new transport).
	client *http.Client
	// direct is client's transport when the client would add nothing to
	// it (no redirect to follow, no user info in the URL): calling it
	// saves the client's copy of the request's headers on every probe.
	direct http.RoundTripper
}

// request is t's probe request under ctx: what http.NewRequest makes of
// the URL, without parsing it again.
func (p *httpPlan) request(ctx context.Context, t *Target) *http.Request {
	u := p.url
	if u == nil {
		c := *p.shape.url
		c.Host = t.Address
		u = &c
	}
	host := p.shape.host
	if host == "" {
		host = strings.TrimSuffix(u.Host, ":")
	}
	r := http.Request{Method: p.shape.method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: p.shape.h, Host: host, Close: p.shape.close}
	return r.WithContext(ctx)
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
	p := t.Probe()
	var sh *shape
	if t.prep != nil {
		sh = t.prep.shape
	}
	if sh == nil {
		sh = shapeOf(p)
	}
	if !validMethod(sh.method) {
		return nil, "bad request: net/http: invalid method " + strconv.Quote(sh.method), nil
	}
	u, err := url.Parse(probeURL(t))
	if err != nil {
		return nil, "bad request: " + innermost(err), nil
	}
	plan = &httpPlan{shape: sh, url: u, timeout: timeoutOf(p)}
	if sh.url != nil && u.User == nil && u.Host == t.Address && u.Scheme == sh.url.Scheme &&
		u.Path == sh.url.Path && u.RawPath == sh.url.RawPath && u.RawQuery == sh.url.RawQuery &&
		u.Fragment == sh.url.Fragment && u.Opaque == "" {
		plan.url = nil // the shape's, with t.Address: no URL kept per target
	}
	if p.TLS.CAFile == "" {
		rt, err := transportFor(t)
		if err != nil {
			return nil, err.Error(), err
		}
		plan.client = sharedClient(p.FollowRedirects, rt)
		if !p.FollowRedirects && u.User == nil {
			plan.direct = rt
		}
	}
	if t.prep != nil {
		t.prep.http.Store(plan)
	}
	return plan, "", nil
}

// validMethod is http.NewRequest's test of a method: a token.
func validMethod(m string) bool {
	return m != "" && strings.IndexFunc(m, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r)
	}) < 0
}

// clientFor is the client of one target's probes: rt, and checkRedirect
// with follow_redirects, else no redirect followed.
func clientFor(follow bool, rt http.RoundTripper) *http.Client {
	if follow {
		return &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	}
	return &http.Client{Transport: rt, CheckRedirect: useLastResponse}
}

// sharedClients are the clients of the shared transports (a few: one per
// transport and redirect policy), so that targets share one rather than
// each holding its own.
var sharedClients = struct {
	sync.Mutex
	m map[clientKey]*http.Client
}{m: map[clientKey]*http.Client{}}

type clientKey struct {
	follow bool
	rt     http.RoundTripper
}

func sharedClient(follow bool, rt http.RoundTripper) *http.Client {
	sharedClients.Lock()
	defer sharedClients.Unlock()
	k := clientKey{follow, rt}
	c := sharedClients.m[k]
	if c == nil {
		c = clientFor(follow, rt)
		sharedClients.m[k] = c
	}
	return c
}

func useLastResponse(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
