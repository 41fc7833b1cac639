package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeBuild builds medic with `make build` into a temporary directory and
// returns the binary's path.
func makeBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "medic")
	cmd := exec.Command("make", "-C", "../..", "build", "BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	return bin
}

// gitOut runs git in the repository and returns its trimmed output.
func gitOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// TestE2EDaemonCommandLine: a binary built by `make build` prints the
// Prometheus version block, exports medic_build_info with its labels, and
// serves every endpoint on two listen addresses under --web.route-prefix,
// the status page's links included.
func TestE2EDaemonCommandLine(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 1})
	bin := makeBuild(t)
	rev, branch := gitOut(t, "rev-parse", "HEAD"), gitOut(t, "rev-parse", "--abbrev-ref", "HEAD")

	code, out := runToEndBinary(t, bin, os.Environ(), "--version")
	wantVersion := regexp.MustCompile(`^medic, version \S+ \(branch: ` + regexp.QuoteMeta(branch) + `, revision: ` + rev + `\)
  build user:       \S+@\S+
  build date:       \d{8}-\d\d:\d\d:\d\d
  go version:       go\S+
  platform:         ` + runtime.GOOS + "/" + runtime.GOARCH + `
  tags:             netgo
$`)
	if code != 0 || !wantVersion.MatchString(out) {
		t.Errorf("--version exited %d:\n%s\nwant the version block matching\n%s", code, out, wantVersion)
	}

	cfg := w.writeConfig("medic.yml", w.config(cfgOpts{}))
	args := []string{"--config.file=" + cfg, "--web.listen-address=127.0.0.1:0", "--web.listen-address=127.0.0.2:0",
		"--web.external-url=https://ops.example.com/medic/", "--log.format=json", "--log.level=debug"}
	m := startBinary(t, bin, append(os.Environ(), w.proxy.Env()...), args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("medic output:\n%s", m.out.String())
		}
	})
	defer m.stop(syscall.SIGTERM)
	var addrs []string
	eventually(t, startTimeout, "two listening lines", func() (bool, string) {
		addrs = nil
		for _, l := range m.logsWith("msg", "listening") {
			addrs = append(addrs, fmt.Sprint(l["address"]))
			if l["route_prefix"] != "/medic" {
				return false, fmt.Sprintf("route_prefix = %v", l["route_prefix"])
			}
		}
		return len(addrs) == 2, fmt.Sprintf("listening on %v", addrs)
	})
	if !strings.HasPrefix(addrs[0], "127.0.0.1:") || !strings.HasPrefix(addrs[1], "127.0.0.2:") {
		t.Fatalf("listening on %v, want 127.0.0.1 and 127.0.0.2", addrs)
	}
	m.addr = addrs[0]

	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(addr, path string) (int, string, http.Header) {
		resp, err := noRedirect.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", addr, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, addr := range addrs {
		for _, path := range []string{"/medic/metrics", "/medic/-/healthy", "/medic/"} {
			if code, body, _ := get(addr, path); code != http.StatusOK {
				t.Errorf("GET %s%s = %d %.200q, want 200", addr, path, code, body)
			}
		}
		for _, path := range []string{"/metrics", "/-/healthy", "/debug/target"} {
			if code, _, _ := get(addr, path); code != http.StatusNotFound {
				t.Errorf("GET %s%s = %d, want 404 outside the prefix", addr, path, code)
			}
		}
		if code, _, h := get(addr, "/"); code != http.StatusFound || h.Get("Location") != "/medic/" {
			t.Errorf("GET %s/ = %d to %q, want a redirect to /medic/", addr, code, h.Get("Location"))
		}
	}

	// The status page's links to a target's debug view resolve under the prefix.
	m.waitReady2("/medic/-/ready")
	var link string
	eventually(t, 30*time.Second, "a debug link on the status page", func() (bool, string) {
		_, body, _ := get(m.addr, "/medic/")
		mm := regexp.MustCompile(`href="(debug/target\?key=[^"]+)"`).FindStringSubmatch(body)
		if mm == nil {
			return false, "no debug/target link yet"
		}
		link = strings.ReplaceAll(mm[1], "&amp;", "&")
		return true, ""
	})
	if code, body, _ := get(m.addr, "/medic/"+link); code != http.StatusOK {
		t.Errorf("GET /medic/%s (the page's link, resolved against /medic/) = %d %.200q, want 200", link, code, body)
	}

	// medic_build_info carries what make build stamped.
	_, metrics, _ := get(addrs[1], "/medic/metrics")
	wantInfo := regexp.MustCompile(`(?m)^medic_build_info\{branch="` + regexp.QuoteMeta(branch) + `",goarch="` + runtime.GOARCH +
		`",goos="` + runtime.GOOS + `",goversion="go\S+",revision="` + rev + `",tags="netgo",version="[^"]+"\} 1$`)
	if !wantInfo.MatchString(metrics) {
		t.Errorf("medic_build_info does not match %s:\n%s", wantInfo, grepLines(metrics, "medic_build_info"))
	}
}

// TestE2EVersionPlainBuild: a plain `go build` (no -ldflags) still names
// its revision, from Go's VCS stamp.
func TestE2EVersionPlainBuild(t *testing.T) {
	skipShort(t)
	if fi, err := os.Stat(filepath.Join(gitOut(t, "rev-parse", "--show-toplevel"), ".git")); err != nil || !fi.IsDir() {
		t.Skip("go stamps VCS information only in a clone whose .git is a directory, not in a git worktree")
	}
	bin := filepath.Join(t.TempDir(), "medic")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true") // this machine's default turns stamping off
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rev := gitOut(t, "rev-parse", "HEAD")
	code, out := runToEndBinary(t, bin, os.Environ(), "--version")
	if code != 0 || !strings.Contains(out, "revision: "+rev) {
		t.Errorf("--version of a plain build exited %d:\n%s\nwant revision %s (or %s-modified)", code, out, rev, rev)
	}
}

// TestE2EReloadGuards: /-/reload with the file unchanged, or changed in
// form only, replaces nothing and starts no AWS refresh; requests beyond
// the rate limit get 429; a cross-site browser request and a form get
// refused; with --config.auto-reload a changed file is applied.
func TestE2EReloadGuards(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 1})
	valid := w.config(cfgOpts{})
	cfgFile := w.writeConfig("medic.yml", valid)
	m := w.startMedic(cfgFile, "--config.auto-reload", "--config.auto-reload-interval=200ms")
	m.waitReady()
	reloaded := func() int { return len(m.logsWith("msg", "config reloaded")) }
	// The quota watcher refreshes at start, then every 5 minutes: a reload
	// that forced a refresh would move its timestamp.
	m.waitMetric(30*time.Second, func(v float64) bool { return v > 0 }, "medic_limits_last_refresh_timestamp_seconds")
	limitsRefresh := m.metrics().val("medic_limits_last_refresh_timestamp_seconds")

	// Unchanged: 200 "unchanged", nothing reloaded. A burst: some 429s, and
	// the ones let through change nothing either.
	codes := map[int]int{}
	for range 10 {
		code, body, err := m.post("/-/reload")
		if err != nil {
			t.Fatal(err)
		}
		codes[code]++
		if code == http.StatusOK && !strings.Contains(body, "unchanged") {
			t.Errorf("reload of an unchanged file = %q, want it to say unchanged", body)
		}
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusOK] == 0 || codes[http.StatusOK]+codes[http.StatusTooManyRequests] != 10 {
		t.Errorf("10 reloads in a burst answered %v, want some 200 and the rest 429", codes)
	}
	if n := reloaded(); n != 0 {
		t.Errorf("%d reloads applied for an unchanged file, want 0", n)
	}

	// Cross-site and form requests are refused before the reloader.
	for _, tc := range []struct {
		desc   string
		header http.Header
		want   int
	}{
		{"foreign Origin", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"cross-site fetch", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"a form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, http.StatusUnsupportedMediaType},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+m.addr+"/-/reload", bytes.NewReader([]byte("a=b")))
		for k, v := range tc.header {
			req.Header[k] = v
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: POST /-/reload = %d, want %d", tc.desc, resp.StatusCode, tc.want)
		}
	}

	// The same config written differently (a comment): nothing reloaded.
	w.writeConfig("medic.yml", "# a comment changes the bytes, not the config\n"+valid)
	eventually(t, 10*time.Second, "the file change noticed", func() (bool, string) {
		return len(m.logsWith("msg", "config file changed but means the same; nothing to reload")) > 0, "not yet"
	})
	if n := reloaded(); n != 0 {
		t.Errorf("%d reloads applied for a file that means the same, want 0", n)
	}

	if v := m.metrics().val("medic_limits_last_refresh_timestamp_seconds"); v != limitsRefresh {
		t.Errorf("the limits were refreshed again (at %v, after %v): a no-op reload forced AWS calls", v, limitsRefresh)
	}

	// A real change is applied by the file watcher.
	w.writeConfig("medic.yml", w.config(cfgOpts{MaxUnhealthy: "1"}))
	eventually(t, 10*time.Second, "the changed file reloaded", func() (bool, string) {
		return len(m.logsWith("msg", "config reloaded", "trigger", "file change")) == 1, "not yet"
	})
}

// TestE2EPromtoolCheckMetrics: a running medic's /metrics passes
// `promtool check metrics`, Prometheus's own linter.
func TestE2EPromtoolCheckMetrics(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not installed (make deps)")
	}
	w := newWorld(t, fleetOpts{PerAZ: 1})
	m := w.startMedic(w.writeConfig("medic.yml", w.config(cfgOpts{})))
	m.waitReady()
	m.waitProbes(svc, 2*len(w.instances()), 30*time.Second)
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.addr+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4") // the format promtool reads
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// runToEndBinary is runToEnd for a given binary.
func runToEndBinary(t *testing.T, bin string, env []string, args ...string) (int, string) {
	t.Helper()
	m := startBinary(t, bin, env, args...)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
		t.Fatalf("medic %v did not end within 30s:\n%s", args, m.out.String())
	}
	return m.cmd.ProcessState.ExitCode(), m.out.String()
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
