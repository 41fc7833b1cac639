package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/medic-sre/medic/config"
)

// Probers is the one table of probers, by the name a config's Probe.Type
// uses. Config validation reads its keys through Names.
var Probers = map[string]Prober{
	"http": probeHTTP,
	"tcp":  probeTCP,
}

// Names returns the prober names, sorted.
func Names() []string { return slices.Sorted(maps.Keys(Probers)) }

// Fallbacks for settings config.Load always fills; they only matter when a
// prober is called with a hand-built Target.
const (
	fallbackInterval     = 2 * time.Second
	fallbackTimeout      = time.Second
	fallbackMaxBodyBytes = 64 << 10
)

func timeoutOf(p *config.Probe) time.Duration {
	if d := p.Timeout.D(); d > 0 {
		return d
	}
	return fallbackTimeout
}

// allowedKey carries a probe's allowed networks from the prober to the
// dialer's Control hook through the dial context, so one shared dialer (and
// one shared transport) serves every target.
type allowedKey struct{}

func withAllowed(ctx context.Context, allowed []config.Prefix) context.Context {
	if len(allowed) == 0 {
		return ctx
	}
	if cur, _ := ctx.Value(allowedKey{}).([]config.Prefix); len(cur) == len(allowed) && &cur[0] == &allowed[0] {
		return ctx // set already, by the scheduler's worker
	}
	return context.WithValue(ctx, allowedKey{}, allowed)
}

// notAllowedError is a dial refused because the resolved address lies
// outside the target's allowed networks, or on the always-deny list (see
// deny.go). Its text is the probe's Reason.
type notAllowedError struct {
	addr   netip.Addr
	denied string // why the address is always denied; empty when outside the allowlist
}

func (e *notAllowedError) Error() string {
	if e.denied != "" {
		return e.denied
	}
	return "address " + e.addr.String() + " outside allowed_networks"
}

// controlAllowed runs after the name is resolved and the socket created but
// before connect(2): refusing here means no packet reaches the address.
// The always-deny list (deny.go) applies first, to every probe, whatever
// the allowlist; then the target's allowed networks, when it has any.
// An address it cannot parse is refused too.
func controlAllowed(ctx context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("allowed_networks: dialed address %q: %w", address, err)
	}
	a := ap.Addr().WithZone("")
	if why := denial(netip.AddrPortFrom(a.Unmap(), ap.Port())); why != "" {
		return &notAllowedError{addr: a.Unmap(), denied: why}
	}
	allowed, _ := ctx.Value(allowedKey{}).([]config.Prefix)
	if len(allowed) == 0 {
		return nil
	}
	for _, p := range allowed {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return nil
		}
	}
	return &notAllowedError{addr: a.Unmap()}
}

// dialer is shared by every prober. TCP keep-alive probes are off: a probe
// connection lives for one request, or idles briefly in a keep-alive pool.
var dialer = &net.Dialer{ControlContext: controlAllowed, KeepAlive: -1}

// failReason turns a probe error into a short Reason. probeCtx is the
// probe's own context (carrying its timeout), parent the caller's.
func failReason(parent, probeCtx context.Context, timeout time.Duration, err error) string {
	var (
		notAllowed *notAllowedError
		dnsErr     *net.DNSError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalid    x509.CertificateInvalidError
		record     tls.RecordHeaderError
		verify     *tls.CertificateVerificationError
		timeoutErr interface{ Timeout() bool }
	)
	switch {
	case errors.As(err, &notAllowed):
		return notAllowed.Error()
	case parent.Err() != nil:
		return "canceled"
	case errors.Is(probeCtx.Err(), context.DeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &timeoutErr) && timeoutErr.Timeout():
		return "timeout after " + timeout.String()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host " + dnsErr.Name
		}
		return "dns lookup of " + dnsErr.Name + " failed"
	case errors.As(err, &unknownCA):
		return "tls: certificate signed by unknown authority"
	case errors.As(err, &hostErr):
		return "tls: certificate not valid for " + hostErr.Host
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "tls: certificate expired or not yet valid"
		}
		return "tls: invalid certificate"
	case errors.As(err, &record):
		return "tls: server did not answer with TLS"
	case errors.As(err, &verify):
		return "tls: certificate verification failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before response"
	}
	return innermost(err)
}

// innermost returns the text of the deepest error in a chain of single
// wraps: the url and net wrappers repeat the address, which the target
// already names.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
