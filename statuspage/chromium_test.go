package statuspage

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/medic-sre/medic/internal/testkit"
)

// TestChromium loads the page in a real headless browser: the DOM it built
// shows the broken instance with its reason, holds no element made from
// the markup in names and reasons, and a screenshot is kept.
func TestChromium(t *testing.T) {
	bin := testkit.Chromium(t)
	srv := httptest.NewServer(newTestPage(&fakeSource{sts: demoStatuses()}, WithLimits(demoLimits())))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on loopback: %s", srv.URL)
	}
	url := srv.URL + "/"

	dom := string(testkit.RunChromium(t, bin, "--dump-dom", url))
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
		{"the event needing action highlighted", `<tr class="needs">`},
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

	testkit.Screenshot(t, bin, url, "statuspage.png")
}
