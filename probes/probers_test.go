package probes

import (
	"context"
	"encoding/pem"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
)

func TestNames(t *testing.T) {
	if got, want := Names(), []string{"http", "tcp"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
}

// probeMux serves the paths the HTTP prober table needs.
func probeMux(t *testing.T, redirectOut string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil {
			t.Errorf("bad code %q", r.PathValue("code"))
			code = 400
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/notok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "not ok") })
	// /endless streams a body that never ends: a probe reading it whole
	// would time out.
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("a", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	// /late-b has the b after the first 2 KiB.
	mux.HandleFunc("/late-b", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", 2048)+"b")
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/redirect-out", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, redirectOut, http.StatusFound)
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Medic") != "yes" || r.Host != "health.internal" || r.UserAgent() != userAgent {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/head-only", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	return mux
}

func TestHTTPProber(t *testing.T) {
	srv := newCountingServer(t, probeMux(t, "http://127.0.0.2:9/"))
	refused := refusedAddr(t)

	path := func(p string) func(*config.Probe) { return func(s *config.Probe) { s.Path = p } }
	tests := []struct {
		desc     string
		address  string // default: the server's host:port
		settings *config.Probe
		allowed  []config.Prefix
		wantOK   bool
		reason   string // exact, when not wantOK
		status   int
	}{
		{desc: "200 in default range", settings: probeSettings(path("/status/200")), wantOK: true, status: 200},
		{desc: "299 at the top of the range", settings: probeSettings(path("/status/299")), wantOK: true, status: 299},
		{desc: "300 just above the range", settings: probeSettings(path("/status/300")), reason: "status 300", status: 300},
		{desc: "500 fails", settings: probeSettings(path("/status/500")), reason: "status 500", status: 500},
		{desc: "503 in an expected 500-599", settings: probeSettings(path("/status/503"), func(p *config.Probe) {
			p.ExpectStatus = []config.StatusRange{{Low: 500, High: 599}}
		}), wantOK: true, status: 503},
		{desc: "several ranges, code in the second", settings: probeSettings(path("/status/404"), func(p *config.Probe) {
			p.ExpectStatus = []config.StatusRange{{Low: 200, High: 299}, {Low: 404, High: 404}}
		}), wantOK: true, status: 404},
		{desc: "several ranges, code in none", settings: probeSettings(path("/status/403"), func(p *config.Probe) {
			p.ExpectStatus = []config.StatusRange{{Low: 200, High: 299}, {Low: 404, High: 404}}
		}), reason: "status 403", status: 403},
		{desc: "body matches", settings: probeSettings(path("/ok"), func(p *config.Probe) {
			p.BodyMustMatch = mustRegexp("^ok$")
		}), wantOK: true, status: 200},
		{desc: "body does not match", settings: probeSettings(path("/notok"), func(p *config.Probe) {
			p.BodyMustMatch = mustRegexp("^ok$")
		}), reason: "body did not match ^ok$", status: 200},
		{desc: "endless body is cut at max_body_bytes", settings: probeSettings(path("/endless"), func(p *config.Probe) {
			p.BodyMustMatch = mustRegexp("^a+$")
			p.MaxBodyBytes = 1024
			p.Timeout = config.Duration(5 * time.Second)
		}), wantOK: true, status: 200},
		{desc: "match beyond max_body_bytes is not seen", settings: probeSettings(path("/late-b"), func(p *config.Probe) {
			p.BodyMustMatch = mustRegexp("b")
			p.MaxBodyBytes = 1024
		}), reason: "body did not match b", status: 200},
		{desc: "match just within max_body_bytes", settings: probeSettings(path("/late-b"), func(p *config.Probe) {
			p.BodyMustMatch = mustRegexp("b")
			p.MaxBodyBytes = 2049
		}), wantOK: true, status: 200},
		{desc: "hang times out", settings: probeSettings(path("/hang"), func(p *config.Probe) {
			p.Timeout = config.Duration(200 * time.Millisecond)
		}), reason: "timeout after 200ms"},
		{desc: "connection refused", address: refused, settings: probeSettings(), reason: "connection refused"},
		{desc: "redirect not followed", settings: probeSettings(path("/redirect")), reason: "status 302", status: 302},
		{desc: "redirect not followed, 302 expected", settings: probeSettings(path("/redirect"), func(p *config.Probe) {
			p.ExpectStatus = []config.StatusRange{{Low: 302, High: 302}}
		}), wantOK: true, status: 302},
		{desc: "redirect followed", settings: probeSettings(path("/redirect"), func(p *config.Probe) {
			p.FollowRedirects = true
		}), wantOK: true, status: 200},
		{desc: "redirect followed out of allowed_networks", settings: probeSettings(path("/redirect-out"), func(p *config.Probe) {
			p.FollowRedirects = true
		}), allowed: prefixes(t, "127.0.0.1/32"), reason: "redirect to another host refused"},
		{desc: "headers, Host and User-Agent sent", settings: probeSettings(path("/headers"), func(p *config.Probe) {
			p.Headers = map[string]string{"X-Medic": "yes", "Host": "health.internal"}
		}), wantOK: true, status: 200},
		{desc: "headers missing", settings: probeSettings(path("/headers")), reason: "status 400", status: 400},
		{desc: "method HEAD", settings: probeSettings(path("/head-only"), func(p *config.Probe) {
			p.Method = http.MethodHead
		}), wantOK: true, status: 200},
		{desc: "endpoint URL used as is", address: srv.URL + "/status/204", settings: probeSettings(path("/status/500")), wantOK: true, status: 204},
		{desc: "inside allowed_networks", settings: probeSettings(path("/ok")), allowed: prefixes(t, "10.0.0.0/8", "127.0.0.0/8"), wantOK: true, status: 200},
		{desc: "outside allowed_networks", settings: probeSettings(path("/ok")), allowed: prefixes(t, "127.0.0.2/32"), reason: "address 127.0.0.1 outside allowed_networks"},
		{desc: "endpoint URL outside allowed_networks", address: srv.URL + "/ok", settings: probeSettings(), allowed: prefixes(t, "127.0.0.2/32"), reason: "address 127.0.0.1 outside allowed_networks"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			addr := tc.address
			if addr == "" {
				addr = srv.addr()
			}
			target := Target{Key: tc.desc, Service: "svc", Address: addr, Settings: tc.settings, Allowed: tc.allowed}
			r := Probers["http"](context.Background(), target, testLogger(t))
			if r.Success != tc.wantOK || r.Reason != tc.reason || r.StatusCode != tc.status {
				t.Errorf("got success=%v reason=%q status=%d, want success=%v reason=%q status=%d",
					r.Success, r.Reason, r.StatusCode, tc.wantOK, tc.reason, tc.status)
			}
			if r.Duration <= 0 || r.Start.IsZero() {
				t.Errorf("Start %v, Duration %v not set", r.Start, r.Duration)
			}
		})
	}
}

// TestAllowedNetworksSendsNothing checks a refused probe never reaches
// the server, for an IP and for a name that resolves outside.
func TestAllowedNetworksSendsNothing(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	_, port, _ := net.SplitHostPort(srv.addr())
	tests := []struct {
		desc, prober, address string
	}{
		{desc: "http to an IP", prober: "http", address: srv.addr()},
		{desc: "http to a name", prober: "http", address: "localhost:" + port},
		{desc: "tcp to an IP", prober: "tcp", address: srv.addr()},
		{desc: "tcp to a name", prober: "tcp", address: "localhost:" + port},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			target := Target{Key: tc.desc, Address: tc.address, Settings: probeSettings(), Allowed: prefixes(t, "127.0.0.2/32")}
			r := Probers[tc.prober](context.Background(), target, log.NewNopLogger())
			if r.Success || !strings.HasPrefix(r.Reason, "address ") || !strings.HasSuffix(r.Reason, " outside allowed_networks") {
				t.Errorf("got success=%v reason=%q, want a refusal", r.Success, r.Reason)
			}
		})
	}
	if n := srv.conns.Load(); n != 0 {
		t.Errorf("server accepted %d connections, want 0", n)
	}
}

func TestHTTPConnectionReuse(t *testing.T) {
	tests := []struct {
		desc      string
		keepAlive bool
		probes    int
		wantConns int64
	}{
		{desc: "fresh connection per probe", probes: 5, wantConns: 5},
		{desc: "one probe one connection", probes: 1, wantConns: 1},
		{desc: "keep-alive reuses one connection", keepAlive: true, probes: 5, wantConns: 1},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			}))
			target := Target{Key: "reuse/" + tc.desc, Address: srv.addr(), Settings: probeSettings(func(p *config.Probe) {
				p.KeepAlive = tc.keepAlive
				p.BodyMustMatch = mustRegexp("ok")
			})}
			t.Cleanup(closeIdle)
			for i := range tc.probes {
				if r := Probers["http"](context.Background(), target, log.NewNopLogger()); !r.Success {
					t.Fatalf("probe %d failed: %s", i, r.Reason)
				}
			}
			if got := srv.conns.Load(); got != tc.wantConns {
				t.Errorf("%d probes opened %d connections, want %d", tc.probes, got, tc.wantConns)
			}
		})
	}
}

func TestHTTPProberTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // failed handshakes are the point
	srv.StartTLS()
	defer srv.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plain.Close()

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsOpts := func(o config.TLS) func(*config.Probe) {
		return func(p *config.Probe) { p.Scheme = "https"; p.TLS = o }
	}
	tests := []struct {
		desc     string
		address  string
		settings *config.Probe
		wantOK   bool
		reason   string
	}{
		{desc: "unknown CA fails", settings: probeSettings(tlsOpts(config.TLS{})), reason: "tls: certificate signed by unknown authority"},
		{desc: "insecure_skip_verify", settings: probeSettings(tlsOpts(config.TLS{InsecureSkipVerify: true})), wantOK: true},
		{desc: "ca_file", settings: probeSettings(tlsOpts(config.TLS{CAFile: caFile})), wantOK: true},
		{desc: "ca_file and server_name in the certificate", settings: probeSettings(tlsOpts(config.TLS{CAFile: caFile, ServerName: "example.com"})), wantOK: true},
		{desc: "ca_file and server_name not in the certificate", settings: probeSettings(tlsOpts(config.TLS{CAFile: caFile, ServerName: "wrong.test"})), reason: "tls: certificate not valid for wrong.test"},
		{desc: "endpoint URL with ca_file", address: srv.URL, settings: probeSettings(tlsOpts(config.TLS{CAFile: caFile})), wantOK: true},
		{desc: "ca_file missing", settings: probeSettings(tlsOpts(config.TLS{CAFile: filepath.Join(dir, "missing.pem")})), reason: "ca_file " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{desc: "ca_file without certificates", settings: probeSettings(tlsOpts(config.TLS{CAFile: notPEM})), reason: "ca_file " + notPEM + ": no PEM certificates"},
		{desc: "https to a plain server", address: plain.Listener.Addr().String(), settings: probeSettings(tlsOpts(config.TLS{InsecureSkipVerify: true})), reason: "http: server gave HTTP response to HTTPS client"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			addr := tc.address
			if addr == "" {
				addr = srv.Listener.Addr().String()
			}
			target := Target{Key: tc.desc, Address: addr, Settings: tc.settings}
			r := Probers["http"](context.Background(), target, testLogger(t))
			if r.Success != tc.wantOK || r.Reason != tc.reason {
				t.Errorf("got success=%v reason=%q, want success=%v reason=%q", r.Success, r.Reason, tc.wantOK, tc.reason)
			}
		})
	}
}

func TestTCPProber(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	tests := []struct {
		desc    string
		address string
		allowed []config.Prefix
		wantOK  bool
		reason  string
	}{
		{desc: "connects", address: l.Addr().String(), wantOK: true},
		{desc: "URL with port", address: "http://127.0.0.1:" + port + "/health", wantOK: true},
		{desc: "refused", address: refusedAddr(t), reason: "connection refused"},
		{desc: "inside allowed_networks", address: l.Addr().String(), allowed: prefixes(t, "127.0.0.1/32"), wantOK: true},
		{desc: "outside allowed_networks", address: l.Addr().String(), allowed: prefixes(t, "127.0.0.2/32"), reason: "address 127.0.0.1 outside allowed_networks"},
		{desc: "no port", address: "127.0.0.1", reason: "bad address 127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			target := Target{Key: tc.desc, Address: tc.address, Settings: probeSettings(func(p *config.Probe) { p.Type = "tcp" }), Allowed: tc.allowed}
			r := Probers["tcp"](context.Background(), target, testLogger(t))
			if r.Success != tc.wantOK || r.Reason != tc.reason {
				t.Errorf("got success=%v reason=%q, want success=%v reason=%q", r.Success, r.Reason, tc.wantOK, tc.reason)
			}
		})
	}
}

func TestProberCancelled(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() {
		done <- Probers["http"](ctx, Target{Address: srv.addr(), Settings: probeSettings(func(p *config.Probe) {
			p.Timeout = config.Duration(time.Minute)
		})}, log.NewNopLogger())
	}()
	waitFor(t, 10*time.Second, "the request to arrive", func() bool { return srv.maxFor("/") == 1 })
	cancel()
	select {
	case r := <-done:
		if r.Success || r.Reason != "canceled" {
			t.Errorf("got success=%v reason=%q, want canceled", r.Success, r.Reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("prober outlived its context")
	}
}
