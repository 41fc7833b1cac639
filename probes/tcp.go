package probes

import (
	"context"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/internal/logkeys"
)

// probeTCP passes when a TCP connection to the target opens within the
// timeout; it sends nothing and closes at once.
func probeTCP(ctx context.Context, t Target, logger log.Logger) (r Result) {
	r.Start = time.Now()
	defer func() { r.Duration = time.Since(r.Start) }()

	addr, err := tcpAddress(t.Address)
	if err != nil {
		r.Reason = "bad address " + t.Address
		return r
	}
	timeout := timeoutOf(t.Probe())
	pctx, cancel := context.WithTimeout(withAllowed(ctx, t.Allowed), timeout)
	defer cancel()
	conn, err := dialer.DialContext(pctx, "tcp", addr)
	if err != nil {
		r.Reason = failReason(ctx, pctx, timeout, err)
		level.Debug(logger).Log(logkeys.Msg, "probe failed", logkeys.Reason, r.Reason, logkeys.Err, err)
		return r
	}
	conn.Close()
	r.Success = true
	return r
}

// tcpAddress returns host:port for a host:port or a URL (whose port
// defaults by scheme).
func tcpAddress(address string) (string, error) {
	if !strings.Contains(address, "://") {
		_, _, err := net.SplitHostPort(address)
		return address, err
	}
	u, err := url.Parse(address)
	if err != nil {
		return "", err
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}
