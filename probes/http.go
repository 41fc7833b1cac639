package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

const userAgent = "medic-probe/1"

// probeHTTP sends one request and passes when the status is in
// ExpectStatus and, if BodyMustMatch is set, the first MaxBodyBytes of the
// body match it. A body longer than MaxBodyBytes is cut, not failed.
// Redirects are returned as they are (and judged against ExpectStatus)
// unless FollowRedirects, and then followed only on the same origin (see
// checkRedirect). Without KeepAlive every probe opens a fresh
// connection; with it, each target's connection stays open between its
// probes (see transportFor).
func probeHTTP(ctx context.Context, t Target, logger log.Logger) (r Result) {
	r.Start = time.Now()
	defer func() { r.Duration = time.Since(r.Start) }()
	p := t.Probe()

	plan, reason, err := planFor(t)
	if plan == nil {
		r.Reason = reason
		if err != nil {
			level.Debug(logger).Log(logkeys.Msg, "probe failed", logkeys.Reason, r.Reason, logkeys.Err, err)
		}
		return r
	}
	timeout := plan.timeout
	pctx, cancel := context.WithTimeout(withAllowed(ctx, t.Allowed), timeout)
	defer cancel()
	req := plan.request(pctx, &t)

	client := plan.client
	if client == nil {
		rt, err := transportFor(t)
		if err != nil {
			r.Reason = err.Error()
			level.Debug(logger).Log(logkeys.Msg, "probe failed", logkeys.Reason, r.Reason, logkeys.Err, err)
			return r
		}
		client = clientFor(p.FollowRedirects, rt)
	}

	var resp *http.Response
	if plan.direct != nil {
		resp, err = plan.direct.RoundTrip(req)
		// As http.Client does: an HTTP answer to a TLS hello is named.
		if tlsErr, ok := err.(tls.RecordHeaderError); ok && string(tlsErr.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch
		}
	} else {
		resp, err = client.Do(req)
	}
	if err != nil {
		var refused *redirectRefusedError
		if errors.As(err, &refused) {
			r.Reason = refused.Error()
		} else {
			r.Reason = httpFailReason(ctx, pctx, timeout, err)
		}
		level.Debug(logger).Log(logkeys.Msg, "probe failed", logkeys.Reason, r.Reason, logkeys.Err, err)
		return r
	}
	defer resp.Body.Close()
	r.StatusCode = resp.StatusCode

	limit := p.MaxBodyBytes
	if limit <= 0 {
		limit = fallbackMaxBodyBytes
	}
	body := io.LimitReader(resp.Body, limit)

	if !statusExpected(p.ExpectStatus, resp.StatusCode) {
		r.Reason = "status " + strconv.Itoa(resp.StatusCode)
		drain(p, body)
		return r
	}
	if p.BodyMustMatch == nil || p.BodyMustMatch.Regexp == nil {
		drain(p, body)
		r.Success = true
		return r
	}
	b, err := io.ReadAll(body)
	if err != nil && !errors.Is(err, io.EOF) {
		r.Reason = httpFailReason(ctx, pctx, timeout, err)
		level.Debug(logger).Log(logkeys.Msg, "probe failed reading body", logkeys.Reason, r.Reason, logkeys.Err, err)
		return r
	}
	if !p.BodyMustMatch.Match(b) {
		r.Reason = "body did not match " + regexpSource(p.BodyMustMatch)
		return r
	}
	r.Success = true
	return r
}

// parserReasons map the messages of Go's HTTP parser errors, which quote
// what the instance sent (up to a whole line), to fixed reasons. Longer
// prefixes come first.
var parserReasons = []struct{ prefix, reason string }{
	{"malformed HTTP status code", "malformed HTTP response: bad status code"},
	{"malformed HTTP version", "malformed HTTP response: bad protocol version"},
	{"malformed HTTP response", "malformed HTTP response: bad status line"},
	{"malformed MIME header", "malformed HTTP response: bad header line"},
	{"invalid Trailer key", "malformed HTTP response: bad trailer"},
	{"bad trailer key", "malformed HTTP response: bad trailer"},
	{"invalid empty Content-Length", "malformed HTTP response: bad Content-Length"},
	{"bad Content-Length", "malformed HTTP response: bad Content-Length"},
	{"unsupported transfer encoding", "malformed HTTP response: unsupported Transfer-Encoding"},
	{"too many transfer encodings", "malformed HTTP response: unsupported Transfer-Encoding"},
	{"malformed chunked encoding", "malformed HTTP response: bad chunked encoding"},
	{"invalid byte in chunk length", "malformed HTTP response: bad chunked encoding"},
	{"http chunk length too large", "malformed HTTP response: bad chunked encoding"},
	{"server response headers exceeded", "malformed HTTP response: headers too large"},
}

// maxExcerpt bounds the excerpt of what the instance sent in a reason;
// maxReason bounds any reason of the HTTP prober.
const (
	maxExcerpt = 40
	maxReason  = 160
)

// httpFailReason is failReason for the HTTP prober, where the instance
// chooses the text of some errors. A parser error becomes a fixed reason
// and, when the error quoted what was sent, a short sanitised excerpt of
// it (`malformed HTTP response: bad header line, starting "<!channel> re-lo..."`).
// Whatever else is sanitised the same way. The reason is data: the sinks
// escape it again for their formats.
func httpFailReason(parent, probeCtx context.Context, timeout time.Duration, err error) string {
	msg := err.Error()
	for _, p := range parserReasons {
		i := strings.Index(msg, p.prefix)
		if i < 0 {
			continue
		}
		rest := msg[i+len(p.prefix):]
		q := strings.IndexByte(rest, '"')
		if q < 0 {
			return p.reason
		}
		sent, qerr := strconv.QuotedPrefix(rest[q:])
		if qerr != nil {
			return p.reason
		}
		raw, _ := strconv.Unquote(sent)
		if raw = printableASCII(raw, maxExcerpt); raw == "" {
			return p.reason
		}
		return p.reason + ", starting " + strconv.Quote(raw)
	}
	return printableASCII(failReason(parent, probeCtx, timeout, err), maxReason)
}

// printableASCII keeps the printable ASCII of s (any other byte becomes
// "?"), cut to n bytes with "..." when longer.
func printableASCII(s string, n int) string {
	b := make([]byte, 0, min(len(s), n+3))
	for i := 0; i < len(s); i++ {
		if len(b) == n {
			return string(b) + "..."
		}
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}

// maxRedirects is how many redirects a probe with follow_redirects follows.
const maxRedirects = 3

// redirectRefusedError is a redirect the probe would not follow. Its text
// is the probe's Reason.
type redirectRefusedError struct{ why string }

func (e *redirectRefusedError) Error() string { return e.why }

// checkRedirect is the redirect policy of follow_redirects. A redirect is
// followed only when it stays on the probed origin: the same scheme, host
// and port as the first request. So a redirect never leaves the target (a
// bad instance redirecting to a healthy peer fails, it does not pass),
// never goes from https to http, and the request's headers (headers_from_env
// secrets among them) never reach another host. At most maxRedirects are
// followed. Within the origin the standard semantics hold: 301/302/303 turn
// a POST into a GET, 307/308 keep the method.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return &redirectRefusedError{why: "more than " + strconv.Itoa(maxRedirects) + " redirects"}
	}
	first := via[0].URL
	switch {
	case first.Scheme == "https" && req.URL.Scheme != "https":
		return &redirectRefusedError{why: "redirect from https to " + printableScheme(req.URL.Scheme) + " refused"}
	case !strings.EqualFold(req.URL.Scheme, first.Scheme),
		!strings.EqualFold(req.URL.Hostname(), first.Hostname()),
		portOf(req.URL) != portOf(first):
		return &redirectRefusedError{why: "redirect to another host refused"}
	}
	return nil
}

// portOf is u's port, or the scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// printableScheme bounds a scheme taken from a Location header before it
// goes into a Reason.
func printableScheme(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') || len(s) > 16 {
			return "another scheme"
		}
	}
	return s
}

// drain reads what is left of a bounded body so a kept-alive connection
// can be reused; a fresh connection is closed unread.
func drain(p *config.Probe, body io.Reader) {
	if p.KeepAlive {
		io.Copy(io.Discard, body)
	}
}

func regexpSource(re *config.Regexp) string {
	if re.Source != "" {
		return re.Source
	}
	return re.String()
}

// probeURL is the target's Address when it is a URL (endpoints), else
// Scheme://Address/Path.
func probeURL(t Target) string {
	if strings.Contains(t.Address, "://") {
		return t.Address
	}
	scheme := t.Probe().Scheme
	if scheme == "" {
		scheme = "http"
	}
	path := t.Probe().Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + "://" + t.Address + path
}

// statusExpected reports whether code is in any of the ranges; no ranges
// means 200-299.
func statusExpected(ranges []config.StatusRange, code int) bool {
	if len(ranges) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range ranges {
		if r.Contains(code) {
			return true
		}
	}
	return false
}
