package main

// The harness of the end-to-end suite (e2e_test.go): it builds the real
// medic binary once, and per test starts a moto_server, a fault proxy in
// front of it, a loopback fleet with one app server per instance, a small
// service endpoint the test controls, and medic itself as a child process
// reaching AWS through the proxy (AWS_ENDPOINT_URL), exactly as in
// production. Everything listens on and talks to 127.0.0.0/8.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/medic-sre/medic/internal/emulator"
)

// e2e timing: short intervals keep the suite fast; every wait is bounded.
const (
	probeInterval = time.Second
	stopTimeout   = 5 * time.Second // the bound for a clean exit
	startTimeout  = 60 * time.Second
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// medicBinary builds ./ once per test run (with -race when the tests run
// with it, so data races in the binary surface) and returns its path.
func medicBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "medic-e2e-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "medic")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, ".")
		cmd := exec.Command("go", args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// skipShort skips e2e tests under -short: they start moto and processes.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: starts moto_server and the medic binary")
	}
}

// eventually polls cond every 50ms until it holds or timeout passes, then
// fails the test with cond's last explanation.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s: %s", timeout, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- the world around medic ----

// fleetOpts shape one test's fleet.
type fleetOpts struct {
	PerAZ int           // default 2
	Grace time.Duration // the group's HealthCheckGracePeriod
}

// world is one test's emulator, proxy, fleet and service endpoint.
type world struct {
	t     *testing.T
	ctx   context.Context
	moto  *emulator.Moto
	proxy *emulator.FaultProxy
	fleet *emulator.Fleet
	group string
	port  int
	lb    *endpoint
	dir   string
	// Clients that reach moto directly (not through the proxy), for the
	// test's own reads and its interventions.
	asg *autoscaling.Client
	ec2 *ec2.Client
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// newWorld starts moto, the fault proxy, the fleet (two AZs) with its app
// servers and the endpoint, and asserts that every instance IP is in
// 127.0.0.0/8 before anything probes it.
func newWorld(t *testing.T, o fleetOpts) *world {
	t.Helper()
	skipShort(t)
	if o.PerAZ == 0 {
		o.PerAZ = 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	w := &world{t: t, ctx: ctx, group: "e2e-web", dir: t.TempDir()}
	w.moto = emulator.StartMotoT(t)
	var err error
	if w.proxy, err = emulator.StartFaultProxy(w.moto.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.proxy.Close() })
	w.asg = autoscaling.NewFromConfig(w.moto.Config())
	w.ec2 = ec2.NewFromConfig(w.moto.Config())
	w.fleet, err = emulator.BuildFleet(ctx, w.moto.Config(), emulator.FleetSpec{
		Group: w.group, AZs: []string{"us-east-1a", "us-east-1b"}, PerAZ: o.PerAZ, GracePeriod: o.Grace,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.fleet.Close)
	if w.port, err = w.fleet.StartApps(ctx, 0); err != nil {
		t.Fatal(err)
	}
	insts := w.instances()
	if len(insts) != 2*o.PerAZ {
		t.Fatalf("fleet has %d instances, want %d", len(insts), 2*o.PerAZ)
	}
	w.assertLoopback(insts)
	w.lb = startEndpoint(t)
	return w
}

// assertLoopback fails the test unless every instance IP is in 127.0.0.0/8:
// medic probes these addresses, and traffic must stay on loopback.
func (w *world) assertLoopback(insts []emulator.FleetInstance) {
	w.t.Helper()
	for _, in := range insts {
		if !in.IP.IsValid() || !loopback.Contains(in.IP) {
			w.t.Fatalf("instance %s has IP %v, not in %v: refusing to probe it", in.ID, in.IP, loopback)
		}
	}
}

func (w *world) instances() []emulator.FleetInstance {
	w.t.Helper()
	insts, err := w.fleet.Instances(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	return insts
}

// health is the group's view of every member: id → Healthy/Unhealthy.
func (w *world) health() map[string]string {
	w.t.Helper()
	out := map[string]string{}
	for _, in := range w.instances() {
		out[in.ID] = in.Health
	}
	return out
}

// app is the app server of instance id; the test fails if there is none.
func (w *world) app(id string) *emulator.AppServer {
	w.t.Helper()
	a := w.fleet.App(id)
	if a == nil {
		w.t.Fatalf("no app server for %s", id)
	}
	return a
}

// launchTimes reads each instance's LaunchTime from EC2, as medic does.
func (w *world) launchTimes(ids ...string) map[string]time.Time {
	w.t.Helper()
	out, err := w.ec2.DescribeInstances(w.ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		w.t.Fatal(err)
	}
	lt := map[string]time.Time{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			lt[aws.ToString(in.InstanceId)] = aws.ToTime(in.LaunchTime)
		}
	}
	return lt
}

// waitUnhealthy waits until the group reports id Unhealthy and returns when
// the test saw it.
func (w *world) waitUnhealthy(id string, timeout time.Duration) time.Time {
	w.t.Helper()
	var at time.Time
	eventually(w.t, timeout, id+" Unhealthy in the emulator", func() (bool, string) {
		h := w.health()
		at = time.Now()
		return h[id] == "Unhealthy", fmt.Sprintf("group health %v", h)
	})
	return at
}

// markRecorder records, at the proxy, when each SetInstanceHealth call was
// forwarded to the emulator.
type markRecorder struct {
	mu    sync.Mutex
	times []time.Time
}

func (w *world) recordMarks() *markRecorder {
	r := &markRecorder{}
	w.proxy.OnAction("SetInstanceHealth", func(http.ResponseWriter, *http.Request) bool {
		r.mu.Lock()
		r.times = append(r.times, time.Now())
		r.mu.Unlock()
		return false
	})
	return r
}

func (r *markRecorder) first() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.times) == 0 {
		return time.Time{}, false
	}
	return r.times[0], true
}

// endpoint is the service's endpoint, standing in for its load balancer:
// GET /health answers 200 "ok", or the status the test sets.
type endpoint struct {
	srv    *httptest.Server
	status atomic.Int32
}

func startEndpoint(t *testing.T) *endpoint {
	e := &endpoint{}
	e.status.Store(http.StatusOK)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		code := int(e.status.Load())
		w.WriteHeader(code)
		if code == http.StatusOK {
			_, _ = io.WriteString(w, "ok")
		} else {
			_, _ = io.WriteString(w, "failing")
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) URL() string     { return e.srv.URL + "/health" }
func (e *endpoint) setStatus(c int) { e.status.Store(int32(c)) }

// ---- medic's config ----

// cfgOpts fill the config template; zero values take the defaults below.
type cfgOpts struct {
	Service        string
	Endpoint       string
	Group          string
	Port           int
	BodyMustMatch  string
	UnhealthyAfter int    // default 3
	HealthyAfter   int    // default 2
	MaxUnhealthy   string // default 34%
	GracePeriod    string // default asg
}

var cfgTmpl = template.Must(template.New("cfg").Parse(`# written by the e2e suite
global:
  region: us-east-1
  environment: e2e
  allowed_networks: [127.0.0.0/8]
  discovery_interval: 1s
services:
  - name: {{.Service}}
{{- if .Endpoint}}
    endpoint: {{.Endpoint}}
{{- end}}
    auto_scaling_groups: [{{.Group}}]
    instance_probe:
      type: http
      port: {{.Port}}
      path: /health
      interval: 1s
      timeout: 500ms
      expect_status: ["200-299"]
{{- if .BodyMustMatch}}
      body_must_match: '{{.BodyMustMatch}}'
{{- end}}
    endpoint_probe:
      interval: 1s
      timeout: 500ms
    policy:
      unhealthy_after: {{.UnhealthyAfter}}
      healthy_after: {{.HealthyAfter}}
      max_unhealthy: {{.MaxUnhealthy}}
      grace_period: {{.GracePeriod}}
      max_actions_per_hour: 10
`))

// config renders o (with this world's group, port and endpoint unless set)
// and returns its text.
func (w *world) config(o cfgOpts) string {
	w.t.Helper()
	if o.Service == "" {
		o.Service = "web"
	}
	if o.Group == "" {
		o.Group = w.group
	}
	if o.Port == 0 {
		o.Port = w.port
	}
	if o.Endpoint == "" {
		o.Endpoint = w.lb.URL()
	}
	if o.UnhealthyAfter == 0 {
		o.UnhealthyAfter = 3
	}
	if o.HealthyAfter == 0 {
		o.HealthyAfter = 2
	}
	if o.MaxUnhealthy == "" {
		o.MaxUnhealthy = "34%"
	}
	if o.GracePeriod == "" {
		o.GracePeriod = "asg"
	}
	var b bytes.Buffer
	if err := cfgTmpl.Execute(&b, o); err != nil {
		w.t.Fatal(err)
	}
	return b.String()
}

// writeConfig writes text to name in the test's directory.
func (w *world) writeConfig(name, text string) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// ---- the medic process ----

// medic is one running medic binary.
type medic struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer // stdout and stderr
	addr string              // host:port of its web server
	done chan struct{}
	err  error // Wait's result, valid after done
}

// startMedic runs medic with cfgFile, reaching AWS through the world's
// proxy, logging JSON at debug level, its web server on a free loopback
// port. It returns once medic logs the address it listens on. When the
// test ends medic gets SIGTERM and must exit 0 within stopTimeout; if the
// test failed, medic's output is logged.
func (w *world) startMedic(cfgFile string, extra ...string) *medic {
	w.t.Helper()
	return w.startMedicVia(w.proxy, cfgFile, extra...)
}

// startMedicVia is startMedic reaching AWS through proxy (a second replica
// gets a proxy of its own, so that the test can fail one replica's calls).
func (w *world) startMedicVia(proxy *emulator.FaultProxy, cfgFile string, extra ...string) *medic {
	w.t.Helper()
	args := append([]string{"--config.file=" + cfgFile, "--web.listen-address=127.0.0.1:0",
		"--log.format=json", "--log.level=debug"}, extra...)
	m := startProcess(w.t, append(os.Environ(), proxy.Env()...), args...)
	w.t.Cleanup(func() {
		if w.t.Failed() {
			w.t.Logf("medic output:\n%s", m.out.String())
		}
	})
	w.t.Cleanup(func() {
		select {
		case <-m.done:
			return // the test already stopped it and checked how
		default:
		}
		m.stop(syscall.SIGTERM)
	})
	eventually(w.t, startTimeout, "listening", func() (bool, string) {
		select {
		case <-m.done:
			w.t.Fatalf("medic exited during start-up (%v):\n%s", m.err, m.out.String())
		default:
		}
		for _, l := range m.logs() {
			if l["msg"] == "listening" {
				m.addr, _ = l["address"].(string)
				return m.addr != "", ""
			}
		}
		return false, "no 'listening' line yet"
	})
	return m
}

func startProcess(t *testing.T, env []string, args ...string) *medic {
	t.Helper()
	return startBinary(t, medicBinary(t), env, args...)
}

// startBinary runs the medic binary at bin with args and env.
func startBinary(t *testing.T, bin string, env []string, args ...string) *medic {
	t.Helper()
	m := &medic{t: t, out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = env
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	return m
}

// runToEnd runs the binary with args (no AWS environment) and returns its
// exit code and output; it must end within 30s.
func runToEnd(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	return runToEndBinary(t, medicBinary(t), env, args...)
}

// stop sends sig and asserts medic exits 0 within stopTimeout, and that the
// race detector found nothing.
func (m *medic) stop(sig syscall.Signal) {
	m.t.Helper()
	start := time.Now()
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Errorf("signal %v: %v", sig, err)
	}
	select {
	case <-m.done:
	case <-time.After(stopTimeout):
		_ = m.cmd.Process.Kill()
		<-m.done
		m.t.Errorf("medic did not exit within %s of %v", stopTimeout, sig)
		return
	}
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		m.t.Errorf("medic exited with code %d after %v (%v), want 0", code, sig, m.err)
	}
	if strings.Contains(m.out.String(), "WARNING: DATA RACE") {
		m.t.Errorf("the race detector found a data race in medic")
	}
	m.t.Logf("medic stopped by %v in %s", sig, time.Since(start).Round(time.Millisecond))
}

// logs parses medic's JSON log lines (other lines are skipped).
func (m *medic) logs() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(m.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var l map[string]any
		if json.Unmarshal(line, &l) == nil {
			l["_raw"] = string(line)
			out = append(out, l)
		}
	}
	return out
}

// logsWith returns the log lines whose fields equal every key/value pair
// of kv (values compared as strings).
func (m *medic) logsWith(kv ...string) []map[string]any {
	var out []map[string]any
	for _, l := range m.logs() {
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			if fmt.Sprint(l[kv[i]]) != kv[i+1] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// get fetches path from medic's web server.
func (m *medic) get(path string) (int, string, error) {
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Get("http://" + m.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (m *medic) post(path string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post("http://"+m.addr+path, "text/plain", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// reload posts /-/reload, waiting out the rate limit (429) for up to 10s.
func (m *medic) reload() (code int, body string, err error) {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err = m.post("/-/reload")
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			return code, body, err
		}
		time.Sleep(100 * time.Millisecond) // polling the limiter, bounded by the deadline
	}
}

func (m *medic) waitReady() { m.t.Helper(); m.waitReady2("/-/ready") }

// waitReady2 waits until path (/-/ready under a route prefix) answers 200.
func (m *medic) waitReady2(path string) {
	m.t.Helper()
	eventually(m.t, 30*time.Second, "ready", func() (bool, string) {
		code, body, err := m.get(path)
		return code == http.StatusOK, fmt.Sprintf("/-/ready: %d %q %v", code, body, err)
	})
}

// ---- medic's metrics ----

type sample struct {
	labels map[string]string
	value  float64
}

// metricsText is one scrape of /metrics in the text format.
type metricsText struct {
	raw     string
	samples map[string][]sample // by metric name
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

func (m *medic) metrics() metricsText {
	m.t.Helper()
	code, body, err := m.get("/metrics")
	if err != nil || code != http.StatusOK {
		m.t.Fatalf("/metrics: %d %v", code, err)
	}
	return parseMetrics(body)
}

func parseMetrics(text string) metricsText {
	mt := metricsText{raw: text, samples: map[string][]sample{}}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		sm := sampleRE.FindStringSubmatch(line)
		if sm == nil {
			continue
		}
		v, err := strconv.ParseFloat(sm[3], 64)
		if err != nil {
			continue
		}
		s := sample{labels: map[string]string{}, value: v}
		for _, lm := range labelRE.FindAllStringSubmatch(sm[2], -1) {
			s.labels[lm[1]] = lm[2]
		}
		mt.samples[sm[1]] = append(mt.samples[sm[1]], s)
	}
	return mt
}

// sum adds up the series of name whose labels include every given
// label="value" pair; ok is false when there is no such series.
func (mt metricsText) sum(name string, kv ...string) (total float64, ok bool) {
	for _, s := range mt.samples[name] {
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			if s.labels[kv[i]] != kv[i+1] {
				match = false
				break
			}
		}
		if match {
			total += s.value
			ok = true
		}
	}
	return total, ok
}

// val is sum, 0 when absent.
func (mt metricsText) val(name string, kv ...string) float64 {
	v, _ := mt.sum(name, kv...)
	return v
}

// waitMetric waits until cond holds for the metric sum of name/kv.
func (m *medic) waitMetric(timeout time.Duration, cond func(float64) bool, name string, kv ...string) {
	m.t.Helper()
	eventually(m.t, timeout, fmt.Sprintf("%s%v as wanted", name, kv), func() (bool, string) {
		v := m.metrics().val(name, kv...)
		return cond(v), fmt.Sprintf("%s%v = %v", name, kv, v)
	})
}

// waitJudged waits until medic judges n instances of service in state.
func (m *medic) waitJudged(service, state string, n int, timeout time.Duration) {
	m.t.Helper()
	m.waitMetric(timeout, func(v float64) bool { return int(v) == n }, "medic_instances", "service", service, "state", state)
}

// waitProbes waits until n more instance probes of service have run
// (successes and failures) than when it was called: a positive signal that
// medic has had that many chances to act.
func (m *medic) waitProbes(service string, n int, timeout time.Duration) {
	m.t.Helper()
	base := m.metrics().val("medic_probes_total", "service", service, "scope", "instance")
	m.waitMetric(timeout, func(v float64) bool { return v >= base+float64(n) }, "medic_probes_total", "service", service, "scope", "instance")
}

// ---- small shared checks ----

func ge(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
func eq(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
