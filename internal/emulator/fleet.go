package emulator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Fleet-wide constants of the emulated network.
const (
	// VPCCIDR is the VPC every fleet lives in; its subnets are
	// 127.0.N.0/24, so instances get loopback private IPs.
	VPCCIDR = "127.0.0.0/16"
	// ImageID is an AMI moto knows.
	ImageID      = "ami-12c6146b"
	InstanceType = "t3.micro"
)

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// ErrNotInGroup: the instance is not (or no longer) a member of the group.
var ErrNotInGroup = errors.New("instance not in group")

// FleetSpec describes a fleet to build.
type FleetSpec struct {
	Group string
	// AZs the group spans, e.g. us-east-1a, us-east-1b. Default: both.
	AZs []string
	// PerAZ instances are launched into each AZ's subnet.
	PerAZ int
	// GracePeriod is the group's HealthCheckGracePeriod (whole seconds).
	GracePeriod time.Duration
	// MaxSize of the group. Default: twice the fleet, at least 1.
	MaxSize int
}

// Fleet is an Auto Scaling group in moto with instances spread over AZs,
// each with a loopback private IP, and optionally one AppServer per
// instance.
type Fleet struct {
	Spec  FleetSpec
	VPCID string
	// Subnets maps each AZ to its subnet; the group's first subnet (where
	// moto puts the instances it launches itself) is Subnets[Spec.AZs[0]].
	Subnets        map[string]string
	LaunchTemplate string

	asg *autoscaling.Client
	ec2 *ec2.Client

	mu      sync.Mutex
	apps    map[string]*AppServer // by instance id
	appPort int
}

// FleetInstance is one member of the group as moto reports it.
type FleetInstance struct {
	ID string
	AZ string
	IP netip.Addr // zero if EC2 no longer reports one
	// Health is the group's HealthStatus: Healthy or Unhealthy.
	Health string
	// Lifecycle is the group's LifecycleState: InService, Terminating, ...
	Lifecycle string
}

// networkMu serialises VPC and subnet allocation between fleets built by
// this process, so that concurrent BuildFleets get distinct subnets.
var networkMu sync.Mutex

// BuildFleet creates, in the emulator cfg points at, the VPC 127.0.0.0/16
// (reused if present), one fresh subnet 127.0.N.0/24 per AZ (N not used by
// any other subnet of the VPC), a launch template and the group, then
// launches PerAZ instances into each subnet and attaches them to the group
// (moto itself would put them all in the first subnet). It fails unless
// every instance has a private IP in 127.0.0.0/8.
func BuildFleet(ctx context.Context, cfg aws.Config, spec FleetSpec) (*Fleet, error) {
	if spec.Group == "" {
		return nil, errors.New("fleet: group name is required")
	}
	if len(spec.AZs) == 0 {
		spec.AZs = []string{Region + "a", Region + "b"}
	}
	if spec.PerAZ < 0 {
		return nil, fmt.Errorf("fleet %s: PerAZ %d < 0", spec.Group, spec.PerAZ)
	}
	total := spec.PerAZ * len(spec.AZs)
	if spec.MaxSize == 0 {
		spec.MaxSize = max(2*total, 1)
	}
	if spec.MaxSize < total {
		return nil, fmt.Errorf("fleet %s: MaxSize %d < %d instances", spec.Group, spec.MaxSize, total)
	}
	f := &Fleet{
		Spec:           spec,
		Subnets:        map[string]string{},
		LaunchTemplate: "medic-" + spec.Group,
		asg:            autoscaling.NewFromConfig(cfg),
		ec2:            ec2.NewFromConfig(cfg),
		apps:           map[string]*AppServer{},
	}
	if err := f.buildNetwork(ctx); err != nil {
		return nil, fmt.Errorf("fleet %s: %w", spec.Group, err)
	}
	if err := f.buildGroup(ctx); err != nil {
		return nil, fmt.Errorf("fleet %s: %w", spec.Group, err)
	}
	for _, az := range spec.AZs {
		if err := f.launch(ctx, az, spec.PerAZ); err != nil {
			return nil, fmt.Errorf("fleet %s: %w", spec.Group, err)
		}
	}
	insts, err := f.Instances(ctx)
	if err != nil {
		return nil, err
	}
	if len(insts) != total {
		return nil, fmt.Errorf("fleet %s: %d instances in the group, want %d", spec.Group, len(insts), total)
	}
	if err := checkLoopback(insts); err != nil {
		return nil, fmt.Errorf("fleet %s: %w", spec.Group, err)
	}
	return f, nil
}

func checkLoopback(insts []FleetInstance) error {
	for _, in := range insts {
		if !loopback.Contains(in.IP) {
			return fmt.Errorf("instance %s has private IP %v, not in %v", in.ID, in.IP, loopback)
		}
	}
	return nil
}

func (f *Fleet) buildNetwork(ctx context.Context) error {
	networkMu.Lock()
	defer networkMu.Unlock()

	vpcs, err := f.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	if err != nil {
		return fmt.Errorf("describe VPCs: %w", err)
	}
	for _, v := range vpcs.Vpcs {
		if aws.ToString(v.CidrBlock) == VPCCIDR {
			f.VPCID = aws.ToString(v.VpcId)
			break
		}
	}
	if f.VPCID == "" {
		out, err := f.ec2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String(VPCCIDR)})
		if err != nil {
			return fmt.Errorf("create VPC %s: %w", VPCCIDR, err)
		}
		f.VPCID = aws.ToString(out.Vpc.VpcId)
	}

	subnets, err := f.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{
		Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{f.VPCID}}},
	})
	if err != nil {
		return fmt.Errorf("describe subnets of %s: %w", f.VPCID, err)
	}
	used := map[int]bool{0: true} // 127.0.0.0/24 holds 127.0.0.1: never an instance's
	for _, s := range subnets.Subnets {
		p, err := netip.ParsePrefix(aws.ToString(s.CidrBlock))
		if err != nil {
			continue
		}
		used[int(p.Addr().As4()[2])] = true
	}
	n := 0
	for _, az := range f.Spec.AZs {
		for used[n] {
			n++
		}
		if n > 255 {
			return errors.New("no free 127.0.N.0/24 subnet left in the VPC")
		}
		used[n] = true
		cidr := "127.0." + strconv.Itoa(n) + ".0/24"
		out, err := f.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{
			VpcId:            aws.String(f.VPCID),
			CidrBlock:        aws.String(cidr),
			AvailabilityZone: aws.String(az),
		})
		if err != nil {
			return fmt.Errorf("create subnet %s in %s: %w", cidr, az, err)
		}
		f.Subnets[az] = aws.ToString(out.Subnet.SubnetId)
	}
	return nil
}

func (f *Fleet) buildGroup(ctx context.Context) error {
	_, err := f.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(f.LaunchTemplate),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			ImageId:      aws.String(ImageID),
			InstanceType: ec2types.InstanceType(InstanceType),
		},
	})
	if err != nil {
		return fmt.Errorf("create launch template %s: %w", f.LaunchTemplate, err)
	}
	subnets := make([]string, 0, len(f.Spec.AZs))
	for _, az := range f.Spec.AZs {
		subnets = append(subnets, f.Subnets[az])
	}
	grace := int32(math.Ceil(f.Spec.GracePeriod.Seconds()))
	_, err = f.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(f.Spec.Group),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{
			LaunchTemplateName: aws.String(f.LaunchTemplate),
			Version:            aws.String("$Latest"),
		},
		MinSize:                aws.Int32(0),
		MaxSize:                aws.Int32(int32(f.Spec.MaxSize)),
		DesiredCapacity:        aws.Int32(0),
		VPCZoneIdentifier:      aws.String(strings.Join(subnets, ",")),
		HealthCheckType:        aws.String("EC2"),
		HealthCheckGracePeriod: aws.Int32(grace),
	})
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	// moto turns a grace period of 0 at creation into 300; an update
	// keeps 0.
	g, err := f.describeGroup(ctx)
	if err != nil {
		return err
	}
	if aws.ToInt32(g.HealthCheckGracePeriod) != grace {
		_, err := f.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
			AutoScalingGroupName:   aws.String(f.Spec.Group),
			HealthCheckGracePeriod: aws.Int32(grace),
		})
		if err != nil {
			return fmt.Errorf("set grace period: %w", err)
		}
		if g, err = f.describeGroup(ctx); err != nil {
			return err
		}
		if got := aws.ToInt32(g.HealthCheckGracePeriod); got != grace {
			return fmt.Errorf("grace period is %ds after update, want %ds", got, grace)
		}
	}
	return nil
}

// launch runs n instances in az's subnet and attaches them to the group.
func (f *Fleet) launch(ctx context.Context, az string, n int) error {
	if n == 0 {
		return nil
	}
	out, err := f.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String(ImageID),
		InstanceType: ec2types.InstanceType(InstanceType),
		MinCount:     aws.Int32(int32(n)),
		MaxCount:     aws.Int32(int32(n)),
		SubnetId:     aws.String(f.Subnets[az]),
	})
	if err != nil {
		return fmt.Errorf("run %d instances in %s: %w", n, az, err)
	}
	ids := make([]string, 0, len(out.Instances))
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	// AttachInstances takes at most 20 instances per call.
	for start := 0; start < len(ids); start += 20 {
		batch := ids[start:min(start+20, len(ids))]
		if _, err := f.asg.AttachInstances(ctx, &autoscaling.AttachInstancesInput{
			AutoScalingGroupName: aws.String(f.Spec.Group),
			InstanceIds:          batch,
		}); err != nil {
			return fmt.Errorf("attach %v: %w", batch, err)
		}
	}
	return nil
}

func (f *Fleet) describeGroup(ctx context.Context) (astypes.AutoScalingGroup, error) {
	out, err := f.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{
		AutoScalingGroupNames: []string{f.Spec.Group},
	})
	if err != nil {
		return astypes.AutoScalingGroup{}, fmt.Errorf("describe group %s: %w", f.Spec.Group, err)
	}
	if len(out.AutoScalingGroups) != 1 {
		return astypes.AutoScalingGroup{}, fmt.Errorf("group %s not found", f.Spec.Group)
	}
	return out.AutoScalingGroups[0], nil
}

// Instances lists the group's members, any lifecycle state, with the
// private IPs EC2 reports, sorted by AZ then id.
func (f *Fleet) Instances(ctx context.Context) ([]FleetInstance, error) {
	g, err := f.describeGroup(ctx)
	if err != nil {
		return nil, err
	}
	insts := make([]FleetInstance, 0, len(g.Instances))
	idx := map[string]int{}
	for _, in := range g.Instances {
		id := aws.ToString(in.InstanceId)
		idx[id] = len(insts)
		insts = append(insts, FleetInstance{
			ID:        id,
			AZ:        aws.ToString(in.AvailabilityZone),
			Health:    aws.ToString(in.HealthStatus),
			Lifecycle: string(in.LifecycleState),
		})
	}
	// The instance-id filter, unlike InstanceIds, does not fail on an id
	// that has just vanished; it takes at most 200 values.
	ids := make([]string, 0, len(insts))
	for _, in := range insts {
		ids = append(ids, in.ID)
	}
	for start := 0; start < len(ids); start += 200 {
		batch := ids[start:min(start+200, len(ids))]
		p := ec2.NewDescribeInstancesPaginator(f.ec2, &ec2.DescribeInstancesInput{
			Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: batch}},
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe instances of %s: %w", f.Spec.Group, err)
			}
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					i, ok := idx[aws.ToString(in.InstanceId)]
					if !ok {
						continue
					}
					if ip, err := netip.ParseAddr(aws.ToString(in.PrivateIpAddress)); err == nil {
						insts[i].IP = ip
					}
				}
			}
		}
	}
	sort.Slice(insts, func(i, j int) bool {
		if insts[i].AZ != insts[j].AZ {
			return insts[i].AZ < insts[j].AZ
		}
		return insts[i].ID < insts[j].ID
	})
	return insts, nil
}

// Health is the group's HealthStatus for instance id, or ErrNotInGroup.
func (f *Fleet) Health(ctx context.Context, id string) (string, error) {
	g, err := f.describeGroup(ctx)
	if err != nil {
		return "", err
	}
	for _, in := range g.Instances {
		if aws.ToString(in.InstanceId) == id {
			return aws.ToString(in.HealthStatus), nil
		}
	}
	return "", fmt.Errorf("%s in %s: %w", id, f.Spec.Group, ErrNotInGroup)
}

// StartApps starts one AppServer per instance on its IP, all on one port,
// and returns that port. Port 0 picks one that is free on every instance IP.
func (f *Fleet) StartApps(ctx context.Context, port int) (int, error) {
	insts, err := f.Instances(ctx)
	if err != nil {
		return 0, err
	}
	if err := checkLoopback(insts); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.appPort != 0 {
		return 0, fmt.Errorf("fleet %s: apps already started on port %d", f.Spec.Group, f.appPort)
	}
	if len(insts) == 0 {
		if port == 0 {
			if port, err = freePort("127.0.0.1"); err != nil {
				return 0, err
			}
		}
		f.appPort = port
		return port, nil
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	for try := 0; ; try++ {
		p := port
		if p == 0 {
			if p, err = freePort(insts[0].IP.String()); err != nil {
				return 0, err
			}
		}
		started := map[string]*AppServer{}
		for _, in := range insts {
			a, aerr := StartApp(in.IP.String(), p)
			if aerr != nil {
				err = fmt.Errorf("instance %s: %w", in.ID, aerr)
				break
			}
			started[in.ID] = a
		}
		if len(started) == len(insts) {
			f.apps, f.appPort = started, p
			return p, nil
		}
		for _, a := range started {
			_ = a.Close()
		}
		if try+1 >= tries {
			return 0, fmt.Errorf("fleet %s: start apps: %w", f.Spec.Group, err)
		}
	}
}

// SyncApps makes the app servers follow the group: it starts one for each
// member that has an IP and none yet (replacements), and stops those of
// instances that left the group or are terminating. It returns the ids
// started and stopped.
func (f *Fleet) SyncApps(ctx context.Context) (started, stopped []string, err error) {
	insts, err := f.Instances(ctx)
	if err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.appPort == 0 {
		return nil, nil, fmt.Errorf("fleet %s: StartApps first", f.Spec.Group)
	}
	live := map[string]bool{}
	var errs []error
	for _, in := range insts {
		if strings.HasPrefix(in.Lifecycle, "Terminat") || !in.IP.IsValid() {
			continue
		}
		live[in.ID] = true
		if _, ok := f.apps[in.ID]; ok {
			continue
		}
		a, err := StartApp(in.IP.String(), f.appPort)
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", in.ID, err))
			continue
		}
		f.apps[in.ID] = a
		started = append(started, in.ID)
	}
	for id, a := range f.apps {
		if !live[id] {
			_ = a.Close()
			delete(f.apps, id)
			stopped = append(stopped, id)
		}
	}
	sort.Strings(started)
	sort.Strings(stopped)
	return started, stopped, errors.Join(errs...)
}

// App is instance id's app server, nil if none.
func (f *Fleet) App(id string) *AppServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apps[id]
}

// Apps is a copy of the app servers by instance id.
func (f *Fleet) Apps() map[string]*AppServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]*AppServer, len(f.apps))
	for id, a := range f.apps {
		out[id] = a
	}
	return out
}

// AppPort is the port every app server listens on, 0 before StartApps.
func (f *Fleet) AppPort() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.appPort
}

// PlayASG does what a real group does and moto does not: it replaces every
// InService member the group marks Unhealthy, by
// TerminateInstanceInAutoScalingGroup without decrementing the desired
// capacity, upon which moto launches a replacement (into the group's first
// subnet only — moto's choice). It then syncs the app servers when they
// were started. It returns the ids it replaced.
func (f *Fleet) PlayASG(ctx context.Context) (replaced []string, err error) {
	insts, err := f.Instances(ctx)
	if err != nil {
		return nil, err
	}
	for _, in := range insts {
		if in.Health != "Unhealthy" || in.Lifecycle != string(astypes.LifecycleStateInService) {
			continue
		}
		_, err := f.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
			InstanceId:                     aws.String(in.ID),
			ShouldDecrementDesiredCapacity: aws.Bool(false),
		})
		if err != nil {
			return replaced, fmt.Errorf("fleet %s: replace %s: %w", f.Spec.Group, in.ID, err)
		}
		replaced = append(replaced, in.ID)
	}
	if f.AppPort() != 0 {
		if _, _, err := f.SyncApps(ctx); err != nil {
			return replaced, err
		}
	}
	return replaced, nil
}

// Close stops every app server. The AWS resources stay (Moto.Reset or
// Moto.Stop removes them).
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, a := range f.apps {
		_ = a.Close()
		delete(f.apps, id)
	}
}
