package probes

import (
	"context"
	"errors"
	"io"
	"net/http"
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
// unless FollowRedirects. Without KeepAlive every probe opens a fresh
// connection; with it, each target keeps one idle connection (see
// keepAliveTransport).
func probeHTTP(ctx context.Context, t Target, logger log.Logger) (r Result) {
	r.Start = time.Now()
	defer func() { r.Duration = time.Since(r.Start) }()
	p := t.Settings

	timeout := timeoutOf(p)
	pctx, cancel := context.WithTimeout(withAllowed(ctx, t.Allowed), timeout)
	defer cancel()

	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(pctx, method, probeURL(t), nil)
	if err != nil {
		r.Reason = "bad request: " + innermost(err)
		return r
	}
	req.Header.Set("User-Agent", userAgent)
	for k, vs := range p.RequestHeader() { // headers and headers_from_env secrets
		if strings.EqualFold(k, "Host") {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}

	rt, err := transportFor(t)
	if err != nil {
		r.Reason = err.Error()
		level.Debug(logger).Log(logkeys.Msg, "probe failed", logkeys.Reason, r.Reason, logkeys.Err, err)
		return r
	}
	client := http.Client{Transport: rt}
	if !p.FollowRedirects {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}

	resp, err := client.Do(req)
	if err != nil {
		r.Reason = failReason(ctx, pctx, timeout, err)
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
		r.Reason = failReason(ctx, pctx, timeout, err)
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

// drain reads what is left of a bounded body so a kept-alive connection
// can be reused; a fresh connection is closed unread.
func drain(p config.Probe, body io.Reader) {
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
	scheme := t.Settings.Scheme
	if scheme == "" {
		scheme = "http"
	}
	path := t.Settings.Path
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
