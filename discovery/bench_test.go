package discovery_test

import (
	"fmt"

	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
)

// BenchmarkRefreshCalls measures the AWS calls and wall time of one fleet
// refresh on the emulator for fleets of 10, 100 and 500 instances, counted
// at a fault proxy in front of moto (every attempt, as AWS would bill it).
func BenchmarkRefreshCalls(b *testing.B) {
	for _, size := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("instances=%d", size), func(b *testing.B) {
			group := fmt.Sprintf("bench-refresh-%d-%d", size, time.Now().UnixNano())
			f, err := emulator.BuildFleet(b.Context(), moto.Config(), emulator.FleetSpec{Group: group, PerAZ: size / 2, MaxSize: size})
			if err != nil {
				b.Fatal(err)
			}
			p, err := emulator.StartFaultProxy(moto.URL())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			cfg := emulator.ConfigFor(p.URL())
			d := discovery.New(discovery.Options{ASG: autoscaling.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg)})
			svcs := []config.Service{{Name: "bench", AutoScalingGroups: []string{f.Spec.Group}}}
			p.ResetCounts()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				snaps, err := d.Refresh(b.Context(), svcs)
				if err != nil {
					b.Fatal(err)
				}
				if n := len(snaps["bench"].Instances); n != size {
					b.Fatalf("refresh saw %d instances, want %d", n, size)
				}
			}
			b.StopTimer()
			total := 0
			for _, n := range p.Counts() {
				total += n
			}
			b.ReportMetric(float64(total)/float64(b.N), "aws-calls/refresh")
			b.ReportMetric(float64(p.Count("DescribeAutoScalingGroups"))/float64(b.N), "DescribeAutoScalingGroups/refresh")
			b.ReportMetric(float64(p.Count("DescribeInstances"))/float64(b.N), "DescribeInstances/refresh")
		})
	}
}
