package probes

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
)

// maxReasonBytes bounds a probe's Reason: it goes into metrics' logs,
// the status page and notifications.
const maxReasonBytes = 256

// rawServer accepts one connection on 127.0.0.1, reads the request head,
// writes response as it is and closes. It returns the address.
func rawServer(t testing.TB, response []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		head := make([]byte, 0, 1024)
		buf := make([]byte, 1024)
		for !strings.Contains(string(head), "\r\n\r\n") {
			n, err := c.Read(buf)
			head = append(head, buf[:n]...)
			if err != nil {
				return
			}
		}
		_, _ = c.Write(response)
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// FuzzHTTPProbeResponse sends the HTTP prober whatever bytes a target may
// answer with: the prober never panics, never outlives its timeout by much,
// and its Reason is empty on success, else short, valid UTF-8 and
// printable. Seeds: f.Add below and testdata/fuzz/FuzzHTTPProbeResponse.
func FuzzHTTPProbeResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n<!channel> re-login now <https://evil.example/sso|SSO portal>\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"\x00\xff\xfe garbage \x1b[31m red",
		"",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, response []byte, follow bool) {
		addr := rawServer(t, response)
		settings := probeSettings(func(p *config.Probe) {
			p.Timeout = config.Duration(500 * time.Millisecond)
			p.BodyMustMatch = mustRegexp("^ok")
			p.FollowRedirects = follow
			p.MaxBodyBytes = 4096
		})
		target := Target{Key: "fuzz", Address: addr, Settings: settings, Allowed: prefixes(t, "127.0.0.0/8")}
		r := Probers["http"](context.Background(), target, log.NewLogfmtLogger(io.Discard))
		if r.Success != (r.Reason == "") {
			t.Errorf("success=%v with reason %q", r.Success, r.Reason)
		}
		if r.Duration > 5*time.Second {
			t.Errorf("probe took %v with a 500ms timeout", r.Duration)
		}
		checkReason(t, r.Reason)
	})
}

// checkReason fails t unless reason is bounded, valid UTF-8 and printable.
func checkReason(t *testing.T, reason string) {
	t.Helper()
	if len(reason) > maxReasonBytes {
		t.Errorf("reason is %d bytes, over %d: %q", len(reason), maxReasonBytes, reason)
	}
	if !utf8.ValidString(reason) {
		t.Errorf("reason is not valid UTF-8: %q", reason)
	}
	for _, c := range reason {
		if !unicode.IsPrint(c) {
			t.Errorf("reason holds unprintable %U: %q", c, reason)
			break
		}
	}
}
