package limits

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/emulator"
)

// fakeRequirements is a hand-written local fake of ONE call,
// GetInstanceTypesFromInstanceRequirements, which moto lacks. It answers
// in the EC2 query protocol from the emulator's fault proxy, so the real
// SDK client reaches it through its BaseEndpoint like every other call;
// all other calls go on to moto. It answers by the requested vCPU maximum:
// 8 → m5.large then (second page) m5.2xlarge; 4 → m5.xlarge; anything
// else → InvalidParameterValue. It records every request's form.
type fakeRequirements struct {
	mu    sync.Mutex
	forms []url.Values
}

func (f *fakeRequirements) serve(w http.ResponseWriter, r *http.Request) bool {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	f.mu.Lock()
	f.forms = append(f.forms, form)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	page := func(next string, types ...string) {
		var b strings.Builder
		b.WriteString(`<GetInstanceTypesFromInstanceRequirementsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fa4e</requestId><instanceTypeSet>`)
		for _, t := range types {
			fmt.Fprintf(&b, `<item><instanceType>%s</instanceType></item>`, t)
		}
		b.WriteString(`</instanceTypeSet>`)
		if next != "" {
			fmt.Fprintf(&b, `<nextToken>%s</nextToken>`, next)
		}
		b.WriteString(`</GetInstanceTypesFromInstanceRequirementsResponse>`)
		_, _ = io.WriteString(w, b.String())
	}
	switch form.Get("InstanceRequirements.VCpuCount.Max") {
	case "8":
		if form.Get("NextToken") == "" {
			page("p2", "m5.large")
		} else {
			page("", "m5.2xlarge")
		}
	case "4":
		page("", "m5.xlarge")
	default:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>fake refuses these requirements</Message></Error></Errors><RequestID>fa4e</RequestID></Response>`)
	}
	return true
}

func (f *fakeRequirements) formWith(key, value string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.forms {
		if v.Get(key) == value {
			return true
		}
	}
	return false
}

// TestAttributeBasedFeasibility: groups choosing instance types by
// attributes (in the launch template, and in mixed-instances overrides)
// are resolved through GetInstanceTypesFromInstanceRequirements (local
// fake, all pages) and costed at their worst type; requirements the call
// refuses leave the group unknown with the reason. Everything else is moto.
func TestAttributeBasedFeasibility(t *testing.T) {
	m := emulator.StartMotoT(t)
	p, cfg := emulator.FaultProxyT(t, m.URL())
	fake := &fakeRequirements{}
	p.OnAction("GetInstanceTypesFromInstanceRequirements", fake.serve)
	ctx := context.Background()
	ec := ec2.NewFromConfig(cfg)
	as := autoscaling.NewFromConfig(cfg)
	_, subnetID := vpcWithSubnet(t, ec)
	lt := func(name string, data ec2types.RequestLaunchTemplateData) {
		data.ImageId = aws.String("ami-12c6146b")
		if _, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(name), LaunchTemplateData: &data}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := func(minV, maxV, mem int32) *ec2types.InstanceRequirementsRequest {
		return &ec2types.InstanceRequirementsRequest{VCpuCount: &ec2types.VCpuCountRangeRequest{Min: aws.Int32(minV), Max: aws.Int32(maxV)},
			MemoryMiB: &ec2types.MemoryMiBRequest{Min: aws.Int32(mem)}, ExcludedInstanceTypes: []string{"t2.*"},
			CpuManufacturers: []ec2types.CpuManufacturer{ec2types.CpuManufacturerIntel}}
	}
	lt("abs-lt", ec2types.RequestLaunchTemplateData{InstanceRequirements: reqs(2, 8, 4096)})
	lt("abs-refused", ec2types.RequestLaunchTemplateData{InstanceRequirements: reqs(1, 64, 1024)})
	lt("plain", ec2types.RequestLaunchTemplateData{InstanceType: ec2types.InstanceTypeM5Large})
	group := func(in autoscaling.CreateAutoScalingGroupInput) {
		in.MinSize, in.DesiredCapacity, in.VPCZoneIdentifier = aws.Int32(0), aws.Int32(0), aws.String(subnetID)
		if _, err := as.CreateAutoScalingGroup(ctx, &in); err != nil {
			t.Fatal(err)
		}
	}
	ltSpec := func(name string) *astypes.LaunchTemplateSpecification {
		return &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(name), Version: aws.String("$Latest")}
	}
	group(autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("abs-lt"), MaxSize: aws.Int32(4), LaunchTemplate: ltSpec("abs-lt")})
	group(autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("abs-refused"), MaxSize: aws.Int32(4), LaunchTemplate: ltSpec("abs-refused")})
	group(autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("abs-override"), MaxSize: aws.Int32(2),
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{LaunchTemplate: &astypes.LaunchTemplate{LaunchTemplateSpecification: ltSpec("plain"),
			Overrides: []astypes.LaunchTemplateOverrides{{InstanceRequirements: &astypes.InstanceRequirements{
				VCpuCount: &astypes.VCpuCountRequest{Min: aws.Int32(1), Max: aws.Int32(4)}, MemoryMiB: &astypes.MemoryMiBRequest{Min: aws.Int32(2048)}}}}}}})

	od := 20.0
	l := defaults(config.Limits{Quotas: []config.Quota{{ServiceCode: "ec2", Code: "L-1216C47A", Limit: &od}}})
	w := New(Options{Config: l, AWS: cfg, Registerer: prometheus.NewRegistry(), Notifier: &recorder{},
		Groups: []string{"abs-lt", "abs-refused", "abs-override"}, Now: func() time.Time { return t0 }})
	s := w.RefreshOnce(ctx)

	for _, g := range s.Groups {
		t.Logf("%s: known %v feasible %v: %s", g.Name, g.Known, g.Feasible, g.Why)
	}
	// abs-lt: m5.large (page 1) and m5.2xlarge (page 2); worst case
	// 4 × 8 = 32 vCPUs of 20: infeasible — only with the second page.
	if g := groupOf(s, "abs-lt"); !g.Known || g.Feasible || !strings.Contains(g.Why, "Running On-Demand Standard") {
		t.Errorf("abs-lt: %+v", g)
	}
	// abs-override: the override's requirements (m5.xlarge), 2 × 4 = 8 of 20.
	if g := groupOf(s, "abs-override"); !g.Known || !g.Feasible {
		t.Errorf("abs-override: %+v", g)
	}
	if g := groupOf(s, "abs-refused"); g.Known || !strings.Contains(g.Why, "could not be resolved") || !strings.Contains(g.Why, "fake refuses") ||
		strings.Contains(g.Why, "RequestID") {
		t.Errorf("abs-refused: %+v", g)
	}
	// The requirements reached the call, every field carried over.
	for _, kv := range [][2]string{{"InstanceRequirements.MemoryMiB.Min", "4096"}, {"InstanceRequirements.ExcludedInstanceType.1", "t2.*"},
		{"InstanceRequirements.CpuManufacturer.1", "intel"}, {"InstanceRequirements.MemoryMiB.Min", "2048"}, {"NextToken", "p2"}} {
		if !fake.formWith(kv[0], kv[1]) {
			t.Errorf("no GetInstanceTypesFromInstanceRequirements call with %s=%s", kv[0], kv[1])
		}
	}
}
