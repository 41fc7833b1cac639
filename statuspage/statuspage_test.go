package statuspage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/probes"
)

func get(t *testing.T, h http.Handler, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func newTestPage(src Source, opts ...Option) *Page {
	return New(src, log.NewNopLogger(), append([]Option{WithClock(func() time.Time { return testNow })}, opts...)...)
}

func TestPageShowsServices(t *testing.T) {
	h := newTestPage(&fakeSource{sts: demoStatuses()}, WithLimits(demoLimits()))
	res, body := get(t, h, http.MethodGet, "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, want := range []struct{ desc, s string }{
		{"refreshes itself", `<meta http-equiv="refresh" content="5">`},
		{"service", `<h2>web <span class="tag suspect">guard refusing</span></h2>`[:8]},
		{"endpoint passing", `<span class="tag healthy">passing</span>`},
		{"endpoint debug link", `href="debug/target?key=web%2fendpoint"`},
		{"bad instance row", `<tr class="r-bad"><td class="mono"><a href="debug/target?key=web%2fi-0bad">i-0bad</a>`},
		{"bad instance reason", badReason},
		{"bad instance AZ and IP", `<td class="nw">us-east-1a</td><td class="mono">127.0.1.12</td>`},
		{"ASG reports it Unhealthy", `InService, <span class="tag bad">Unhealthy</span>`},
		{"load balancer column", `<th title="what the target groups report: shown as evidence, never acted on">load balancer</th>`},
		{"lb unhealthy, reason in tooltip", `<span class="mono">web-tg</span> <span class="tag bad" title="Target.ResponseCodeMismatch">unhealthy</span><br><span class="mono">admin-tg</span> <span class="tag suspect" title="Target.DeregistrationInProgress">draining</span></td></tr>`},
		{"lb healthy, no tooltip", `<span class="mono">web-tg</span> <span class="tag healthy">healthy</span></td></tr>`},
		{"no lb view", `<span class="meta" title="no target group reports this instance">—</span></td></tr>`},
		{"suspect reason", "1 failed probe (timeout) since 12:00:29Z, below unhealthy_after 3"},
		{"failed probe tooltip", `<i class="ko" title="12:00:29Z · 41ms · status 500">✗</i>`},
		{"passing probe tooltip", `<i class="ok" title="12:00:11Z · 5.0ms · ok, status 200">✓</i>`},
		{"timeout tooltip", `title="12:00:29Z · 41ms · timeout">✗</i>`},
		{"group health", `<td class="mono">web-asg</td><td class="n">6 (3–9)</td><td>1m0s</td><td class="n">6</td><td class="n">6</td><td class="n">4</td><td class="n">1</td><td class="n"><span class="tag bad">1</span></td><td class="n">1</td>`},
		{"rate budget", `<meter min="0" max="10" value="1"></meter> <span class="tag healthy">1 of 10</span> marks in the last hour, 9 left`},
		{"recent mark", `<span class="tag act">instance_marked</span> <span class="mono">marked</span>`},
		{"its action", "<td>marked Unhealthy in web-asg; the group replaces it</td>"},
		{"its subject and AZ", `<td class="mono">i-0bad <span class="meta">us-east-1a</span></td>`},
		{"needs action highlighted", `<tr class="needs"><td class="nw" title="2026-05-01T12:00:28Z">2s ago</td>` + "\n" +
			`<td><span class="tag bad">replacement_not_recovered</span></td>` + "\n" +
			`<td><span class="tag bad">critical</span> <span class="tag bad">needs action</span></td>`},
		{"an end", `<span class="tag healthy">mark_refused</span> <span class="meta">ended</span>`},
		{"monitor only", "monitor only"},
		{"frozen", "<b>Frozen</b>"},
		{"refusal", `<span class="tag suspect">service_wide_failure</span>`},
		{"fleet age", "fleet read from AWS <span title=\"2026-05-01T12:00:26Z\">4s ago</span>"},
		{"quota section", `<h2>Quota headroom</h2>`},
		{"critical quota", `<td class="n">6.2%</td>` + "\n" + `<td><span class="tag bad">critical</span></td><td title="peaks of 7 24h0m0s windows grow 3.6/day">exhausted in 26h (20h–40h)</td>`},
		{"limit from config, said so", `<td class="n">64 <span class="meta">config</span></td>`},
		{"failing sources folded into one line", "<summary>2 limit sources failing; the others still report. First: service_quotas_applied:ec2: servicequotas:ListServiceQuotas: HTTP 500</summary>"},
		{"not in use folded", "<summary>1 quota not in use (limit 0, nothing used)</summary>"},
		{"unknown folded", "<summary>1 quota without figures (limit or usage unknown)</summary>"},
		{"feasibility", `<td class="mono">web-asg</td><td class="n">6 → max 9</td><td><span class="tag healthy">fits</span></td>`},
	} {
		if !strings.Contains(body, want.s) {
			t.Errorf("%s: page lacks %q", want.desc, want.s)
		}
	}
	// The critical quota is listed before the ok one.
	if i, j := strings.Index(body, "L-1216C47A"), strings.Index(body, "L-CDE20ADC"); i < 0 || j < i {
		t.Errorf("critical quota not before the ok one (%d, %d)", i, j)
	}
	// The bad instance is the first row of web's table.
	if i, j := strings.Index(body, ">i-0bad<"), strings.Index(body, ">i-0a11<"); i < 0 || j < i {
		t.Errorf("bad instance not listed first (%d, %d)", i, j)
	}
	if strings.Contains(body, "X-Probe") {
		t.Error("probe headers leaked into the page")
	}
}

func TestPageEscapesMarkup(t *testing.T) {
	_, body := get(t, newTestPage(&fakeSource{sts: demoStatuses()}), http.MethodGet, "/")
	for _, want := range []struct{ desc, s string }{
		{"service name in heading", `<h2>&lt;script&gt;alert(1)&lt;/script&gt; <span`},
		{"service name in nav", `&lt;script&gt;alert(1)&lt;/script&gt;: frozen`},
		{"instance reason", `2 consecutive failed probes (body did not match &lt;img src=x onerror=&#34;document.body.dataset.pwned=1&#34;&gt;)`},
		{"probe reason in tooltip", `title="12:00:29Z · 41ms · body did not match &lt;img src=x onerror=&#34;document.body.dataset.pwned=1&#34;&gt;"`},
		{"refusal detail", `all 2 probed instances are bad &lt;b&gt;and&lt;/b&gt; the endpoint fails`},
		{"key in link", `href="debug/target?key=%3cscript%3ealert%281%29%3c%2fscript%3e%2fi-0e01"`},
		{"lb reason in tooltip", `title="Target.&#34;&gt;&lt;img src=x onerror=&#34;document.body.dataset.pwned=2&#34;&gt;"`},
	} {
		if !strings.Contains(body, want.s) {
			t.Errorf("%s: page lacks %q", want.desc, want.s)
		}
	}
	for _, bad := range []string{"<script", "<img", "<b>and"} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("page holds unescaped %q", bad)
		}
	}
	if strings.Contains(body, "no quota") || strings.Contains(body, "Quota headroom") {
		t.Error("quota section shown without a Limits")
	}
}

func TestPageNotReady(t *testing.T) {
	_, body := get(t, newTestPage(&notReadySource{fakeSource{sts: demoStatuses()}}), http.MethodGet, "/")
	want := "<b>medic is not ready</b>: last good discovery 2m0s ago: describe groups: &lt;throttled&gt;."
	if !strings.Contains(body, want) {
		t.Errorf("page lacks %q", want)
	}
}

func TestPageEmpty(t *testing.T) {
	res, body := get(t, newTestPage(&fakeSource{}), http.MethodGet, "/")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "No service is configured.") {
		t.Errorf("status %d, body:\n%s", res.StatusCode, body)
	}
}

func TestPageRowCap(t *testing.T) {
	sts := bigStatuses(1000) // bad: every 100th from index 7 → 10 bad
	h := newTestPage(&fakeSource{sts: sts}, WithMaxRows(25))
	_, body := get(t, h, http.MethodGet, "/")
	if got := strings.Count(body, `<tr class="r-`); got != 25 {
		t.Errorf("capped page shows %d instance rows, want 25", got)
	}
	if got := strings.Count(body, `<tr class="r-bad">`); got != 10 {
		t.Errorf("capped page shows %d bad rows, want all 10", got)
	}
	if !strings.Contains(body, `975 more instances not shown`) || !strings.Contains(body, `href="?all=1#svc-0"`) {
		t.Error("capped page does not say what it left out")
	}
	_, body = get(t, h, http.MethodGet, "/?all=1")
	if got := strings.Count(body, `<tr class="r-`); got != 1000 {
		t.Errorf("all=1 shows %d instance rows, want 1000", got)
	}
	if strings.Contains(body, "more instances not shown") {
		t.Error("all=1 still leaves rows out")
	}
}

func TestDebugView(t *testing.T) {
	h := newTestPage(&fakeSource{sts: demoStatuses()})
	for _, tc := range []struct {
		desc, target string
		status       int
		want         []string
	}{
		{desc: "bad instance", target: "/debug/target?key=web/i-0bad", status: http.StatusOK, want: []string{
			"Target:   web/i-0bad\n",
			"Instance: i-0bad (AZ us-east-1a)\n",
			"Address:  127.0.1.12:8080\n",
			"Probe:    http GET http://127.0.1.12:8080/healthz, every 2s, timeout 1s (headers not shown)\n",
			"Group:    web-asg, InService, Unhealthy per the group\n",
			"LB view:  web-tg unhealthy (Target.ResponseCodeMismatch), admin-tg draining (Target.DeregistrationInProgress) (evidence only, not acted on)\n",
			"Judged:   bad: " + badReason + "\n",
			"Action:   marked Unhealthy in web-asg; the group replaces it (3s ago)\n",
			"Last 16 probes, oldest first:\n",
			"start                     duration  lateness  status  success  reason\n",
			"2026-05-01T12:00:29.000Z  41ms      0s        500     false    status 500\n",
			"2026-05-01T11:59:59.000Z  3ms       0s        200     true     -\n",
			`log lines about this target carry target="web/i-0bad"`,
		}},
		{desc: "blackbox-style query", target: "/?target=web%2Fendpoint&debug=true", status: http.StatusOK, want: []string{
			"Target:   web/endpoint\n", "Kind:     service endpoint (through the load balancer)\n", "Probe:    http GET http://127.0.0.1:18080/healthz,", "Last 16 probes",
		}},
		{desc: "markup stays text", target: "/debug/target?key=" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E%2Fi-0e01", status: http.StatusOK, want: []string{
			"Service:  <script>alert(1)</script>\n", "Guard:    refused (service_wide_failure): " + evilDetail + "\n",
		}},
		{desc: "instance no target group reports", target: "/debug/target?key=" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E%2Fi-0e02", status: http.StatusOK, want: []string{
			"LB view:  no target group reports it\n",
		}},
		{desc: "endpoint probes, newest last", target: "/debug/target?key=web/endpoint", status: http.StatusOK, want: []string{
			"2026-05-01T12:00:29.000Z  6ms       0s        200     true     -\n",
		}},
		{desc: "unknown key", target: "/debug/target?key=web/i-gone", status: http.StatusNotFound, want: []string{`unknown target "web/i-gone"`}},
		{desc: "no key", target: "/debug/target", status: http.StatusNotFound, want: []string{`unknown target ""`}},
		{desc: "unknown key, query form", target: "/?target=nope&debug=true", status: http.StatusNotFound, want: []string{`unknown target "nope"`}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res, body := get(t, h, http.MethodGet, tc.target)
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.StatusCode, tc.status)
			}
			if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff: a browser could sniff the text as HTML")
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("lacks %q in:\n%s", w, body)
				}
			}
			if strings.Contains(body, "X-Probe") {
				t.Error("probe headers leaked")
			}
		})
	}
}

func TestRouting(t *testing.T) {
	h := newTestPage(&fakeSource{sts: demoStatuses()})
	for _, tc := range []struct {
		desc, method, target string
		status               int
	}{
		{"page", http.MethodGet, "/", http.StatusOK},
		{"head", http.MethodHead, "/", http.StatusOK},
		{"other path", http.MethodGet, "/favicon.ico", http.StatusNotFound},
		{"debug without debug=true is the page", http.MethodGet, "/?target=web/endpoint", http.StatusOK},
		{"post", http.MethodPost, "/", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res, _ := get(t, h, tc.method, tc.target)
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.StatusCode, tc.status)
			}
		})
	}
}

// TestPageEventsAsGiven: the page lists the controller's events as they
// are, keeps none of its own, and says so when there is none.
func TestPageEventsAsGiven(t *testing.T) {
	src := &fakeSource{sts: demoStatuses()}
	h := newTestPage(src)
	_, body := get(t, h, http.MethodGet, "/")
	if got := strings.Count(body, `<tr class="needs">`); got != 1 {
		t.Errorf("%d rows needing action, want 1", got)
	}
	if i, j := strings.Index(body, "replacement_not_recovered"), strings.Index(body, "instance_marked"); i < 0 || j < i {
		t.Error("events not in the order given (newest first)")
	}
	// The next render holds no event: nothing is left from the last one.
	src.sts[1].Events = nil
	_, body = get(t, h, http.MethodGet, "/")
	if strings.Contains(body, "instance_marked") || !strings.Contains(body, "No event since medic started.") {
		t.Error("the page kept events the controller no longer gives")
	}
}

func TestPageUnjudgedAndUnprobed(t *testing.T) {
	sts := demoStatuses()
	web := &sts[1]
	// A new instance the last cycle did not judge, and one never probed
	// (outside allowed_networks: no target).
	fresh := web.Snapshot.Instances[0]
	fresh.ID, fresh.LifecycleState = "i-0new", "Pending"
	web.Snapshot.Instances = append(web.Snapshot.Instances, fresh)
	web.Targets = web.Targets[1 : len(web.Targets)-1] // drop the endpoint's and i-0b23's targets
	web.Targets = append(web.Targets, probes.Target{Key: "web/static/127.0.0.9:9100", Service: "web", Address: "127.0.0.9:9100"})
	web.Probes["web/static/127.0.0.9:9100"] = history(testNow, 3, 3)
	_, body := get(t, newTestPage(&fakeSource{sts: sts}), http.MethodGet, "/")
	for _, want := range []string{
		`<tr class="r-not_judged"><td class="mono">i-0new</td>`,
		"in the fleet since the last heal cycle; judged at the next",
		`<span class="tag not_judged">not_judged</span> 1`,
		`<td class="mono">i-0b23</td>`,
		`<td class="strip"><span class="meta">not probed</span></td>`,
		`<td class="mono">http://127.0.0.1:18080/healthz</td>` + "\n" + `<td><span class="tag unknown">not probed</span></td>` + "\n<td>not probed yet</td>",
		"<h3>Static targets (probed, never acted on)</h3>",
		`<a href="debug/target?key=web%2fstatic%2f127.0.0.9%3a9100">127.0.0.9:9100</a></td>` + "\n" + `<td><span class="tag bad">failing</span></td>` + "\n<td>status 500</td>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		desc string
		d    time.Duration
		want string
	}{
		{"zero", 0, "0s"},
		{"rounds to seconds", 1499 * time.Millisecond, "1s"},
		{"just under a minute", 59 * time.Second, "59s"},
		{"exactly a minute", time.Minute, "1m"},
		{"minutes and seconds", 3*time.Minute + 20*time.Second, "3m20s"},
		{"exactly an hour", time.Hour, "1h"},
		{"hours and minutes", 26*time.Hour + 5*time.Minute, "26h5m"},
		{"two days", 48 * time.Hour, "2d"},
		{"days and hours", 76 * time.Hour, "3d4h"},
	} {
		if got := human(tc.d); got != tc.want {
			t.Errorf("%s: human(%v) = %q, want %q", tc.desc, tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		desc string
		t    time.Time
		want string
	}{
		{"zero time", time.Time{}, ""},
		{"under a second", testNow.Add(-time.Millisecond), "just now"},
		{"past", testNow.Add(-4 * time.Second), "4s ago"},
		{"future", testNow.Add(90 * time.Second), "in 1m30s"},
	} {
		if got := ago(testNow, tc.t); got != tc.want {
			t.Errorf("%s: ago = %q, want %q", tc.desc, got, tc.want)
		}
	}
}

// TestPageHidesQueryValues: an endpoint's query values never show, on the
// page nor in the debug view (config refuses secret-looking keys; this
// hides what it could not tell was one).
func TestPageHidesQueryValues(t *testing.T) {
	sts := demoStatuses()
	web := &sts[1]
	const withQuery = "http://127.0.0.1:18080/healthz?deep=opensesame"
	for i := range web.Targets {
		if web.Targets[i].Address == web.Service.Endpoint {
			web.Targets[i].Address = withQuery
		}
	}
	web.Service.Endpoint = withQuery
	page := newTestPage(&fakeSource{sts: sts})
	_, body := get(t, page, http.MethodGet, "/")
	if strings.Contains(body, "opensesame") || !strings.Contains(body, "healthz?deep=xxxxx") {
		t.Errorf("the page shows the query value, or not the redacted URL")
	}
	_, debug := get(t, page, http.MethodGet, "/debug/target?key=web/endpoint")
	if strings.Contains(debug, "opensesame") || !strings.Contains(debug, "healthz?deep=xxxxx") {
		t.Errorf("the debug view shows the query value, or not the redacted URL:\n%s", debug)
	}
}

// countingResults serves a Status's probe results the way the scheduler
// does (controller.ProbeResults), counting the histories read.
type countingResults struct {
	m         map[string][]probes.Result
	histories int
}

func (c *countingResults) History(key string) []probes.Result { c.histories++; return c.m[key] }
func (c *countingResults) Last(key string) (probes.Result, bool) {
	h := c.m[key]
	if len(h) == 0 {
		return probes.Result{}, false
	}
	return h[len(h)-1], true
}

func TestPageReadsHistoriesOfShownRowsOnly(t *testing.T) {
	for _, tc := range []struct {
		desc          string
		all           bool
		wantHistories int
	}{
		{desc: "capped page: the 25 rows shown and the endpoint", wantHistories: 26},
		{desc: "all=1: every instance and the endpoint", all: true, wantHistories: 1001},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			want, got := bigStatuses(1000), bigStatuses(1000)
			res := &countingResults{m: got[0].Probes}
			got[0].Probes, got[0].Results = nil, res
			path := "/"
			if tc.all {
				path = "/?all=1"
			}
			_, wantBody := get(t, newTestPage(&fakeSource{sts: want}, WithMaxRows(25)), http.MethodGet, path)
			_, gotBody := get(t, newTestPage(&fakeSource{sts: got}, WithMaxRows(25)), http.MethodGet, path)
			if gotBody != wantBody {
				t.Error("the page read through Results differs from the page read from Probes")
			}
			if res.histories != tc.wantHistories {
				t.Errorf("histories read = %d, want %d", res.histories, tc.wantHistories)
			}
		})
	}
}
