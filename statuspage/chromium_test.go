package statuspage

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium returns the path of a Chromium binary, skipping the test when
// none is installed (CI installs Debian's chromium through .ci/deps).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not installed (Debian package chromium; make deps installs it)")
	return ""
}

// runChromium runs headless Chromium with a fresh profile and no network
// chatter of its own, and returns its stdout.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// TestChromium loads the page in a real headless browser: the DOM it built
// shows the broken instance with its reason, holds no element made from
// the markup in names and reasons, and a screenshot is kept.
func TestChromium(t *testing.T) {
	bin := chromium(t)
	srv := httptest.NewServer(newTestPage(&fakeSource{sts: demoStatuses()}, WithLimits(demoLimits())))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on loopback: %s", srv.URL)
	}
	url := srv.URL + "/"

	dom := string(runChromium(t, bin, "--dump-dom", url))
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("no DOM dumped:\n%s", dom)
	}
	for _, want := range []struct{ desc, s string }{
		{"broken instance", `<a href="debug/target?key=web%2fi-0bad">i-0bad</a>`},
		{"its judged state", `<tr class="r-bad"><td class="mono"><a href="debug/target?key=web%2fi-0bad">`},
		{"its reason", badReason},
		// A text node serialises with < as &lt;: the name stayed text.
		{"markup service name as text", "<h2>&lt;script&gt;alert(1)&lt;/script&gt; <span"},
		{"markup reason as text", `body did not match &lt;img src=x onerror="document.body.dataset.pwned=1"&gt;)`},
		{"quota headroom", "Running On-Demand Standard instances (vCPUs)"},
	} {
		if !strings.Contains(dom, want.s) {
			t.Errorf("%s: DOM lacks %q", want.desc, want.s)
		}
	}
	lower := strings.ToLower(dom)
	for _, bad := range []string{"<script", "<img", "data-pwned", "<b>and"} {
		if strings.Contains(lower, bad) {
			t.Errorf("DOM holds %q: markup from a name or reason became an element", bad)
		}
	}

	dir := os.Getenv("MEDIC_ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "statuspage.png")
	_ = os.Remove(shot)
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1400,1000", url)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10<<10 {
		t.Errorf("screenshot %s is not a plausible PNG (%d bytes)", shot, len(png))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}
