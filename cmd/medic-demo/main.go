// Command medic-demo is medic's embedded default: it starts the AWS
// emulator (moto_server) on loopback, builds a fleet of six instances in two
// AZs whose private IPs are loopback addresses, runs one small app server
// per instance and a load balancer in front of them, starts the real medic
// binary against it all, breaks one instance, and narrates what medic does.
// Ctrl-C stops everything it started.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/medic-sre/medic/internal/emulator"
)

func main() { os.Exit(run()) }

func run() int {
	breakAfter := flag.Duration("break-after", 20*time.Second, "when to break one instance")
	untilRecovered := flag.Bool("exit-after-recovery", false, "exit 0 once the broken instance is replaced and the fleet is healthy again (for tests)")
	timeout := flag.Duration("timeout", 0, "give up after this long (0: run until Ctrl-C)")
	listen := flag.String("web.listen-address", "127.0.0.1:9717", "where medic serves its status page and metrics")
	medicBin := flag.String("medic", "", "a built medic binary (default: go build ./cmd/medic)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	d := &demo{listen: *listen}
	defer d.cleanup()
	err := d.run(ctx, *medicBin, *breakAfter, *untilRecovered)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !*untilRecovered:
		say("stopping: everything the demo started is being shut down")
		return 0
	default:
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
}

type demo struct {
	listen  string
	dir     string
	moto    *emulator.Moto
	fleet   *emulator.Fleet
	lb      *http.Server
	medic   *exec.Cmd
	medicWG sync.WaitGroup
}

func say(format string, args ...any) {
	fmt.Printf("%s  demo | %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (d *demo) cleanup() {
	if d.medic != nil && d.medic.Process != nil {
		_ = d.medic.Process.Signal(syscall.SIGTERM)
		d.medicWG.Wait()
	}
	if d.lb != nil {
		_ = d.lb.Close()
	}
	if d.fleet != nil {
		d.fleet.Close()
	}
	if d.moto != nil {
		d.moto.Stop()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

func (d *demo) run(ctx context.Context, medicBin string, breakAfter time.Duration, untilRecovered bool) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "medic-demo-"); err != nil {
		return err
	}
	say("starting the AWS emulator (moto_server) on loopback")
	if d.moto, err = emulator.StartMoto(ctx, io.Discard); err != nil {
		return err
	}
	say("emulator at %s; building the fleet: Auto Scaling group demo-web, 6 instances in us-east-1a and us-east-1b", d.moto.URL())
	d.fleet, err = emulator.BuildFleet(ctx, d.moto.Config(), emulator.FleetSpec{
		Group: "demo-web", AZs: []string{"us-east-1a", "us-east-1b"}, PerAZ: 3, GracePeriod: 10 * time.Second, MaxSize: 12,
	})
	if err != nil {
		return err
	}
	port, err := d.fleet.StartApps(ctx, 0)
	if err != nil {
		return err
	}
	insts, err := d.fleet.Instances(ctx)
	if err != nil {
		return err
	}
	for _, in := range insts {
		say("  %s  %s  %s:%d  %s", in.ID, in.AZ, in.IP, port, in.Health)
	}
	lbURL, err := d.startLB()
	if err != nil {
		return err
	}
	say("a load balancer for the service listens at %s", lbURL)

	if medicBin == "" {
		medicBin = filepath.Join(d.dir, "medic")
		say("building medic")
		b := exec.CommandContext(ctx, "go", "build", "-o", medicBin, "github.com/medic-sre/medic/cmd/medic")
		b.Stdout, b.Stderr = os.Stdout, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/medic: %w", err)
		}
	}
	cfgFile := filepath.Join(d.dir, "medic.yml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(demoConfig, lbURL, port)), 0o600); err != nil {
		return err
	}
	if err := d.startMedic(ctx, medicBin, cfgFile); err != nil {
		return err
	}
	say("medic is running: status page http://%s/ , metrics http://%s/metrics", d.listen, d.listen)
	say("the demo plays the Auto Scaling group: it replaces what the group holds Unhealthy (moto marks but does not replace)")

	breakAt := time.Now().Add(breakAfter)
	var victim, replacement string
	var markedAt, brokeAt time.Time
	noteMarked := func() {
		if markedAt.IsZero() {
			markedAt = time.Now()
			say("medic marked %s Unhealthy in demo-web (%.1fs after it broke)", victim, markedAt.Sub(brokeAt).Seconds())
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	seen := map[string]bool{}
	for _, in := range insts {
		seen[in.ID] = true
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if victim == "" && time.Now().After(breakAt) {
			victim = insts[rand.IntN(len(insts))].ID
			if err := d.fleet.App(victim).Status(http.StatusInternalServerError); err != nil {
				return err
			}
			brokeAt = time.Now()
			say("BREAKING %s: its health check now answers 500. Watch medic find it.", victim)
		}
		cur, err := d.fleet.Instances(ctx)
		if err != nil {
			say("reading the fleet failed: %v", err)
			continue
		}
		for _, in := range cur {
			if in.ID == victim && in.Health == "Unhealthy" {
				noteMarked()
			}
			if !seen[in.ID] {
				seen[in.ID] = true
				replacement = in.ID
				say("the group launched %s (%s, %s) to replace it", in.ID, in.AZ, in.IP)
			}
		}
		replaced, err := d.fleet.PlayASG(ctx)
		if err != nil {
			say("playing the group failed: %v", err)
		}
		for _, id := range replaced {
			if id == victim {
				noteMarked() // marked since the fleet was read above
			}
			say("the group terminated %s", id)
		}
		if replacement != "" && d.medicHealthy() == 6 {
			say("RECOVERED: medic judges 6 instances healthy again, with %s in place of %s. Nobody needed to act.", replacement, victim)
			if untilRecovered {
				return nil
			}
			replacement = ""
			say("medic keeps watching. Ctrl-C stops everything.")
		}
	}
}

// medicHealthy is how many instances medic judges healthy, read from its
// own metrics (medic_instances{state="healthy"}), or -1 if unknown.
func (d *demo) medicHealthy() int {
	resp, err := http.Get("http://" + d.listen + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	n := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "medic_instances{") && strings.Contains(line, `state="healthy"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				n += v
			}
		}
	}
	return int(n)
}

// startLB runs a small load balancer on 127.0.0.1: it forwards each request
// to a random instance and, like a load balancer whose own health checks
// have taken a failing target out, tries another when one fails.
func (d *demo) startLB() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apps := d.fleet.Apps()
		ids := make([]string, 0, len(apps))
		for id := range apps {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			u, _ := url.Parse("http://" + apps[id].Addr())
			rec := &statusRecorder{header: http.Header{}}
			rp := httputil.NewSingleHostReverseProxy(u)
			rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
			ctx, cancel := context.WithTimeout(r.Context(), 300*time.Millisecond)
			rp.ServeHTTP(rec, r.WithContext(ctx))
			cancel()
			if rec.code < 500 {
				for k, v := range rec.header {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.code)
				_, _ = w.Write([]byte(rec.body.String()))
				return
			}
		}
		http.Error(w, "no healthy backend", http.StatusBadGateway)
	})
	d.lb = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.lb.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/health", nil
}

type statusRecorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.body.Write(b)
}
func (s *statusRecorder) WriteHeader(c int) { s.code = c }

func (d *demo) startMedic(ctx context.Context, bin, cfgFile string) error {
	d.medic = exec.Command(bin, "--config.file="+cfgFile, "--web.listen-address="+d.listen, "--config.auto-reload")
	d.medic.Env = append(os.Environ(), d.moto.Env()...)
	d.medic.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := d.medic.StderrPipe()
	if err != nil {
		return err
	}
	if err := d.medic.Start(); err != nil {
		return fmt.Errorf("start medic: %w", err)
	}
	d.medicWG.Add(1)
	go func() {
		defer d.medicWG.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Printf("         medic | %s\n", sc.Text())
		}
		_ = d.medic.Wait()
	}()
	// Wait until medic has read the fleet.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := http.Get("http://" + d.listen + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("medic did not become ready within 30s")
}

const demoConfig = `# written by medic-demo
global:
  region: us-east-1
  environment: demo
  allowed_networks: [127.0.0.0/8]
  discovery_interval: 2s
services:
  - name: demo-web
    endpoint: %s
    auto_scaling_groups: [demo-web]
    instance_probe:
      type: http
      port: %d
      path: /health
      interval: 1s
      timeout: 500ms
      expect_status: ["200-299"]
      body_must_match: "^ok"
    policy:
      unhealthy_after: 3
      healthy_after: 2
      max_unhealthy: 34%%
      grace_period: asg
      max_actions_per_hour: 10
# Quota headroom: the emulator serves usage and some limits; the limits it
# does not serve are given here (the status page marks them "config").
limits:
  interval: 30s
  quotas:
    - {service_code: ec2, code: L-1216C47A, limit: 64}
    - {service_code: ec2, code: L-34B43A08, limit: 32}
    - {service_code: autoscaling, code: L-CDE20ADC, limit: 500}
    - {service_code: autoscaling, code: L-6B80B8FA, limit: 200}
    - {service_code: elasticloadbalancing, code: L-E9E9831D, limit: 20}
    - {service_code: ebs, code: L-7A658B76, limit: 50}
    - {service_code: ebs, code: L-D18FCD1D, limit: 50}
`
