package probes

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

// tlsKey is what makes two probes' transports differ, apart from
// keep-alive. Targets with the same TLS settings share a transport.
type tlsKey struct {
	insecure   bool
	serverName string
	caFile     string
}

func tlsKeyOf(t Target) tlsKey {
	tc := t.Probe().TLS
	return tlsKey{insecure: tc.InsecureSkipVerify, serverName: tc.ServerName, caFile: tc.CAFile}
}

// cachedTransport is a transport with the stamp of the ca_file it was
// built from, so a rewritten file builds a new one (its settings are the
// key it is kept under).
type cachedTransport struct {
	rt      *http.Transport
	caStamp fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	if path == "" {
		return fileStamp{}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// transports holds the shared transports: fresh-connection ones by TLS
// settings, keep-alive ones by TLS settings and interval (which sets the
// idle timeout). A keep-alive transport keeps each target's connection
// idle between its probes; one shared by all its targets, like a plain
// net/http client's, costs a probe a third less CPU than one per target
// (whose transport, maps and locks were cold in cache at every probe). A
// removed target's idle connection closes at the idle timeout.
var transports = struct {
	mu    sync.Mutex
	fresh map[tlsKey]*cachedTransport
	kept  map[keptKey]*cachedTransport
}{
	fresh: map[tlsKey]*cachedTransport{},
	kept:  map[keptKey]*cachedTransport{},
}

type keptKey struct {
	tls      tlsKey
	interval time.Duration
}

// transportFor returns the round tripper for one probe of t. Without
// keep-alive it opens (and closes) a connection per request; with
// keep-alive it keeps up to two idle connections per address.
func transportFor(t Target) (http.RoundTripper, error) {
	key := tlsKeyOf(t)
	stamp, err := stampOf(key.caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file %s: %w", key.caFile, unwrapPathErr(err))
	}
	interval := t.Probe().Interval.D()
	if interval <= 0 {
		interval = fallbackInterval
	}

	transports.mu.Lock()
	defer transports.mu.Unlock()
	if !t.Probe().KeepAlive {
		if c := transports.fresh[key]; c != nil && c.caStamp == stamp {
			return c.rt, nil
		}
		rt, err := newTransport(key, false, 0)
		if err != nil {
			return nil, err
		}
		transports.fresh[key] = &cachedTransport{rt: rt, caStamp: stamp}
		return rt, nil
	}
	kk := keptKey{key, interval}
	if c := transports.kept[kk]; c != nil {
		if c.caStamp == stamp {
			return c.rt, nil
		}
		c.rt.CloseIdleConnections()
	}
	// The idle timeout must outlast the interval or nothing is reused.
	rt, err := newTransport(key, true, 2*interval+5*time.Second)
	if err != nil {
		return nil, err
	}
	transports.kept[kk] = &cachedTransport{rt: rt, caStamp: stamp}
	return rt, nil
}

func newTransport(key tlsKey, keepAlive bool, idle time.Duration) (*http.Transport, error) {
	tc := &tls.Config{InsecureSkipVerify: key.insecure, ServerName: key.serverName}
	if key.caFile != "" {
		pem, err := os.ReadFile(key.caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file %s: %w", key.caFile, unwrapPathErr(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates", key.caFile)
		}
		tc.RootCAs = pool
	}
	return &http.Transport{
		Proxy:                  nil, // probes go straight to the target, never via a proxy from the environment
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tc,
		DisableKeepAlives:      !keepAlive,
		MaxIdleConns:           0, // no limit: one or two per target
		MaxIdleConnsPerHost:    2, // two services may probe one address
		IdleConnTimeout:        idle,
		MaxResponseHeaderBytes: 64 << 10,
		// A probe's request is a few hundred bytes and its answer is read
		// once: 4 KiB buffers each way (the default) were half of all
		// that a probe allocated. Longer lines are still read whole.
		WriteBufferSize: 1 << 10,
		ReadBufferSize:  1 << 10,
		// No Accept-Encoding: a health check reads the body as sent, like
		// a load balancer's; asking for gzip cost a header map per probe.
		DisableCompression: true,
	}, nil
}

// unwrapPathErr drops the path an *os.PathError repeats.
func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
