package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/internal/emulator"
	"github.com/medic-sre/medic/probes"
)

// BenchmarkDetection measures fault-to-mark latency: an instance starts
// answering 500 and the clock runs until the emulator records it Unhealthy.
// interval 1s, unhealthy_after 3, so the floor is about 2–3 s (the first
// failed probe comes up to one interval after the fault, the third two
// intervals later). Trials: MEDIC_BENCH_DETECTION_TRIALS (default 12).
func BenchmarkDetection(b *testing.B) {
	trials := 12
	if s := os.Getenv("MEDIC_BENCH_DETECTION_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	moto, err := emulator.StartMoto(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer moto.Stop()
	awsCfg := moto.Config()
	fleet, err := emulator.BuildFleet(ctx, awsCfg, emulator.FleetSpec{Group: "bench-detect", PerAZ: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()
	port, err := fleet.StartApps(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
global: {region: us-east-1, allowed_networks: [127.0.0.0/8], discovery_interval: 1s}
services:
  - name: bench
    auto_scaling_groups: [bench-detect]
    instance_probe: {type: http, port: %d, path: /health, interval: 1s, timeout: 500ms}
    policy: {unhealthy_after: 3, healthy_after: 2, max_unhealthy: 34%%, grace_period: 0s, max_actions_per_hour: 1000}
`, port)), "bench.yml", probes.Names())
	if err != nil {
		b.Fatal(err)
	}
	asg := autoscaling.NewFromConfig(awsCfg)
	ctrl := controller.New(controller.Options{
		Config:     cfg,
		Discoverer: discovery.New(discovery.Options{ASG: asg, EC2: ec2.NewFromConfig(awsCfg)}),
		Actuator:   healer.NewAWSActuator(asg, nil, 10*time.Second),
	})
	go func() { _ = ctrl.Run(ctx) }()

	healthyAll := func() bool { // the one service's six instances
		sts := ctrl.Statuses()
		if len(sts) != 1 {
			return false
		}
		n := 0
		for _, v := range sts[0].Report.Verdicts {
			if v.State == healer.Healthy {
				n++
			}
		}
		return n == 6
	}
	waitFor := func(what string, d time.Duration, cond func() bool) {
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("timed out after %s waiting for %s", d, what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < trials; i++ {
		waitFor("the whole fleet judged healthy", 60*time.Second, healthyAll)
		insts, err := fleet.Instances(ctx)
		if err != nil {
			b.Fatal(err)
		}
		victim := insts[i%len(insts)].ID
		t0 := time.Now()
		if err := fleet.App(victim).Status(http.StatusInternalServerError); err != nil {
			b.Fatal(err)
		}
		waitFor("the mark", 30*time.Second, func() bool {
			h, err := fleet.Health(ctx, victim)
			return err == nil && h == "Unhealthy"
		})
		lat = append(lat, time.Since(t0))
		if _, err := fleet.PlayASG(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return lat[int(p*float64(len(lat)-1)+0.5)].Seconds() }
	b.ReportMetric(float64(len(lat)), "trials")
	b.ReportMetric(q(0), "min-s")
	b.ReportMetric(q(0.5), "median-s")
	b.ReportMetric(q(0.9), "p90-s")
	b.ReportMetric(q(1), "max-s")
	b.Logf("fault-to-mark latencies: %v", lat)
}
