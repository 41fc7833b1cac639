package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
)

// TestReloadHandler: what /-/reload lets through, in the order it checks.
// The limiter is spent only by requests that pass the other checks.
func TestReloadHandler(t *testing.T) {
	external, _ := url.Parse("https://medic.example.com/medic/")
	type req struct {
		method  string
		headers map[string]string
	}
	post := func(kv ...string) req {
		r := req{method: http.MethodPost, headers: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			r.headers[kv[i]] = kv[i+1]
		}
		return r
	}
	tests := []struct {
		desc     string
		req      req
		result   error // what the reload returns
		unchange bool
		want     int
		body     string
	}{
		{"POST with no header: a tool (curl, promtool, a deploy)", post(), nil, false, http.StatusOK, "config reloaded."},
		{"unchanged file", post(), nil, true, http.StatusOK, "config unchanged"},
		{"invalid config: 500 with the problems", post(), errors.New("medic.yml:3: services: at least one service is required"), false,
			http.StatusInternalServerError, "medic.yml:3: services"},
		{"GET", req{method: http.MethodGet}, nil, false, http.StatusMethodNotAllowed, "use POST"},
		{"same-origin browser request", post("Sec-Fetch-Site", "same-origin"), nil, false, http.StatusOK, "config reloaded."},
		{"cross-site browser request", post("Sec-Fetch-Site", "cross-site"), nil, false, http.StatusForbidden, "cross-origin"},
		{"foreign Origin", post("Origin", "https://evil.example"), nil, false, http.StatusForbidden, "cross-origin"},
		{"Origin of the request's own host", post("Origin", "http://medic.internal:9717"), nil, false, http.StatusOK, "config reloaded."},
		{"Origin of --web.external-url", post("Origin", "https://medic.example.com"), nil, false, http.StatusOK, "config reloaded."},
		{"foreign Referer without Origin", post("Referer", "https://evil.example/page"), nil, false, http.StatusForbidden, "cross-origin"},
		{"Referer of the external URL", post("Referer", "https://medic.example.com/medic/"), nil, false, http.StatusOK, "config reloaded."},
		{"a form", post("Content-Type", "application/x-www-form-urlencoded"), nil, false, http.StatusUnsupportedMediaType, "a form"},
		{"a multipart form", post("Content-Type", "multipart/form-data; boundary=x"), nil, false, http.StatusUnsupportedMediaType, "a form"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			calls := 0
			h := newReloadHandler(func(context.Context) (bool, error) {
				calls++
				return !tt.unchange && tt.result == nil, tt.result
			}, external)
			r := httptest.NewRequest(tt.req.method, "http://medic.internal:9717/-/reload", nil)
			for k, v := range tt.req.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("= %d %q, want %d containing %q", w.Code, w.Body.String(), tt.want, tt.body)
			}
			if wantCall := tt.want == http.StatusOK || tt.want == http.StatusInternalServerError; (calls == 1) != wantCall {
				t.Errorf("reload called %d times, want %v", calls, wantCall)
			}
		})
	}
}

// TestReloadRateLimit: a burst of reloadBurst goes through, the next gets
// 429 with Retry-After and never reaches the reloader. (No clock: the
// requests come faster than a token refills, one per second.)
func TestReloadRateLimit(t *testing.T) {
	calls := 0
	h := newReloadHandler(func(context.Context) (bool, error) { calls++; return false, nil }, nil)
	codes := []int{}
	for range reloadBurst + 2 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/-/reload", nil))
		codes = append(codes, w.Code)
		if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codes[0] != http.StatusOK || codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Errorf("codes = %v, want 200 first and 429 last", codes)
	}
	if calls > reloadBurst+1 || calls < reloadBurst {
		t.Errorf("the reloader ran %d times for %d requests, want about the burst (%d)", calls, len(codes), reloadBurst)
	}
}

func TestWebURLs(t *testing.T) {
	tests := []struct {
		desc, external, prefix, listen string
		wantURL, wantPrefix, wantErr   string
	}{
		{"defaults: the host name and the listen port", "", "", ":9717", "http://HOST:9717/", "", ""},
		{"port 0 falls back to medic's port", "", "", "127.0.0.1:0", "http://HOST:9717/", "", ""},
		{"the prefix is the external URL's path", "https://ops.example.com/medic/", "", ":9717", "https://ops.example.com/medic/", "/medic", ""},
		{"an explicit prefix wins, slashes trimmed", "https://ops.example.com/medic", "/x/y/", ":9717", "https://ops.example.com/medic", "/x/y", ""},
		{"a prefix without leading slash", "", "medic", ":9717", "http://HOST:9717/", "/medic", ""},
		{"the root prefix is empty", "https://ops.example.com/", "/", ":9717", "https://ops.example.com/", "", ""},
		{"not absolute", "ops.example.com/medic", "", ":9717", "", "", "is not an absolute http or https URL"},
		{"credentials refused, and redacted", "https://u:pw@ops.example.com/", "", ":9717", "", "", `"https://u:xxxxx@ops.example.com/" must not hold credentials`},
		{"a query refused", "https://ops.example.com/?token=x", "", ":9717", "", "", "must not hold credentials, a query or a fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			u, prefix, err := webURLs(tt.external, tt.prefix, tt.listen)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantURL
			if strings.Contains(want, "HOST") {
				want = strings.Replace(want, "HOST", u.Hostname(), 1)
				if u.Hostname() == "" {
					t.Errorf("no host in %s", u)
				}
			}
			if u.String() != want || prefix != tt.wantPrefix {
				t.Errorf("= %s, %q; want %s, %q", u, prefix, want, tt.wantPrefix)
			}
		})
	}
}

// TestParseFlags: the Prometheus command line; old flags keep working.
func TestParseFlags(t *testing.T) {
	var out, errOut strings.Builder
	f, exit := parseFlags([]string{"--config.file=x.yml", "--web.listen-address=127.0.0.1:1", "--web.listen-address=127.0.0.2:2",
		"--dry-run", "--log.level=debug", "--log.format=json", "--web.route-prefix=/medic", "--config.auto-reload"}, &out, &errOut)
	if exit != -1 {
		t.Fatalf("exit %d: %s", exit, errOut.String())
	}
	if f.configFile != "x.yml" || !f.dryRun || f.logLevel != "debug" || f.logFormat != "json" || f.routePrefix != "/medic" ||
		!f.autoReload || f.autoReloadInterval.String() != "5s" {
		t.Errorf("flags = %+v", f)
	}
	if got := *f.web.WebListenAddresses; len(got) != 2 || got[0] != "127.0.0.1:1" || got[1] != "127.0.0.2:2" {
		t.Errorf("listen addresses = %v", got)
	}

	for _, bad := range [][]string{{"--log.level=loud"}, {"--log.format=xml"}, {"--nope"}, {"extra"},
		{"--config.auto-reload", "--config.auto-reload-interval=0s"}, {"--web.external-url=nope"}} {
		errOut.Reset()
		if _, exit := parseFlags(bad, &out, &errOut); exit != 2 || errOut.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", bad, exit, errOut.String())
		}
	}
	out.Reset()
	if _, exit := parseFlags([]string{"--version"}, &out, &errOut); exit != 0 || !strings.HasPrefix(out.String(), "medic, version ") ||
		!strings.Contains(out.String(), "go version:") {
		t.Errorf("--version: exit %d, output %q", exit, out.String())
	}
	out.Reset()
	if _, exit := parseFlags([]string{"--help"}, &out, &errOut); exit != 0 || !strings.Contains(out.String(), "--web.route-prefix") {
		t.Errorf("--help: exit %d, output %q", exit, out.String())
	}
}

// TestConfigCheckWarns: --config.check passes a risky config and says why
// it is risky, with file and line.
func TestConfigCheckWarns(t *testing.T) {
	t.Setenv("MEDIC_TEST_KEY", "s3cret")
	path := t.TempDir() + "/medic.yml"
	src := "services:\n  - name: web\n    static_targets: [web.example.com:80]\n    instance_probe:\n      port: 80\n      headers_from_env: {X-Api-Key: MEDIC_TEST_KEY}\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	code := run([]string{"--config.check", "--config.file=" + path}, &out, &errOut)
	want := "warning: " + path + ":6: services[0].instance_probe.headers_from_env: instance_probe sends X-Api-Key from headers_from_env over plain http"
	if code != 0 || !strings.Contains(errOut.String(), want) || strings.Contains(errOut.String(), "s3cret") {
		t.Errorf("exit %d, stderr %q; want 0 and %q", code, errOut.String(), want)
	}
}
