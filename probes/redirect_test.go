package probes

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/config"
)

// recordingServer is an httptest server on a given loopback address that
// records the requests it serves (method, path, X-Api-Key).
type recordingServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecordingServer(t *testing.T, ip string, tlsOn bool, h http.HandlerFunc) *recordingServer {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	rs := &recordingServer{}
	rs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.seen = append(rs.seen, r.Method+" "+r.URL.Path+" key="+r.Header.Get("X-Api-Key"))
		rs.mu.Unlock()
		h(w, r)
	}))
	rs.Listener.Close()
	rs.Listener = l
	if tlsOn {
		rs.StartTLS()
	} else {
		rs.Start()
	}
	t.Cleanup(rs.Close)
	return rs
}

func (rs *recordingServer) requests() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.seen...)
}

// TestRedirectChain runs a bad instance on 127.0.0.1 that redirects, in
// chains of every kind, and a healthy peer on 127.0.0.2 it may point at:
// only redirects on the probed origin are followed, at most maxRedirects of
// them, and the peer never sees a request (nor the secret header).
func TestRedirectChain(t *testing.T) {
	peer := newRecordingServer(t, "127.0.0.2", false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	peerTLS := newRecordingServer(t, "127.0.0.2", true, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	var self string // the bad instance's own http://host:port, set below
	bad := newRecordingServer(t, "127.0.0.1", false, func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/healthy":
			io.WriteString(w, "ok")
		case strings.HasPrefix(p, "/hops/"): // /hops/N redirects N more times
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/hops/"))
			if n == 0 {
				io.WriteString(w, "ok")
				return
			}
			http.Redirect(w, r, "/hops/"+strconv.Itoa(n-1), http.StatusFound)
		case p == "/to-peer":
			http.Redirect(w, r, peer.URL+"/healthy", http.StatusTemporaryRedirect)
		case p == "/to-peer-tls":
			http.Redirect(w, r, peerTLS.URL+"/healthy", http.StatusFound)
		case p == "/to-other-port":
			_, port, _ := net.SplitHostPort(peer.Listener.Addr().String())
			http.Redirect(w, r, "http://127.0.0.1:"+port+"/healthy", http.StatusFound)
		case p == "/to-name":
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(self, "http://"))
			http.Redirect(w, r, "http://localhost:"+port+"/healthy", http.StatusFound)
		case p == "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case p == "/post-307":
			http.Redirect(w, r, "/healthy", http.StatusTemporaryRedirect)
		case p == "/post-302":
			http.Redirect(w, r, "/healthy", http.StatusFound)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	self = bad.URL
	tlsSelf := newRecordingServer(t, "127.0.0.1", true, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			// Same host and port, plain http.
			http.Redirect(w, r, "http://"+r.Host+"/healthy", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	})

	follow := func(path string, mods ...func(*config.Probe)) *config.Probe {
		return probeSettings(append([]func(*config.Probe){func(p *config.Probe) {
			p.Path = path
			p.FollowRedirects = true
			p.TLS.InsecureSkipVerify = true
			p.Headers = map[string]string{"X-Api-Key": "s3cret"}
		}}, mods...)...)
	}
	tests := []struct {
		desc     string
		address  string
		settings *config.Probe
		wantOK   bool
		reason   string
		wantSeen string // the last request the bad instance served, when set
	}{
		{desc: "same origin, relative", settings: follow("/hops/1"), wantOK: true},
		{desc: "exactly the hop limit", settings: follow("/hops/" + strconv.Itoa(maxRedirects)), wantOK: true},
		{desc: "one hop over the limit", settings: follow("/hops/" + strconv.Itoa(maxRedirects+1)),
			reason: "more than " + strconv.Itoa(maxRedirects) + " redirects"},
		{desc: "bad instance redirects to a healthy peer", settings: follow("/to-peer"), reason: "redirect to another host refused"},
		{desc: "to a peer over https", settings: follow("/to-peer-tls"), reason: "redirect to another host refused"},
		{desc: "same IP, another port", settings: follow("/to-other-port"), reason: "redirect to another host refused"},
		{desc: "same machine by another name", settings: follow("/to-name"), reason: "redirect to another host refused"},
		{desc: "to the metadata service", settings: follow("/to-metadata"), reason: "redirect to another host refused"},
		{desc: "https to http on the same host and port", address: tlsSelf.Listener.Addr().String(),
			settings: follow("/down", func(p *config.Probe) { p.Scheme = "https" }), reason: "redirect from https to http refused"},
		{desc: "307 keeps POST on the same origin", settings: follow("/post-307", func(p *config.Probe) { p.Method = http.MethodPost }),
			wantOK: true, wantSeen: "POST /healthy key=s3cret"},
		{desc: "302 turns POST into GET", settings: follow("/post-302", func(p *config.Probe) { p.Method = http.MethodPost }),
			wantOK: true, wantSeen: "GET /healthy key=s3cret"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			addr := tc.address
			if addr == "" {
				addr = bad.Listener.Addr().String()
			}
			target := Target{Key: tc.desc, Address: addr, Settings: tc.settings, Allowed: prefixes(t, "127.0.0.0/8")}
			r := Probers["http"](context.Background(), target, log.NewNopLogger())
			if r.Success != tc.wantOK || r.Reason != tc.reason {
				t.Errorf("got success=%v reason=%q, want success=%v reason=%q", r.Success, r.Reason, tc.wantOK, tc.reason)
			}
			if tc.wantSeen != "" {
				seen := bad.requests()
				if len(seen) == 0 || seen[len(seen)-1] != tc.wantSeen {
					t.Errorf("bad instance served %q, want last %q", seen, tc.wantSeen)
				}
			}
		})
	}
	if got := peer.requests(); len(got) != 0 {
		t.Errorf("the healthy peer got %q, want no request", got)
	}
	if got := peerTLS.requests(); len(got) != 0 {
		t.Errorf("the healthy TLS peer got %q, want no request", got)
	}
}
