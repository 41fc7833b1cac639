package alerts

import (
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/medic-sre/medic/config"
)

// tlsRecorder is a TLS server on 127.0.0.1 (its certificate names
// example.com and 127.0.0.1) that keeps the Authorization header of each
// request; caFile holds its certificate in PEM.
type tlsRecorder struct {
	*httptest.Server
	caFile string
	mu     sync.Mutex
	auth   []string
}

func newTLSRecorder(t *testing.T) *tlsRecorder {
	t.Helper()
	r := &tlsRecorder{}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	r.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate().Raw})
	if err := os.WriteFile(r.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *tlsRecorder) authorizations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// The HTTP sinks take Alertmanager's http_config: basic auth with the
// password from a file or from the environment, bearer credentials, TLS
// with a private CA and a server name; a sink that cannot verify the
// server does not deliver.
func TestHTTPConfigBasicAuthAndTLS(t *testing.T) {
	srv := newTLSRecorder(t)
	t.Setenv("MEDIC_TEST_SINK_PASSWORD", "from-env")
	tlsCfg := promconfig.TLSConfig{CAFile: srv.caFile, ServerName: "example.com"}
	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	for _, tc := range []struct {
		desc     string
		typ      string
		http     config.HTTPClientConfig
		wantAuth string
		wantFail bool
	}{
		{desc: "webhook, basic auth password from a file, TLS with a CA file", typ: "webhook",
			http:     config.HTTPClientConfig{BasicAuth: &promconfig.BasicAuth{Username: "medic", PasswordFile: secretFile(t, "from-file")}, TLSConfig: tlsCfg},
			wantAuth: basic("medic", "from-file")},
		{desc: "alertmanager, basic auth password from the environment (password_ref)", typ: "alertmanager",
			http:     config.HTTPClientConfig{BasicAuth: &promconfig.BasicAuth{Username: "medic", PasswordRef: "MEDIC_TEST_SINK_PASSWORD"}, TLSConfig: tlsCfg},
			wantAuth: basic("medic", "from-env")},
		{desc: "slack, bearer credentials from a file", typ: "slack",
			http:     config.HTTPClientConfig{Authorization: &promconfig.Authorization{Type: "Bearer", CredentialsFile: secretFile(t, "tok")}, TLSConfig: tlsCfg},
			wantAuth: "Bearer tok"},
		{desc: "a server name the certificate does not hold fails", typ: "webhook",
			http:     config.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: srv.caFile, ServerName: "other.example"}},
			wantFail: true},
		{desc: "without the CA, the server is not trusted", typ: "webhook", wantFail: true},
		{desc: "insecure_skip_verify trusts it anyway", typ: "webhook",
			http: config.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{InsecureSkipVerify: true}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			sc := config.NotificationSink{Name: "s", Type: tc.typ, HTTPConfig: &tc.http}
			if tc.typ == "alertmanager" {
				sc.URL = srv.URL
			} else {
				sc.URLFile = secretFile(t, srv.URL+"/hook")
			}
			td := startDispatcher(t, Options{Config: config.Notifications{
				Retry: config.NotificationRetry{MaxAttempts: 1}, Sinks: []config.NotificationSink{sc},
			}}, true)
			n := len(srv.authorizations())
			td.Notify(sampleEvents()["marked"])
			if tc.wantFail {
				waitFor(t, "the delivery to fail", func() bool { return td.counter("s", "failed") == 1 })
				if got := len(srv.authorizations()); got != n {
					t.Errorf("the server got %d requests", got-n)
				}
				return
			}
			waitFor(t, "the delivery", func() bool { return td.counter("s", "sent") == 1 })
			got := srv.authorizations()
			if len(got) != n+1 || got[n] != tc.wantAuth {
				t.Errorf("Authorization = %q, want %q", got[n:], tc.wantAuth)
			}
		})
	}
}

// Every listed Alertmanager gets each alert, with a generatorURL to
// medic's status page; one that is down does not fail the delivery.
func TestAlertmanagerPairGetsTheSameAlert(t *testing.T) {
	a, b := startAlertmanager(t), startAlertmanager(t)
	down := refusedURL(t)
	td := startDispatcher(t, Options{ExternalURL: "http://medic.example:9090/medic", Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "am", Type: "alertmanager", URLs: []string{a, b, down}, TokenFile: secretFile(t, "am-token")}},
	}}, true)
	e := sampleEvents()["marked"]
	e.Time = time.Now()
	td.Notify(e)
	for _, base := range []string{a, b} {
		var got []gettableAlert
		waitFor(t, "the alert in "+base, func() bool {
			got = getAlerts(t, base)
			return len(got) == 1
		})
		if got[0].Labels["alertname"] != "MedicInstanceMarked" || got[0].Labels["subject"] != "i-0abc" ||
			got[0].GeneratorURL != "http://medic.example:9090/medic" {
			t.Errorf("%s: alert = %+v", base, got[0])
		}
	}
	waitFor(t, "the delivery counted as sent", func() bool { return td.counter("am", "sent") == 1 })
	if td.counter("am", "failed") != 0 {
		t.Errorf("failed = %v, want 0: two of three took it", td.counter("am", "failed"))
	}
}

// With urls, the bearer token from token_file goes to every Alertmanager.
func TestAlertmanagerURLsCarryTheToken(t *testing.T) {
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	td := startDispatcher(t, Options{Config: config.Notifications{
		Retry: fastRetry,
		Sinks: []config.NotificationSink{{Name: "am", Type: "alertmanager", URLs: []string{a.URL, b.URL}, TokenFile: secretFile(t, "am-token")}},
	}}, true)
	td.Notify(sampleEvents()["marked"])
	waitFor(t, "both posts", func() bool { return a.count() == 1 && b.count() == 1 })
	for _, r := range []*recorder{a, b} {
		r.mu.Lock()
		got := r.auth[0]
		r.mu.Unlock()
		if got != "Bearer am-token" {
			t.Errorf("Authorization = %q", got)
		}
	}
}
