package limits

import (
	"context"
	"fmt"
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
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
)

// This file holds the I/O: each source reads AWS and fills a part of
// gathered. A source that fails leaves its part empty ("unknown") and is
// reported in SourceStatus; it never stops another.

// SourceStatus is the outcome of one source in one refresh.
type SourceStatus struct {
	Name     string
	OK       bool
	Err      string
	Duration time.Duration
}

// groupInfo is what feasibility needs of one Auto Scaling group.
type groupInfo struct {
	Name       string
	Max        int
	Current    int // instances not terminating
	Types      []string
	LTs        []ltRef
	LCName     string
	TargetARNs []string
}

type ltRef struct{ id, name, version string }

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
	lcTypes    map[string]string // launch configuration → instance type
	metrics    map[string][]Point
	sources    []SourceStatus
}

func newGathered() *gathered {
	return &gathered{apiLimits: map[string]float64{}, sqApplied: map[string]float64{}, sqDefault: map[string]float64{},
		adjustable: map[string]bool{}, usage: map[string]float64{}, perLB: map[string]float64{}, lbType: map[string]string{},
		tgLBs: map[string][]string{}, groups: map[string]*groupInfo{}, lcTypes: map[string]string{}, metrics: map[string][]Point{}}
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
			st := SourceStatus{Name: s.name, OK: err == nil, Duration: time.Since(start)}
			if err != nil {
				st.Err = err.Error()
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
	return pages(ctx, w.call, "elbv2:DescribeAccountLimits",
		func(ctx context.Context, marker *string) (*elbv2.DescribeAccountLimitsOutput, error) {
			return w.c.elbv2.DescribeAccountLimits(ctx, &elbv2.DescribeAccountLimitsInput{Marker: marker})
		},
		func(out *elbv2.DescribeAccountLimitsOutput) (*string, error) {
			g.set(func() {
				for _, l := range out.Limits {
					if v, err := strconv.ParseFloat(aws.ToString(l.Max), 64); err == nil {
						g.apiLimits["elbv2:"+aws.ToString(l.Name)] = v
					}
				}
			})
			return out.NextMarker, nil
		})
}

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

// srcSQApplied reads applied quota values of one service code.
func (w *Watcher) srcSQApplied(svc string) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		err := pages(ctx, w.call, "servicequotas:ListServiceQuotas",
			func(ctx context.Context, tok *string) (*servicequotas.ListServiceQuotasOutput, error) {
				return w.c.quotas.ListServiceQuotas(ctx, &servicequotas.ListServiceQuotasInput{ServiceCode: &svc, NextToken: tok, MaxResults: aws.Int32(100)})
			},
			func(out *servicequotas.ListServiceQuotasOutput) (*string, error) {
				g.set(func() {
					for _, q := range out.Quotas {
						if q.Value != nil {
							k := svc + "/" + aws.ToString(q.QuotaCode)
							g.sqApplied[k] = *q.Value
							g.adjustable[k] = q.Adjustable
						}
					}
				})
				return out.NextToken, nil
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
		err := pages(ctx, w.call, "servicequotas:ListAWSDefaultServiceQuotas",
			func(ctx context.Context, tok *string) (*servicequotas.ListAWSDefaultServiceQuotasOutput, error) {
				return w.c.quotas.ListAWSDefaultServiceQuotas(ctx, &servicequotas.ListAWSDefaultServiceQuotasInput{ServiceCode: &svc, NextToken: tok, MaxResults: aws.Int32(100)})
			},
			func(out *servicequotas.ListAWSDefaultServiceQuotasOutput) (*string, error) {
				g.set(func() {
					for _, q := range out.Quotas {
						if q.Value != nil {
							k := svc + "/" + aws.ToString(q.QuotaCode)
							g.sqDefault[k] = *q.Value
							if _, ok := g.adjustable[k]; !ok {
								g.adjustable[k] = q.Adjustable
							}
						}
					}
				})
				return out.NextToken, nil
			})
		if err != nil {
			return fmt.Errorf("service %s: %w", svc, err)
		}
		return nil
	}
}

// --- usage sources ---

// srcInstances sums the vCPUs of running On-Demand instances by class.
func (w *Watcher) srcInstances(ctx context.Context, g *gathered) error {
	byType := map[string]int{}
	err := pages(ctx, w.call, "ec2:DescribeInstances",
		func(ctx context.Context, tok *string) (*ec2.DescribeInstancesOutput, error) {
			return w.c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{NextToken: tok, MaxResults: aws.Int32(1000),
				Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}}})
		},
		func(out *ec2.DescribeInstancesOutput) (*string, error) {
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					if in.InstanceLifecycle != "" { // spot or scheduled: other quotas
						continue
					}
					byType[string(in.InstanceType)]++
				}
			}
			return out.NextToken, nil
		})
	if err != nil {
		return err
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	vc, err := w.vcpus(ctx, types)
	if err != nil {
		return err
	}
	sums := map[string]float64{"standard": 0, "g": 0, "p": 0, "x": 0, "f": 0}
	for t, n := range byType {
		cls := VCPUClass(t)
		if cls == "" {
			continue
		}
		v, ok := vc[t]
		if !ok {
			return fmt.Errorf("vCPUs of instance type %s unknown", t)
		}
		sums[cls] += float64(v * n)
	}
	g.set(func() {
		for cls, v := range sums {
			g.usage["ec2_vcpus_"+cls] = v
		}
	})
	return nil
}

// vcpus returns the default vCPUs of instance types, cached for the
// watcher's lifetime (instance types do not change).
func (w *Watcher) vcpus(ctx context.Context, types []string) (map[string]int, error) {
	w.vcpuMu.Lock()
	defer w.vcpuMu.Unlock()
	var missing []string
	for _, t := range types {
		if _, ok := w.vcpuCache[t]; !ok && t != "" {
			missing = append(missing, t)
		}
	}
	for len(missing) > 0 {
		n := min(len(missing), 100)
		batch := missing[:n]
		missing = missing[n:]
		its := make([]ec2types.InstanceType, len(batch))
		for i, t := range batch {
			its[i] = ec2types.InstanceType(t)
		}
		var out *ec2.DescribeInstanceTypesOutput
		err := w.call.do(ctx, "ec2:DescribeInstanceTypes", func(ctx context.Context) (err error) {
			out, err = w.c.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: its})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, it := range out.InstanceTypes {
			if it.VCpuInfo != nil && it.VCpuInfo.DefaultVCpus != nil {
				w.vcpuCache[string(it.InstanceType)] = int(*it.VCpuInfo.DefaultVCpus)
			}
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
	err := pages(ctx, w.call, "ec2:DescribeLaunchTemplates",
		func(ctx context.Context, tok *string) (*ec2.DescribeLaunchTemplatesOutput, error) {
			return w.c.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{NextToken: tok, MaxResults: aws.Int32(200)})
		},
		func(out *ec2.DescribeLaunchTemplatesOutput) (*string, error) {
			n += len(out.LaunchTemplates)
			return out.NextToken, nil
		})
	if err != nil {
		return err
	}
	g.set(func() { g.usage["ec2_launch_templates"] = float64(n) })
	return nil
}

// srcGroups counts Auto Scaling groups and reads the watched ones for
// feasibility, with the instance types they launch.
func (w *Watcher) srcGroups(watch map[string]bool) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		n := 0
		var mine []astypes.AutoScalingGroup
		err := pages(ctx, w.call, "autoscaling:DescribeAutoScalingGroups",
			func(ctx context.Context, tok *string) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
				return w.c.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{NextToken: tok, MaxRecords: aws.Int32(100)})
			},
			func(out *autoscaling.DescribeAutoScalingGroupsOutput) (*string, error) {
				n += len(out.AutoScalingGroups)
				for _, a := range out.AutoScalingGroups {
					if watch[aws.ToString(a.AutoScalingGroupName)] {
						mine = append(mine, a)
					}
				}
				return out.NextToken, nil
			})
		if err != nil {
			return err
		}
		g.set(func() { g.usage["asg_groups"] = float64(n) })
		// Resolve the instance types each watched group launches.
		ltTypes := map[ltRef][]string{}
		var infos []*groupInfo
		for _, a := range mine {
			gi := &groupInfo{Name: aws.ToString(a.AutoScalingGroupName), Max: int(aws.ToInt32(a.MaxSize)), TargetARNs: a.TargetGroupARNs,
				LCName: aws.ToString(a.LaunchConfigurationName)}
			for _, in := range a.Instances {
				if !strings.HasPrefix(string(in.LifecycleState), "Terminat") {
					gi.Current++
				}
			}
			addLT := func(s *astypes.LaunchTemplateSpecification) {
				if s == nil {
					return
				}
				v := aws.ToString(s.Version)
				if v == "" {
					v = "$Default"
				}
				gi.LTs = append(gi.LTs, ltRef{id: aws.ToString(s.LaunchTemplateId), name: aws.ToString(s.LaunchTemplateName), version: v})
			}
			addLT(a.LaunchTemplate)
			if m := a.MixedInstancesPolicy; m != nil && m.LaunchTemplate != nil {
				for _, o := range m.LaunchTemplate.Overrides {
					if o.InstanceType != nil {
						gi.Types = append(gi.Types, *o.InstanceType)
					}
				}
				if len(gi.Types) == 0 {
					addLT(m.LaunchTemplate.LaunchTemplateSpecification)
				}
			}
			for _, r := range gi.LTs {
				ltTypes[r] = nil
			}
			infos = append(infos, gi)
		}
		for r := range ltTypes {
			in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{r.version}}
			if r.id != "" {
				in.LaunchTemplateId = aws.String(r.id)
			} else {
				in.LaunchTemplateName = aws.String(r.name)
			}
			var out *ec2.DescribeLaunchTemplateVersionsOutput
			err := w.call.do(ctx, "ec2:DescribeLaunchTemplateVersions", func(ctx context.Context) (err error) {
				out, err = w.c.ec2.DescribeLaunchTemplateVersions(ctx, in)
				return err
			})
			if err != nil {
				return fmt.Errorf("launch template %s%s: %w", r.id, r.name, err)
			}
			for _, v := range out.LaunchTemplateVersions {
				if v.LaunchTemplateData != nil && v.LaunchTemplateData.InstanceType != "" {
					ltTypes[r] = append(ltTypes[r], string(v.LaunchTemplateData.InstanceType))
				}
			}
		}
		for _, gi := range infos {
			for _, r := range gi.LTs {
				gi.Types = append(gi.Types, ltTypes[r]...)
			}
		}
		g.set(func() {
			for _, gi := range infos {
				g.groups[gi.Name] = gi
			}
		})
		return nil
	}
}

func (w *Watcher) srcLaunchConfigurations(ctx context.Context, g *gathered) error {
	n := 0
	types := map[string]string{}
	err := pages(ctx, w.call, "autoscaling:DescribeLaunchConfigurations",
		func(ctx context.Context, tok *string) (*autoscaling.DescribeLaunchConfigurationsOutput, error) {
			return w.c.asg.DescribeLaunchConfigurations(ctx, &autoscaling.DescribeLaunchConfigurationsInput{NextToken: tok, MaxRecords: aws.Int32(100)})
		},
		func(out *autoscaling.DescribeLaunchConfigurationsOutput) (*string, error) {
			n += len(out.LaunchConfigurations)
			for _, lc := range out.LaunchConfigurations {
				types[aws.ToString(lc.LaunchConfigurationName)] = aws.ToString(lc.InstanceType)
			}
			return out.NextToken, nil
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

// srcELBv2 counts load balancers, target groups, listeners and targets per
// load balancer.
func (w *Watcher) srcELBv2(withListeners bool) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		types := map[string]string{}
		err := pages(ctx, w.call, "elbv2:DescribeLoadBalancers",
			func(ctx context.Context, marker *string) (*elbv2.DescribeLoadBalancersOutput, error) {
				return w.c.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Marker: marker})
			},
			func(out *elbv2.DescribeLoadBalancersOutput) (*string, error) {
				for _, lb := range out.LoadBalancers {
					types[aws.ToString(lb.LoadBalancerArn)] = string(lb.Type)
				}
				return out.NextMarker, nil
			})
		if err != nil {
			return err
		}
		targets := map[string]float64{}
		tgLBs := map[string][]string{}
		nTG := 0
		err = pages(ctx, w.call, "elbv2:DescribeTargetGroups",
			func(ctx context.Context, marker *string) (*elbv2.DescribeTargetGroupsOutput, error) {
				return w.c.elbv2.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Marker: marker})
			},
			func(out *elbv2.DescribeTargetGroupsOutput) (*string, error) {
				for _, tg := range out.TargetGroups {
					nTG++
					arn := aws.ToString(tg.TargetGroupArn)
					tgLBs[arn] = tg.LoadBalancerArns
					if len(tg.LoadBalancerArns) == 0 {
						continue
					}
					var th *elbv2.DescribeTargetHealthOutput
					err := w.call.do(ctx, "elbv2:DescribeTargetHealth", func(ctx context.Context) (err error) {
						th, err = w.c.elbv2.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: &arn})
						return err
					})
					if err != nil {
						return nil, fmt.Errorf("target group %s: %w", arn, err)
					}
					for _, lb := range tg.LoadBalancerArns {
						targets[lb] += float64(len(th.TargetHealthDescriptions))
					}
				}
				return out.NextMarker, nil
			})
		if err != nil {
			return err
		}
		listeners := map[string]float64{}
		if withListeners {
			for arn, t := range types {
				if t != "application" {
					continue
				}
				var out *elbv2.DescribeListenersOutput
				err := w.call.do(ctx, "elbv2:DescribeListeners", func(ctx context.Context) (err error) {
					out, err = w.c.elbv2.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: aws.String(arn)})
					return err
				})
				if err != nil {
					return fmt.Errorf("load balancer %s: %w", arn, err)
				}
				listeners[arn] = float64(len(out.Listeners))
			}
		}
		g.set(func() {
			var albs, nlbs, tALB, tNLB, lALB float64
			for arn, t := range types {
				g.lbType[arn] = t
				g.perLB[arn] = targets[arn]
				switch t {
				case "application":
					albs++
					tALB = max(tALB, targets[arn])
					lALB = max(lALB, listeners[arn])
				case "network":
					nlbs++
					tNLB = max(tNLB, targets[arn])
				}
			}
			for k, v := range tgLBs {
				g.tgLBs[k] = v
			}
			g.usage["elbv2_albs"], g.usage["elbv2_nlbs"], g.usage["elbv2_target_groups"] = albs, nlbs, float64(nTG)
			g.usage["elbv2_targets_per_alb"], g.usage["elbv2_targets_per_nlb"] = tALB, tNLB
			if withListeners {
				g.usage["elbv2_listeners_per_alb"] = lALB
			}
		})
		return nil
	}
}

func (w *Watcher) srcELB(ctx context.Context, g *gathered) error {
	n, most := 0, 0
	err := pages(ctx, w.call, "elb:DescribeLoadBalancers",
		func(ctx context.Context, marker *string) (*elasticloadbalancing.DescribeLoadBalancersOutput, error) {
			return w.c.elb.DescribeLoadBalancers(ctx, &elasticloadbalancing.DescribeLoadBalancersInput{Marker: marker})
		},
		func(out *elasticloadbalancing.DescribeLoadBalancersOutput) (*string, error) {
			for _, lb := range out.LoadBalancerDescriptions {
				n++
				most = max(most, len(lb.Instances))
			}
			return out.NextMarker, nil
		})
	if err != nil {
		return err
	}
	g.set(func() { g.usage["elb_classic"], g.usage["elb_instances_per_classic"] = float64(n), float64(most) })
	return nil
}

// srcVPC counts one kind of VPC resource.
func (w *Watcher) srcVPC(kind string) func(context.Context, *gathered) error {
	return func(ctx context.Context, g *gathered) error {
		var n float64
		var err error
		switch kind {
		case "vpc_vpcs":
			var out *ec2.DescribeVpcsOutput
			err = w.call.do(ctx, "ec2:DescribeVpcs", func(ctx context.Context) (err error) {
				out, err = w.c.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
				return err
			})
			if err == nil {
				n = float64(len(out.Vpcs))
			}
		case "vpc_subnets_per_vpc":
			var out *ec2.DescribeSubnetsOutput
			err = w.call.do(ctx, "ec2:DescribeSubnets", func(ctx context.Context) (err error) {
				out, err = w.c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
				return err
			})
			if err == nil {
				per := map[string]float64{}
				for _, s := range out.Subnets {
					per[aws.ToString(s.VpcId)]++
					n = max(n, per[aws.ToString(s.VpcId)])
				}
			}
		case "vpc_security_groups":
			var out *ec2.DescribeSecurityGroupsOutput
			err = w.call.do(ctx, "ec2:DescribeSecurityGroups", func(ctx context.Context) (err error) {
				out, err = w.c.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{})
				return err
			})
			if err == nil {
				n = float64(len(out.SecurityGroups))
			}
		case "vpc_network_interfaces":
			var out *ec2.DescribeNetworkInterfacesOutput
			err = w.call.do(ctx, "ec2:DescribeNetworkInterfaces", func(ctx context.Context) (err error) {
				out, err = w.c.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
				return err
			})
			if err == nil {
				n = float64(len(out.NetworkInterfaces))
			}
		case "vpc_internet_gateways":
			var out *ec2.DescribeInternetGatewaysOutput
			err = w.call.do(ctx, "ec2:DescribeInternetGateways", func(ctx context.Context) (err error) {
				out, err = w.c.ec2.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{})
				return err
			})
			if err == nil {
				n = float64(len(out.InternetGateways))
			}
		}
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
		err := pages(ctx, w.call, "cloudwatch:GetMetricData",
			func(ctx context.Context, tok *string) (*cloudwatch.GetMetricDataOutput, error) {
				return w.c.cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{MetricDataQueries: batch,
					StartTime: aws.Time(start), EndTime: aws.Time(end), NextToken: tok, ScanBy: cwtypes.ScanByTimestampAscending})
			},
			func(out *cloudwatch.GetMetricDataOutput) (*string, error) {
				for _, r := range out.MetricDataResults {
					id := aws.ToString(r.Id)
					for i := range r.Timestamps {
						if i < len(r.Values) {
							res[id] = append(res[id], Point{T: r.Timestamps[i], V: r.Values[i]})
						}
					}
				}
				return out.NextToken, nil
			})
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}
