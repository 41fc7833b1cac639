package limits

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"github.com/aws/smithy-go"

	"github.com/medic-sre/medic/config"
)

// This file holds the I/O: each source reads AWS and fills a part of
// gathered. A source that fails leaves its part empty ("unknown") and is
// reported in SourceStatus; it never stops another.

// SourceStatus is the outcome of one source in one refresh.
type SourceStatus struct {
	Name string
	OK   bool
	// Err says briefly what failed (Describe): operation, AWS error code
	// and message; Sig is its stable short form.
	Err, Sig string
	Duration time.Duration
}

// failed builds the status of a source that failed with err.
func failed(name string, err error, d time.Duration) SourceStatus {
	sig, text := Describe(err)
	return SourceStatus{Name: name, Err: text, Sig: sig, Duration: d}
}

// groupInfo is what feasibility needs of one Auto Scaling group.
type groupInfo struct {
	spec       GroupSpec
	instances  int // instances not terminating
	lts        []ltUse
	lcName     string
	targetARNs []string
	// reqs are the attribute-based requirements of mixed-instances
	// overrides, each with its weight (Auto Scaling launches any type
	// they allow, instead of the launch template's type).
	reqs []reqUse
}

// reqUse is one override's attribute-based requirements and weight.
type reqUse struct {
	req    *astypes.InstanceRequirements
	weight float64
}

type ltRef struct{ id, name, version string }

// ltUse is a launch template a group launches from, with the weight its
// types count for when an override names the template and no type.
type ltUse struct {
	ref    ltRef
	weight float64
	// marketOnly: only the template's market counts (the group's
	// overrides give attribute-based requirements instead of its types).
	marketOnly bool
}

// ltInfo is what a launch template version says about what it launches.
type ltInfo struct {
	types []string
	spot  bool
	// requirements is set for attribute-based instance type selection.
	requirements *ec2types.InstanceRequirements
}

// gathered is everything one refresh read, keyed so that the pure
// evaluation can look figures up.
type gathered struct {
	mu         sync.Mutex
	apiLimits  map[string]float64 // "elbv2:target-groups" → 3000
	sqApplied  map[string]float64 // "vpc/L-F678F1CE" → value
	sqDefault  map[string]float64
	adjustable map[string]bool
	usage      map[string]float64 // describe source name → usage
	perLB      map[string]float64 // load balancer ARN → registered targets
	lbType     map[string]string  // load balancer ARN → application|network
	tgLBs      map[string][]string
	groups     map[string]*groupInfo
	lcTypes    map[string]string  // launch configuration → instance type
	subnetFree map[string]float64 // subnet → free addresses
	metrics    map[string][]Point
	// usageMetric is the AWS/Usage metric Service Quotas names per quota.
	usageMetric map[string]*config.UsageMetric
	sources     []SourceStatus
}

func newGathered() *gathered {
	return &gathered{apiLimits: map[string]float64{}, sqApplied: map[string]float64{}, sqDefault: map[string]float64{},
		adjustable: map[string]bool{}, usage: map[string]float64{}, perLB: map[string]float64{}, lbType: map[string]string{},
		tgLBs: map[string][]string{}, groups: map[string]*groupInfo{}, lcTypes: map[string]string{}, metrics: map[string][]Point{},
		subnetFree: map[string]float64{}, usageMetric: map[string]*config.UsageMetric{}}
}

func (g *gathered) set(f func()) { g.mu.Lock(); f(); g.mu.Unlock() }

// source is one named reader.
type source struct {
	name string
	run  func(ctx context.Context, g *gathered) error
}

// runSources runs every source, at most par at once, and records each one's
// outcome.
func runSources(ctx context.Context, srcs []source, g *gathered, par int) {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for _, s := range srcs {
		wg.Add(1)
		sem <- struct{}{}
		go func(s source) {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			err := s.run(ctx, g)
			st := SourceStatus{Name: s.name, OK: true, Duration: time.Since(start)}
			if err != nil {
				st = failed(s.name, err, st.Duration)
			}
			g.set(func() { g.sources = append(g.sources, st) })
		}(s)
	}
	wg.Wait()
}

// --- limit sources ---

func (w *Watcher) srcASGLimits(ctx context.Context, g *gathered) error {
	var out *autoscaling.DescribeAccountLimitsOutput
	err := w.call.do(ctx, "autoscaling:DescribeAccountLimits", func(ctx context.Context) (err error) {
		out, err = w.c.asg.DescribeAccountLimits(ctx, &autoscaling.DescribeAccountLimitsInput{})
		return err
	})
	if err != nil {
		return err
	}
	g.set(func() {
		if out.MaxNumberOfAutoScalingGroups != nil {
			g.apiLimits["autoscaling:MaxNumberOfAutoScalingGroups"] = float64(*out.MaxNumberOfAutoScalingGroups)
		}
		if out.MaxNumberOfLaunchConfigurations != nil {
			g.apiLimits["autoscaling:MaxNumberOfLaunchConfigurations"] = float64(*out.MaxNumberOfLaunchConfigurations)
		}
	})
	return nil
}

func (w *Watcher) srcELBv2Limits(ctx context.Context, g *gathered) error {
	p := elbv2.NewDescribeAccountLimitsPaginator(w.c.elbv2, &elbv2.DescribeAccountLimitsInput{})
	return eachPage(ctx, w.call, "elbv2:DescribeAccountLimits", p.HasMorePages,
		func(ctx context.Context) (*elbv2.DescribeAccountLimitsOutput, error) { return p.NextPage(ctx) },
		func(out *elbv2.DescribeAccountLimitsOutput) {
			g.set(func() {
				for _, l := range out.Limits {
					if v, err := strconv.ParseFloat(aws.ToString(l.Max), 64); err == nil {
						g.apiLimits["elbv2:"+aws.ToString(l.Name)] = v
					}
				}
			})
		})
}

// srcELBLimits reads Classic limits (one page: the API has no paginator).
func (w *Watcher) srcELBLimits(ctx context.Context, g *gathered) error {
	var out *elasticloadbalancing.DescribeAccountLimitsOutput
	err := w.call.do(ctx, "elb:DescribeAccountLimits", func(ctx context.Context) (err error) {
		out, err = w.c.elb.DescribeAccountLimits(ctx, &elasticloadbalancing.DescribeAccountLimitsInput{})
		return err
	})
	if err != nil {
		return err
	}
	g.set(func() {
		for _, l := range out.Limits {
			if v, err := strconv.ParseFloat(aws.ToString(l.Max), 64); err == nil {
				g.apiLimits["elb:"+aws.ToString(l.Name)] = v
			}
		}
	})
	return nil
}

func (w *Watcher) srcEC2Attributes(ctx context.Context, g *gathered) error {
	var out *ec2.DescribeAccountAttributesOutput
	err := w.call.do(ctx, "ec2:DescribeAccountAttributes", func(ctx context.Context) (err error) {
		out, err = w.c.ec2.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{})
		return err
	})
	if err != nil {
		return err
	}
	g.set(func() {
		for _, a := range out.AccountAttributes {
			if len(a.AttributeValues) != 1 {
				continue
			}
			if v, err := strconv.ParseFloat(aws.ToString(a.AttributeValues[0].AttributeValue), 64); err == nil {
				g.apiLimits["ec2:"+aws.ToString(a.AttributeName)] = v
			}
		}
	})
	return nil
}

// sqQuota records one Service Quotas answer: its value into dst, whether
// it is adjustable, and the AWS/Usage metric it names.
func (g *gathered) sqQuota(dst map[string]float64, svc string, q sqtypes.ServiceQuota, overwrite bool) {
	if q.Value == nil {
		return
	}
	k := svc + "/" + aws.ToString(q.QuotaCode)
	dst[k] = *q.Value
	if _, ok := g.adjustable[k]; overwrite || !ok {
		g.adjustable[k] = q.Adjustable
	}
	if m := q.UsageMetric; m != nil && aws.ToString(m.MetricNamespace) == "AWS/Usage" && aws.ToString(m.MetricName) == "ResourceCount" {
		d := m.MetricDimensions
		if d["Service"] != "" && d["Resource"] != "" && g.usageMetric[k] == nil {
			g.usageMetric[k] = &config.UsageMetric{Service: d["Service"], Type: d["Type"], Resource: d["Resource"], Class: d["Class"]}
		}
	}
}

// srcSQApplied reads applied quota values of one service code.
func (w *Watcher) srcSQApplied(svc string) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		p := servicequotas.NewListServiceQuotasPaginator(w.c.quotas, &servicequotas.ListServiceQuotasInput{ServiceCode: &svc, MaxResults: aws.Int32(100)})
		err := eachPage(ctx, w.call, "servicequotas:ListServiceQuotas", p.HasMorePages,
			func(ctx context.Context) (*servicequotas.ListServiceQuotasOutput, error) { return p.NextPage(ctx) },
			func(out *servicequotas.ListServiceQuotasOutput) {
				g.set(func() {
					for _, q := range out.Quotas {
						g.sqQuota(g.sqApplied, svc, q, true)
					}
				})
			})
		if err != nil {
			return fmt.Errorf("service %s: %w", svc, err)
		}
		return nil
	}
}

// srcSQDefault reads AWS default quota values of one service code.
func (w *Watcher) srcSQDefault(svc string) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		p := servicequotas.NewListAWSDefaultServiceQuotasPaginator(w.c.quotas, &servicequotas.ListAWSDefaultServiceQuotasInput{ServiceCode: &svc, MaxResults: aws.Int32(100)})
		err := eachPage(ctx, w.call, "servicequotas:ListAWSDefaultServiceQuotas", p.HasMorePages,
			func(ctx context.Context) (*servicequotas.ListAWSDefaultServiceQuotasOutput, error) {
				return p.NextPage(ctx)
			},
			func(out *servicequotas.ListAWSDefaultServiceQuotasOutput) {
				g.set(func() {
					for _, q := range out.Quotas {
						g.sqQuota(g.sqDefault, svc, q, false)
					}
				})
			})
		if err != nil {
			return fmt.Errorf("service %s: %w", svc, err)
		}
		return nil
	}
}

// --- usage sources ---

// srcInstances sums the vCPUs of running and pending instances, and of
// open Spot requests, by the quota they draw on: On-Demand by family, Spot
// by family (Spot charged to Spot quotas, never to On-Demand). AWS counts
// an open Spot request against the Spot quota until it is fulfilled
// ("Spot Instance quotas", EC2 User Guide); once active, its instance is
// counted instead.
func (w *Watcher) srcInstances(ctx context.Context, g *gathered) error {
	var ins []instanceUse
	p := ec2.NewDescribeInstancesPaginator(w.c.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000),
		Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}}})
	err := eachPage(ctx, w.call, "ec2:DescribeInstances", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) { return p.NextPage(ctx) },
		func(out *ec2.DescribeInstancesOutput) {
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					ins = append(ins, instanceUse{Type: string(in.InstanceType), Lifecycle: string(in.InstanceLifecycle)})
				}
			}
		})
	if err != nil {
		return err
	}
	var reqs []spotRequestUse
	sp := ec2.NewDescribeSpotInstanceRequestsPaginator(w.c.ec2, &ec2.DescribeSpotInstanceRequestsInput{MaxResults: aws.Int32(1000),
		Filters: []ec2types.Filter{{Name: aws.String("state"), Values: []string{"open"}}}})
	err = eachPage(ctx, w.call, "ec2:DescribeSpotInstanceRequests", sp.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeSpotInstanceRequestsOutput, error) { return sp.NextPage(ctx) },
		func(out *ec2.DescribeSpotInstanceRequestsOutput) {
			for _, r := range out.SpotInstanceRequests {
				u := spotRequestUse{State: string(r.State)}
				if r.LaunchSpecification != nil {
					u.Type = string(r.LaunchSpecification.InstanceType)
				}
				reqs = append(reqs, u)
			}
		})
	if err != nil {
		return err
	}
	types := make([]string, 0, len(ins)+len(reqs))
	for _, in := range ins {
		types = append(types, in.Type)
	}
	for _, r := range reqs {
		types = append(types, r.Type)
	}
	vc, err := w.vcpus(ctx, types)
	if err != nil {
		return err
	}
	byQuota, err := vcpuUsage(ins, reqs, vc)
	if err != nil {
		return err
	}
	g.set(func() {
		for _, d := range vcpuQuotas() {
			g.usage[d.Describe] = byQuota[d.Key()]
		}
	})
	return nil
}

// instanceUse is a running or pending instance: its type and its
// InstanceLifecycle ("" On-Demand, "spot", "scheduled").
type instanceUse struct{ Type, Lifecycle string }

// spotRequestUse is a Spot Instance request: its launch type and state
// (open, active, closed, cancelled, failed, disabled).
type spotRequestUse struct{ Type, State string }

// vcpuUsage sums vCPUs by vCPU quota key: On-Demand instances on the
// On-Demand quotas, Spot instances and open Spot requests on the Spot
// quotas. Active requests are not counted (their instance is), nor
// closed, cancelled, failed or disabled ones; scheduled instances (retired)
// and families without a vCPU quota (mac) draw on no quota medic watches.
func vcpuUsage(ins []instanceUse, reqs []spotRequestUse, vcpus map[string]int) (map[string]float64, error) {
	byQuota := map[string]float64{}
	add := func(t string, m Market) error {
		key, _ := QuotaFor(t, m)
		if key == "" {
			return nil
		}
		v, ok := vcpus[t]
		if !ok {
			return fmt.Errorf("vCPUs of instance type %s unknown", t)
		}
		byQuota[key] += float64(v)
		return nil
	}
	for _, in := range ins {
		m := OnDemand
		switch ec2types.InstanceLifecycleType(in.Lifecycle) {
		case ec2types.InstanceLifecycleTypeSpot:
			m = Spot
		case "":
		default:
			continue
		}
		if err := add(in.Type, m); err != nil {
			return nil, err
		}
	}
	for _, r := range reqs {
		if r.State != string(ec2types.SpotInstanceStateOpen) || r.Type == "" {
			continue
		}
		if err := add(r.Type, Spot); err != nil {
			return nil, err
		}
	}
	return byQuota, nil
}

// vcpus returns the default vCPUs of instance types, cached for the
// watcher's lifetime (instance types do not change).
func (w *Watcher) vcpus(ctx context.Context, types []string) (map[string]int, error) {
	w.vcpuMu.Lock()
	defer w.vcpuMu.Unlock()
	var missing []string
	asked := map[string]bool{}
	for _, t := range types {
		if _, ok := w.vcpuCache[t]; !ok && t != "" && !asked[t] {
			asked[t] = true
			missing = append(missing, t)
		}
	}
	for len(missing) > 0 {
		n := min(len(missing), 100)
		its := make([]ec2types.InstanceType, n)
		for i, t := range missing[:n] {
			its[i] = ec2types.InstanceType(t)
		}
		missing = missing[n:]
		err := w.describeTypes(ctx, its)
		var ae smithy.APIError
		if err != nil && len(its) > 1 && errors.As(err, &ae) && ae.ErrorCode() == "InvalidInstanceType" {
			// One unknown type fails the whole batch: ask one by one, so
			// that only the unknown ones stay unknown.
			for _, it := range its {
				if err := w.describeTypes(ctx, []ec2types.InstanceType{it}); err != nil && !errors.As(err, &ae) {
					return nil, err
				}
			}
			err = nil
		}
		if err != nil {
			return nil, err
		}
	}
	res := map[string]int{}
	for _, t := range types {
		if v, ok := w.vcpuCache[t]; ok {
			res[t] = v
		}
	}
	return res, nil
}

// describeTypes caches the default vCPUs of its (callers hold vcpuMu).
func (w *Watcher) describeTypes(ctx context.Context, its []ec2types.InstanceType) error {
	p := ec2.NewDescribeInstanceTypesPaginator(w.c.ec2, &ec2.DescribeInstanceTypesInput{InstanceTypes: its})
	return eachPage(ctx, w.call, "ec2:DescribeInstanceTypes", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeInstanceTypesOutput, error) { return p.NextPage(ctx) },
		func(out *ec2.DescribeInstanceTypesOutput) {
			for _, it := range out.InstanceTypes {
				if it.VCpuInfo != nil && it.VCpuInfo.DefaultVCpus != nil {
					w.vcpuCache[string(it.InstanceType)] = int(*it.VCpuInfo.DefaultVCpus)
				}
			}
		})
}

// srcAddresses counts VPC Elastic IPs (DescribeAddresses is not paginated).
func (w *Watcher) srcAddresses(ctx context.Context, g *gathered) error {
	var out *ec2.DescribeAddressesOutput
	err := w.call.do(ctx, "ec2:DescribeAddresses", func(ctx context.Context) (err error) {
		out, err = w.c.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		return err
	})
	if err != nil {
		return err
	}
	n := 0
	for _, a := range out.Addresses {
		if a.Domain == ec2types.DomainTypeVpc || a.Domain == "" {
			n++
		}
	}
	g.set(func() { g.usage["ec2_elastic_ips"] = float64(n) })
	return nil
}

func (w *Watcher) srcLaunchTemplates(ctx context.Context, g *gathered) error {
	n := 0
	p := ec2.NewDescribeLaunchTemplatesPaginator(w.c.ec2, &ec2.DescribeLaunchTemplatesInput{MaxResults: aws.Int32(200)})
	err := eachPage(ctx, w.call, "ec2:DescribeLaunchTemplates", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeLaunchTemplatesOutput, error) { return p.NextPage(ctx) },
		func(out *ec2.DescribeLaunchTemplatesOutput) { n += len(out.LaunchTemplates) })
	if err != nil {
		return err
	}
	g.set(func() { g.usage["ec2_launch_templates"] = float64(n) })
	return nil
}

// srcEBS sums volume sizes by type (TiB, as the quotas count) and counts
// the account's own snapshots.
func (w *Watcher) srcEBS(ctx context.Context, g *gathered) error {
	gib := map[string]float64{}
	p := ec2.NewDescribeVolumesPaginator(w.c.ec2, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(500)})
	err := eachPage(ctx, w.call, "ec2:DescribeVolumes", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeVolumesOutput, error) { return p.NextPage(ctx) },
		func(out *ec2.DescribeVolumesOutput) {
			for _, v := range out.Volumes {
				gib[string(v.VolumeType)] += float64(aws.ToInt32(v.Size))
			}
		})
	if err != nil {
		return err
	}
	snaps := 0
	ps := ec2.NewDescribeSnapshotsPaginator(w.c.ec2, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000)})
	err = eachPage(ctx, w.call, "ec2:DescribeSnapshots", ps.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeSnapshotsOutput, error) { return ps.NextPage(ctx) },
		func(out *ec2.DescribeSnapshotsOutput) { snaps += len(out.Snapshots) })
	if err != nil {
		return err
	}
	g.set(func() {
		for _, t := range []string{"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"} {
			g.usage["ebs_storage_"+t] = gib[t] / 1024
		}
		g.usage["ebs_snapshots"] = float64(snaps)
	})
	return nil
}

// srcGroups counts Auto Scaling groups and reads the watched ones for
// feasibility: what they may launch, with weights and the Spot split.
func (w *Watcher) srcGroups(watch map[string]bool) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		n := 0
		var mine []astypes.AutoScalingGroup
		p := autoscaling.NewDescribeAutoScalingGroupsPaginator(w.c.asg, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(100)})
		err := eachPage(ctx, w.call, "autoscaling:DescribeAutoScalingGroups", p.HasMorePages,
			func(ctx context.Context) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
				return p.NextPage(ctx)
			},
			func(out *autoscaling.DescribeAutoScalingGroupsOutput) {
				n += len(out.AutoScalingGroups)
				for _, a := range out.AutoScalingGroups {
					if watch[aws.ToString(a.AutoScalingGroupName)] {
						mine = append(mine, a)
					}
				}
			})
		if err != nil {
			return err
		}
		g.set(func() { g.usage["asg_groups"] = float64(n) })
		infos := make([]*groupInfo, 0, len(mine))
		lts := map[ltRef]*ltInfo{}
		var subnets []string
		for _, a := range mine {
			gi := readGroup(a)
			for _, u := range gi.lts {
				lts[u.ref] = nil
			}
			subnets = append(subnets, gi.spec.Subnets...)
			infos = append(infos, gi)
		}
		ltErr := map[ltRef]string{}
		for r := range lts {
			info, err := w.launchTemplate(ctx, r)
			if err != nil {
				_, why := Describe(err)
				ltErr[r] = fmt.Sprintf("launch template %s%s could not be read: %s", r.id, r.name, why)
				continue
			}
			lts[r] = info
		}
		var types []string
		for _, gi := range infos {
			w.resolveTypes(ctx, gi, lts, ltErr)
			for _, t := range gi.spec.Types {
				types = append(types, t.Type)
			}
		}
		// vCPUs of every type the groups may launch (cached), not only
		// of those running: a group at zero or a new type counts too.
		if _, err := w.vcpus(ctx, types); err != nil {
			return fmt.Errorf("instance types of watched groups: %w", err)
		}
		free, err := w.subnetFree(ctx, subnets)
		g.set(func() {
			for _, gi := range infos {
				g.groups[gi.spec.Name] = gi
			}
			for k, v := range free {
				g.subnetFree[k] = v
			}
		})
		if err != nil {
			return fmt.Errorf("subnets of watched groups: %w", err)
		}
		return nil
	}
}

// readGroup takes from a group what feasibility needs, before its launch
// templates are read.
func readGroup(a astypes.AutoScalingGroup) *groupInfo {
	gi := &groupInfo{spec: GroupSpec{Name: aws.ToString(a.AutoScalingGroupName), Max: float64(aws.ToInt32(a.MaxSize)), OnDemandPercent: 100},
		targetARNs: a.TargetGroupARNs, lcName: aws.ToString(a.LaunchConfigurationName)}
	for _, s := range strings.Split(aws.ToString(a.VPCZoneIdentifier), ",") {
		if s = strings.TrimSpace(s); s != "" {
			gi.spec.Subnets = append(gi.spec.Subnets, s)
		}
	}
	for _, in := range a.Instances {
		if strings.HasPrefix(string(in.LifecycleState), "Terminat") {
			continue
		}
		gi.instances++
		gi.spec.Current += weightOf(in.WeightedCapacity)
	}
	ref := func(s *astypes.LaunchTemplateSpecification) (ltRef, bool) {
		if s == nil || (s.LaunchTemplateId == nil && s.LaunchTemplateName == nil) {
			return ltRef{}, false
		}
		v := aws.ToString(s.Version)
		if v == "" {
			v = "$Default"
		}
		return ltRef{id: aws.ToString(s.LaunchTemplateId), name: aws.ToString(s.LaunchTemplateName), version: v}, true
	}
	if r, ok := ref(a.LaunchTemplate); ok {
		gi.lts = append(gi.lts, ltUse{ref: r, weight: 1})
	}
	m := a.MixedInstancesPolicy
	if m == nil || m.LaunchTemplate == nil {
		return gi
	}
	if d := m.InstancesDistribution; d != nil {
		gi.spec.OnDemandBase = float64(aws.ToInt32(d.OnDemandBaseCapacity))
		if d.OnDemandPercentageAboveBaseCapacity != nil {
			gi.spec.OnDemandPercent = float64(*d.OnDemandPercentageAboveBaseCapacity)
		}
	}
	base, hasBase := ref(m.LaunchTemplate.LaunchTemplateSpecification)
	typed := false
	for _, o := range m.LaunchTemplate.Overrides {
		w := weightOf(o.WeightedCapacity)
		switch {
		case o.InstanceType != nil:
			gi.spec.Types = append(gi.spec.Types, TypeOption{Type: *o.InstanceType, Weight: w})
			typed = true
		case o.InstanceRequirements != nil:
			gi.reqs = append(gi.reqs, reqUse{req: o.InstanceRequirements, weight: w})
			typed = true
		}
		if r, ok := ref(o.LaunchTemplateSpecification); ok && o.InstanceType == nil {
			gi.lts = append(gi.lts, ltUse{ref: r, weight: w})
		}
	}
	if !typed && hasBase {
		gi.lts = append(gi.lts, ltUse{ref: base, weight: 1})
	}
	if len(gi.reqs) > 0 && hasBase {
		// The template still says the market (Spot); its own type or
		// requirements are replaced by the overrides' requirements.
		gi.lts = append(gi.lts, ltUse{ref: base, weight: 1, marketOnly: true})
	}
	return gi
}

func weightOf(s *string) float64 {
	if v, err := strconv.ParseFloat(aws.ToString(s), 64); err == nil && v > 0 {
		return v
	}
	return 1
}

// launchTemplate reads one launch template version.
func (w *Watcher) launchTemplate(ctx context.Context, r ltRef) (*ltInfo, error) {
	in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{r.version}}
	if r.id != "" {
		in.LaunchTemplateId = aws.String(r.id)
	} else {
		in.LaunchTemplateName = aws.String(r.name)
	}
	info := &ltInfo{}
	p := ec2.NewDescribeLaunchTemplateVersionsPaginator(w.c.ec2, in)
	err := eachPage(ctx, w.call, "ec2:DescribeLaunchTemplateVersions", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeLaunchTemplateVersionsOutput, error) { return p.NextPage(ctx) },
		func(out *ec2.DescribeLaunchTemplateVersionsOutput) {
			for _, v := range out.LaunchTemplateVersions {
				d := v.LaunchTemplateData
				if d == nil {
					continue
				}
				if d.InstanceType != "" {
					info.types = append(info.types, string(d.InstanceType))
				}
				if d.InstanceMarketOptions != nil && d.InstanceMarketOptions.MarketType == ec2types.MarketTypeSpot {
					info.spot = true
				}
				if d.InstanceRequirements != nil {
					info.requirements = d.InstanceRequirements
				}
			}
		})
	return info, err
}

// resolveTypes fills a group's instance types from its launch templates
// and configuration; attribute-based requirements are resolved with
// GetInstanceTypesFromInstanceRequirements where the API answers.
func (w *Watcher) resolveTypes(ctx context.Context, gi *groupInfo, lts map[ltRef]*ltInfo, ltErr map[ltRef]string) {
	for _, u := range gi.lts {
		if why, bad := ltErr[u.ref]; bad {
			gi.spec.Unresolved = why
			continue
		}
		info := lts[u.ref]
		if info == nil {
			continue
		}
		if info.spot && len(gi.lts) == 1 && gi.spec.OnDemandPercent == 100 && gi.spec.OnDemandBase == 0 {
			gi.spec.AllSpot = true
		}
		if u.marketOnly {
			continue
		}
		for _, t := range info.types {
			gi.spec.Types = append(gi.spec.Types, TypeOption{Type: t, Weight: u.weight})
		}
		if info.requirements != nil && len(info.types) == 0 {
			w.addRequired(ctx, gi, info.requirements, u.weight)
		}
	}
	for _, r := range gi.reqs {
		w.addRequired(ctx, gi, r.req, r.weight)
	}
}

// addRequired adds to a group the types attribute-based requirements
// (a launch template's or an override's) allow, or says why it cannot.
func (w *Watcher) addRequired(ctx context.Context, gi *groupInfo, req any, weight float64) {
	types, err := w.typesFor(ctx, req)
	if err == nil && len(types) == 0 {
		err = errors.New("no instance type matches them")
	}
	if err != nil {
		_, why := Describe(err) // brief: the page shows no SDK wrapping
		gi.spec.Unresolved = "attribute-based instance requirements could not be resolved: " + why
		return
	}
	for _, t := range types {
		gi.spec.Types = append(gi.spec.Types, TypeOption{Type: t, Weight: weight})
	}
}

// typesFor lists the instance types attribute-based requirements allow
// (x86_64 and arm64, HVM: the architectures Auto Scaling chooses from).
// req is a launch template's (ec2) or an override's (autoscaling)
// InstanceRequirements: both carry the same fields under the same names
// as the call's InstanceRequirementsRequest, so every field is carried
// over, not a chosen few.
func (w *Watcher) typesFor(ctx context.Context, req any) ([]string, error) {
	var out []string
	r, err := requirementsRequest(req)
	if err != nil {
		return nil, err
	}
	p := ec2.NewGetInstanceTypesFromInstanceRequirementsPaginator(w.c.ec2, &ec2.GetInstanceTypesFromInstanceRequirementsInput{
		ArchitectureTypes:   []ec2types.ArchitectureType{ec2types.ArchitectureTypeX8664, ec2types.ArchitectureTypeArm64},
		VirtualizationTypes: []ec2types.VirtualizationType{ec2types.VirtualizationTypeHvm}, InstanceRequirements: r})
	err = eachPage(ctx, w.call, "ec2:GetInstanceTypesFromInstanceRequirements", p.HasMorePages,
		func(ctx context.Context) (*ec2.GetInstanceTypesFromInstanceRequirementsOutput, error) {
			return p.NextPage(ctx)
		},
		func(o *ec2.GetInstanceTypesFromInstanceRequirementsOutput) {
			for _, t := range o.InstanceTypes {
				out = append(out, aws.ToString(t.InstanceType))
			}
		})
	return out, err
}

// requirementsRequest carries an InstanceRequirements over into the
// request form GetInstanceTypesFromInstanceRequirements takes.
func requirementsRequest(req any) (*ec2types.InstanceRequirementsRequest, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("instance requirements: %w", err)
	}
	r := &ec2types.InstanceRequirementsRequest{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("instance requirements: %w", err)
	}
	if r.VCpuCount == nil || r.MemoryMiB == nil {
		return nil, errors.New("instance requirements lack vCPU count or memory (both required)")
	}
	return r, nil
}

// subnetFree reads the free addresses of subnets.
func (w *Watcher) subnetFree(ctx context.Context, ids []string) (map[string]float64, error) {
	out := map[string]float64{}
	if len(ids) == 0 {
		return out, nil
	}
	ids = append([]string(nil), ids...)
	sort.Strings(ids)
	ids = dedupe(ids)
	p := ec2.NewDescribeSubnetsPaginator(w.c.ec2, &ec2.DescribeSubnetsInput{SubnetIds: ids})
	err := eachPage(ctx, w.call, "ec2:DescribeSubnets", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeSubnetsOutput, error) { return p.NextPage(ctx) },
		func(o *ec2.DescribeSubnetsOutput) {
			for _, s := range o.Subnets {
				out[aws.ToString(s.SubnetId)] = float64(aws.ToInt32(s.AvailableIpAddressCount))
			}
		})
	return out, err
}

func (w *Watcher) srcLaunchConfigurations(ctx context.Context, g *gathered) error {
	n := 0
	types := map[string]string{}
	p := autoscaling.NewDescribeLaunchConfigurationsPaginator(w.c.asg, &autoscaling.DescribeLaunchConfigurationsInput{MaxRecords: aws.Int32(100)})
	err := eachPage(ctx, w.call, "autoscaling:DescribeLaunchConfigurations", p.HasMorePages,
		func(ctx context.Context) (*autoscaling.DescribeLaunchConfigurationsOutput, error) {
			return p.NextPage(ctx)
		},
		func(out *autoscaling.DescribeLaunchConfigurationsOutput) {
			n += len(out.LaunchConfigurations)
			for _, lc := range out.LaunchConfigurations {
				types[aws.ToString(lc.LaunchConfigurationName)] = aws.ToString(lc.InstanceType)
			}
		})
	if err != nil {
		return err
	}
	g.set(func() {
		g.usage["asg_launch_configurations"] = float64(n)
		for k, v := range types {
			g.lcTypes[k] = v
		}
	})
	return nil
}

// elbv2Counts is what srcELBv2 counts, per load balancer and target group.
type elbv2Counts struct {
	types     map[string]string             // LB ARN → application|network
	targets   map[string]float64            // LB ARN → registered targets
	perAZ     map[string]map[string]float64 // NLB ARN → AZ → targets
	perTG     float64                       // most targets in one target group
	tgLBs     map[string][]string
	nTG       float64
	listeners map[string]float64
	rules     map[string]float64 // ALB ARN → non-default rules
}

// srcELBv2 counts load balancers, target groups, listeners, rules and
// targets per load balancer, per zone of a Network Load Balancer and per
// target group.
func (w *Watcher) srcELBv2(withListeners bool) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		c := elbv2Counts{types: map[string]string{}, targets: map[string]float64{}, perAZ: map[string]map[string]float64{},
			tgLBs: map[string][]string{}, listeners: map[string]float64{}, rules: map[string]float64{}}
		p := elbv2.NewDescribeLoadBalancersPaginator(w.c.elbv2, &elbv2.DescribeLoadBalancersInput{})
		err := eachPage(ctx, w.call, "elbv2:DescribeLoadBalancers", p.HasMorePages,
			func(ctx context.Context) (*elbv2.DescribeLoadBalancersOutput, error) { return p.NextPage(ctx) },
			func(out *elbv2.DescribeLoadBalancersOutput) {
				for _, lb := range out.LoadBalancers {
					c.types[aws.ToString(lb.LoadBalancerArn)] = string(lb.Type)
				}
			})
		if err != nil {
			return err
		}
		if err := w.countTargets(ctx, &c); err != nil {
			return err
		}
		if withListeners {
			if err := w.countListeners(ctx, &c); err != nil {
				return err
			}
		}
		g.set(func() {
			var albs, nlbs, tALB, tNLB, lALB, rALB, azNLB float64
			for arn, t := range c.types {
				g.lbType[arn] = t
				g.perLB[arn] = c.targets[arn]
				switch t {
				case "application":
					albs++
					tALB = max(tALB, c.targets[arn])
					lALB = max(lALB, c.listeners[arn])
					rALB = max(rALB, c.rules[arn])
				case "network":
					nlbs++
					tNLB = max(tNLB, c.targets[arn])
					for _, v := range c.perAZ[arn] {
						azNLB = max(azNLB, v)
					}
				}
			}
			for k, v := range c.tgLBs {
				g.tgLBs[k] = v
			}
			g.usage["elbv2_albs"], g.usage["elbv2_nlbs"], g.usage["elbv2_target_groups"] = albs, nlbs, c.nTG
			g.usage["elbv2_targets_per_alb"], g.usage["elbv2_targets_per_nlb"] = tALB, tNLB
			g.usage["elbv2_targets_per_az_per_nlb"], g.usage["elbv2_targets_per_target_group"] = azNLB, c.perTG
			if withListeners {
				g.usage["elbv2_listeners_per_alb"], g.usage["elbv2_rules_per_alb"] = lALB, rALB
			}
		})
		return nil
	}
}

// countTargets reads every target group and its targets; an NLB's targets
// are counted per zone (the target's zone, or its instance's).
func (w *Watcher) countTargets(ctx context.Context, c *elbv2Counts) error {
	var tgs []elbtypes.TargetGroup
	p := elbv2.NewDescribeTargetGroupsPaginator(w.c.elbv2, &elbv2.DescribeTargetGroupsInput{})
	err := eachPage(ctx, w.call, "elbv2:DescribeTargetGroups", p.HasMorePages,
		func(ctx context.Context) (*elbv2.DescribeTargetGroupsOutput, error) { return p.NextPage(ctx) },
		func(out *elbv2.DescribeTargetGroupsOutput) { tgs = append(tgs, out.TargetGroups...) })
	if err != nil {
		return err
	}
	type nlbTarget struct{ lb, id, az string }
	var nlbTargets []nlbTarget
	for _, tg := range tgs {
		c.nTG++
		arn := aws.ToString(tg.TargetGroupArn)
		c.tgLBs[arn] = tg.LoadBalancerArns
		var th *elbv2.DescribeTargetHealthOutput
		err := w.call.do(ctx, "elbv2:DescribeTargetHealth", func(ctx context.Context) (err error) {
			th, err = w.c.elbv2.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: &arn})
			return err
		})
		if err != nil {
			return fmt.Errorf("target group %s: %w", arn, err)
		}
		c.perTG = max(c.perTG, float64(len(th.TargetHealthDescriptions)))
		for _, lb := range tg.LoadBalancerArns {
			c.targets[lb] += float64(len(th.TargetHealthDescriptions))
			if c.types[lb] != "network" {
				continue
			}
			for _, d := range th.TargetHealthDescriptions {
				if d.Target != nil {
					nlbTargets = append(nlbTargets, nlbTarget{lb, aws.ToString(d.Target.Id), aws.ToString(d.Target.AvailabilityZone)})
				}
			}
		}
	}
	var ids []string
	for _, t := range nlbTargets {
		if t.az == "" && strings.HasPrefix(t.id, "i-") {
			ids = append(ids, t.id)
		}
	}
	azOf, err := w.instanceZones(ctx, ids)
	if err != nil {
		return err
	}
	for _, t := range nlbTargets {
		az := t.az
		if az == "" {
			az = azOf[t.id]
		}
		if c.perAZ[t.lb] == nil {
			c.perAZ[t.lb] = map[string]float64{}
		}
		c.perAZ[t.lb][az]++
	}
	return nil
}

// instanceZones maps instance IDs to their Availability Zones.
func (w *Watcher) instanceZones(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	p := ec2.NewDescribeInstancesPaginator(w.c.ec2, &ec2.DescribeInstancesInput{InstanceIds: ids})
	err := eachPage(ctx, w.call, "ec2:DescribeInstances", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) { return p.NextPage(ctx) },
		func(o *ec2.DescribeInstancesOutput) {
			for _, r := range o.Reservations {
				for _, in := range r.Instances {
					if in.Placement != nil {
						out[aws.ToString(in.InstanceId)] = aws.ToString(in.Placement.AvailabilityZone)
					}
				}
			}
		})
	return out, err
}

// countListeners counts each ALB's listeners and their non-default rules.
func (w *Watcher) countListeners(ctx context.Context, c *elbv2Counts) error {
	for arn, t := range c.types {
		if t != "application" {
			continue
		}
		var ls []elbtypes.Listener
		p := elbv2.NewDescribeListenersPaginator(w.c.elbv2, &elbv2.DescribeListenersInput{LoadBalancerArn: aws.String(arn)})
		err := eachPage(ctx, w.call, "elbv2:DescribeListeners", p.HasMorePages,
			func(ctx context.Context) (*elbv2.DescribeListenersOutput, error) { return p.NextPage(ctx) },
			func(out *elbv2.DescribeListenersOutput) { ls = append(ls, out.Listeners...) })
		if err != nil {
			return fmt.Errorf("load balancer %s: %w", arn, err)
		}
		c.listeners[arn] = float64(len(ls))
		for _, l := range ls {
			rp := elbv2.NewDescribeRulesPaginator(w.c.elbv2, &elbv2.DescribeRulesInput{ListenerArn: l.ListenerArn})
			err := eachPage(ctx, w.call, "elbv2:DescribeRules", rp.HasMorePages,
				func(ctx context.Context) (*elbv2.DescribeRulesOutput, error) { return rp.NextPage(ctx) },
				func(out *elbv2.DescribeRulesOutput) {
					for _, r := range out.Rules {
						if !aws.ToBool(r.IsDefault) {
							c.rules[arn]++
						}
					}
				})
			if err != nil {
				return fmt.Errorf("listener %s: %w", aws.ToString(l.ListenerArn), err)
			}
		}
	}
	return nil
}

func (w *Watcher) srcELB(ctx context.Context, g *gathered) error {
	n, most := 0, 0
	p := elasticloadbalancing.NewDescribeLoadBalancersPaginator(w.c.elb, &elasticloadbalancing.DescribeLoadBalancersInput{})
	err := eachPage(ctx, w.call, "elb:DescribeLoadBalancers", p.HasMorePages,
		func(ctx context.Context) (*elasticloadbalancing.DescribeLoadBalancersOutput, error) {
			return p.NextPage(ctx)
		},
		func(out *elasticloadbalancing.DescribeLoadBalancersOutput) {
			for _, lb := range out.LoadBalancerDescriptions {
				n++
				most = max(most, len(lb.Instances))
			}
		})
	if err != nil {
		return err
	}
	g.set(func() { g.usage["elb_classic"], g.usage["elb_instances_per_classic"] = float64(n), float64(most) })
	return nil
}

// vpcReaders are the describe sources of VPC resources, each one paginated
// call and a count over what it returns.
var vpcReaders = map[string]func(w *Watcher, ctx context.Context) (float64, error){
	"vpc_vpcs": func(w *Watcher, ctx context.Context) (float64, error) {
		var n float64
		p := ec2.NewDescribeVpcsPaginator(w.c.ec2, &ec2.DescribeVpcsInput{})
		err := eachPage(ctx, w.call, "ec2:DescribeVpcs", p.HasMorePages,
			func(ctx context.Context) (*ec2.DescribeVpcsOutput, error) { return p.NextPage(ctx) },
			func(o *ec2.DescribeVpcsOutput) { n += float64(len(o.Vpcs)) })
		return n, err
	},
	"vpc_subnets_per_vpc": func(w *Watcher, ctx context.Context) (float64, error) {
		per := map[string]float64{}
		var n float64
		p := ec2.NewDescribeSubnetsPaginator(w.c.ec2, &ec2.DescribeSubnetsInput{})
		err := eachPage(ctx, w.call, "ec2:DescribeSubnets", p.HasMorePages,
			func(ctx context.Context) (*ec2.DescribeSubnetsOutput, error) { return p.NextPage(ctx) },
			func(o *ec2.DescribeSubnetsOutput) {
				for _, s := range o.Subnets {
					per[aws.ToString(s.VpcId)]++
					n = max(n, per[aws.ToString(s.VpcId)])
				}
			})
		return n, err
	},
	"vpc_security_groups":          func(w *Watcher, ctx context.Context) (float64, error) { return w.securityGroups(ctx, false) },
	"vpc_rules_per_security_group": func(w *Watcher, ctx context.Context) (float64, error) { return w.securityGroups(ctx, true) },
	"vpc_network_interfaces":       func(w *Watcher, ctx context.Context) (float64, error) { return w.networkInterfaces(ctx, false) },
	"vpc_security_groups_per_eni":  func(w *Watcher, ctx context.Context) (float64, error) { return w.networkInterfaces(ctx, true) },
	"vpc_internet_gateways": func(w *Watcher, ctx context.Context) (float64, error) {
		var n float64
		p := ec2.NewDescribeInternetGatewaysPaginator(w.c.ec2, &ec2.DescribeInternetGatewaysInput{})
		err := eachPage(ctx, w.call, "ec2:DescribeInternetGateways", p.HasMorePages,
			func(ctx context.Context) (*ec2.DescribeInternetGatewaysOutput, error) { return p.NextPage(ctx) },
			func(o *ec2.DescribeInternetGatewaysOutput) { n += float64(len(o.InternetGateways)) })
		return n, err
	},
	"vpc_nat_gateways_per_az": func(w *Watcher, ctx context.Context) (float64, error) { return w.natGatewaysPerAZ(ctx) },
}

// securityGroups counts security groups or, with rules, the most rules in
// one direction of one group (each source CIDR, prefix list or group is a
// rule, as AWS counts them).
func (w *Watcher) securityGroups(ctx context.Context, rules bool) (float64, error) {
	var n float64
	count := func(ps []ec2types.IpPermission) float64 {
		var c float64
		for _, p := range ps {
			c += float64(max(len(p.IpRanges)+len(p.Ipv6Ranges)+len(p.PrefixListIds)+len(p.UserIdGroupPairs), 1))
		}
		return c
	}
	p := ec2.NewDescribeSecurityGroupsPaginator(w.c.ec2, &ec2.DescribeSecurityGroupsInput{})
	err := eachPage(ctx, w.call, "ec2:DescribeSecurityGroups", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeSecurityGroupsOutput, error) { return p.NextPage(ctx) },
		func(o *ec2.DescribeSecurityGroupsOutput) {
			for _, sg := range o.SecurityGroups {
				if rules {
					n = max(n, count(sg.IpPermissions), count(sg.IpPermissionsEgress))
				} else {
					n++
				}
			}
		})
	return n, err
}

// networkInterfaces counts interfaces or, with perENI, the most security
// groups on one interface.
func (w *Watcher) networkInterfaces(ctx context.Context, perENI bool) (float64, error) {
	var n float64
	p := ec2.NewDescribeNetworkInterfacesPaginator(w.c.ec2, &ec2.DescribeNetworkInterfacesInput{})
	err := eachPage(ctx, w.call, "ec2:DescribeNetworkInterfaces", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeNetworkInterfacesOutput, error) { return p.NextPage(ctx) },
		func(o *ec2.DescribeNetworkInterfacesOutput) {
			for _, e := range o.NetworkInterfaces {
				if perENI {
					n = max(n, float64(len(e.Groups)))
				} else {
					n++
				}
			}
		})
	return n, err
}

// natGatewaysPerAZ is the most NAT gateways (pending, available or
// deleting, as AWS counts them) in one Availability Zone.
func (w *Watcher) natGatewaysPerAZ(ctx context.Context) (float64, error) {
	bySubnet := map[string]float64{}
	p := ec2.NewDescribeNatGatewaysPaginator(w.c.ec2, &ec2.DescribeNatGatewaysInput{
		Filter: []ec2types.Filter{{Name: aws.String("state"), Values: []string{"pending", "available", "deleting"}}}})
	err := eachPage(ctx, w.call, "ec2:DescribeNatGateways", p.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeNatGatewaysOutput, error) { return p.NextPage(ctx) },
		func(o *ec2.DescribeNatGatewaysOutput) {
			for _, n := range o.NatGateways {
				bySubnet[aws.ToString(n.SubnetId)]++
			}
		})
	if err != nil || len(bySubnet) == 0 {
		return 0, err
	}
	ids := make([]string, 0, len(bySubnet))
	for id := range bySubnet {
		ids = append(ids, id)
	}
	perAZ := map[string]float64{}
	ps := ec2.NewDescribeSubnetsPaginator(w.c.ec2, &ec2.DescribeSubnetsInput{SubnetIds: ids})
	err = eachPage(ctx, w.call, "ec2:DescribeSubnets", ps.HasMorePages,
		func(ctx context.Context) (*ec2.DescribeSubnetsOutput, error) { return ps.NextPage(ctx) },
		func(o *ec2.DescribeSubnetsOutput) {
			for _, s := range o.Subnets {
				perAZ[aws.ToString(s.AvailabilityZone)] += bySubnet[aws.ToString(s.SubnetId)]
			}
		})
	var most float64
	for _, v := range perAZ {
		most = max(most, v)
	}
	return most, err
}

// srcVPC runs one VPC reader.
func (w *Watcher) srcVPC(kind string) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		n, err := vpcReaders[kind](w, ctx)
		if err != nil {
			return err
		}
		g.set(func() { g.usage[kind] = n })
		return nil
	}
}

// srcUsageMetrics reads AWS/Usage ResourceCount (Maximum, 5-minute) for
// every quota with a metric, from each quota's last read (or History ago).
func (w *Watcher) srcUsageMetrics(defs []QuotaDef, now time.Time) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		var qs []cwtypes.MetricDataQuery
		ids := map[string]string{}
		start := now
		for i, d := range defs {
			if d.Metric == nil {
				continue
			}
			from := w.cwSince(d.Key(), now)
			if from.Before(start) {
				start = from
			}
			id := fmt.Sprintf("q%d", i)
			ids[id] = d.Key()
			dims := []cwtypes.Dimension{{Name: aws.String("Service"), Value: aws.String(d.Metric.Service)},
				{Name: aws.String("Type"), Value: aws.String(d.Metric.Type)},
				{Name: aws.String("Resource"), Value: aws.String(d.Metric.Resource)}}
			if d.Metric.Class != "" {
				dims = append(dims, cwtypes.Dimension{Name: aws.String("Class"), Value: aws.String(d.Metric.Class)})
			}
			qs = append(qs, cwtypes.MetricDataQuery{Id: aws.String(id), MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String("AWS/Usage"), MetricName: aws.String("ResourceCount"), Dimensions: dims},
				Period: aws.Int32(300), Stat: aws.String("Maximum")}})
		}
		if len(qs) == 0 {
			return nil
		}
		pts, err := w.getMetricData(ctx, qs, start, now.Add(time.Minute))
		if err != nil {
			return err
		}
		g.set(func() {
			for id, p := range pts {
				g.metrics[ids[id]] = p
			}
		})
		return nil
	}
}

// getMetricData runs queries (500 a call, paginated) and returns points by
// query id. A query with no data has no points: it is unknown, not zero.
func (w *Watcher) getMetricData(ctx context.Context, qs []cwtypes.MetricDataQuery, start, end time.Time) (map[string][]Point, error) {
	res := map[string][]Point{}
	for len(qs) > 0 {
		n := min(len(qs), 500)
		batch := qs[:n]
		qs = qs[n:]
		p := cloudwatch.NewGetMetricDataPaginator(w.c.cw, &cloudwatch.GetMetricDataInput{MetricDataQueries: batch,
			StartTime: aws.Time(start), EndTime: aws.Time(end), ScanBy: cwtypes.ScanByTimestampAscending})
		err := eachPage(ctx, w.call, "cloudwatch:GetMetricData", p.HasMorePages,
			func(ctx context.Context) (*cloudwatch.GetMetricDataOutput, error) { return p.NextPage(ctx) },
			func(out *cloudwatch.GetMetricDataOutput) {
				for _, r := range out.MetricDataResults {
					id := aws.ToString(r.Id)
					for i := range r.Timestamps {
						if i < len(r.Values) {
							res[id] = append(res[id], Point{T: r.Timestamps[i], V: r.Values[i]})
						}
					}
				}
			})
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}
