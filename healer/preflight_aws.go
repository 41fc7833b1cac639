package healer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// PreflightEC2 is the part of the EC2 client PreflightReader uses, shaped
// like *ec2.Client.
type PreflightEC2 interface {
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

// PreflightASG is the part of the Auto Scaling client PreflightReader
// uses, shaped like *autoscaling.Client.
type PreflightASG interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeScalingActivities(ctx context.Context, in *autoscaling.DescribeScalingActivitiesInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeScalingActivitiesOutput, error)
}

// PreflightReader reads from AWS what Preflight needs for a group, all but
// the vCPU quota headroom (the limits snapshot has it: the caller fills
// PreflightInput.VCPU).
type PreflightReader struct {
	EC2 PreflightEC2
	ASG PreflightASG
	// ClassOf maps an instance type to its vCPU quota class
	// (limits.VCPUClass).
	ClassOf func(instanceType string) string
}

// launchActivityPrefix starts the Description of a launch scaling activity.
const launchActivityPrefix = "Launching a new EC2 instance"

// Read gathers one group's facts: its instance types (launch template and
// mixed-instances overrides) with their vCPUs, its purchase option, its
// subnets' free addresses, whether its launch template version and image
// exist, and its last page of launch activities. A part that cannot be read
// is left empty (Preflight lists it as unchecked) and its error joined into
// the error returned; the input is usable either way. Replacements and Now
// are left to the caller.
func (r PreflightReader) Read(ctx context.Context, group string) (PreflightInput, error) {
	in := PreflightInput{Group: group}
	out, err := r.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil {
		return in, fmt.Errorf("preflight: describe group %s: %w", group, err)
	}
	if len(out.AutoScalingGroups) == 0 {
		return in, fmt.Errorf("preflight: group %s not found", group)
	}
	g := out.AutoScalingGroups[0]
	lt, overrides := groupTemplate(g)
	in.Purchase = purchaseOf(g)
	var errs []error
	types := overrides
	if lt != nil {
		ltType, err := r.readTemplate(ctx, lt, &in.Template)
		if err != nil {
			errs = append(errs, err)
		}
		if len(types) == 0 && ltType != "" {
			types = []string{ltType}
		}
	}
	if in.Types, err = r.readTypes(ctx, types); err != nil {
		errs = append(errs, err)
	}
	if in.Subnets, err = r.readSubnets(ctx, g); err != nil {
		errs = append(errs, err)
	}
	if in.Activities, err = r.readLaunches(ctx, group); err != nil {
		errs = append(errs, err)
	}
	return in, errors.Join(errs...)
}

// groupTemplate returns the launch template the group launches from and the
// instance types its mixed-instances policy overrides it with.
func groupTemplate(g astypes.AutoScalingGroup) (*astypes.LaunchTemplateSpecification, []string) {
	if g.LaunchTemplate != nil {
		return g.LaunchTemplate, nil
	}
	mip := g.MixedInstancesPolicy
	if mip == nil || mip.LaunchTemplate == nil {
		return nil, nil
	}
	var types []string
	for _, o := range mip.LaunchTemplate.Overrides {
		if t := aws.ToString(o.InstanceType); t != "" && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return mip.LaunchTemplate.LaunchTemplateSpecification, types
}

// purchaseOf is Spot for a mixed-instances group that buys no On-Demand
// instance at all (base 0, 0% above base), else OnDemand: a replacement of a
// partly On-Demand group may well draw on the On-Demand quota.
func purchaseOf(g astypes.AutoScalingGroup) PurchaseOption {
	if mip := g.MixedInstancesPolicy; mip != nil && mip.InstancesDistribution != nil {
		d := mip.InstancesDistribution
		if aws.ToInt32(d.OnDemandBaseCapacity) == 0 && d.OnDemandPercentageAboveBaseCapacity != nil && *d.OnDemandPercentageAboveBaseCapacity == 0 {
			return Spot
		}
	}
	return OnDemand
}

// readTemplate fills tc for the template version and its image, and
// returns the version's instance type.
func (r PreflightReader) readTemplate(ctx context.Context, lt *astypes.LaunchTemplateSpecification, tc *TemplateCheck) (string, error) {
	name := aws.ToString(lt.LaunchTemplateName)
	if name == "" {
		name = aws.ToString(lt.LaunchTemplateId)
	}
	version := aws.ToString(lt.Version)
	if version == "" {
		version = "$Default"
	}
	out, err := r.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateId: lt.LaunchTemplateId, LaunchTemplateName: lt.LaunchTemplateName, Versions: []string{version}})
	*tc = TemplateCheck{Name: name, Version: version}
	switch {
	case isNotFound(err) || (err == nil && len(out.LaunchTemplateVersions) == 0):
		tc.Checked = true
		return "", nil
	case err != nil:
		return "", fmt.Errorf("preflight: describe launch template %s version %s: %w", name, version, err)
	}
	tc.Checked, tc.VersionExists = true, true
	data := out.LaunchTemplateVersions[0].LaunchTemplateData
	if data == nil {
		tc.ImageUnknownForLookup = true
		return "", nil
	}
	tc.ImageID = aws.ToString(data.ImageId)
	itype := string(data.InstanceType)
	if tc.ImageID == "" || strings.HasPrefix(tc.ImageID, "resolve:ssm:") {
		tc.ImageUnknownForLookup = true
		return itype, nil
	}
	imgs, err := r.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{tc.ImageID}})
	switch {
	case isNotFound(err):
	case err != nil:
		tc.ImageUnknownForLookup = true
		return itype, fmt.Errorf("preflight: describe image %s: %w", tc.ImageID, err)
	default:
		tc.ImageExists = len(imgs.Images) > 0
	}
	return itype, nil
}

func (r PreflightReader) readTypes(ctx context.Context, types []string) ([]LaunchType, error) {
	if len(types) == 0 {
		return nil, nil
	}
	ets := make([]ec2types.InstanceType, len(types))
	for i, t := range types {
		ets[i] = ec2types.InstanceType(t)
	}
	out, err := r.EC2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: ets})
	if err != nil {
		return nil, fmt.Errorf("preflight: describe instance types %v: %w", types, err)
	}
	vcpus := map[string]int{}
	for _, it := range out.InstanceTypes {
		if it.VCpuInfo != nil {
			vcpus[string(it.InstanceType)] = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
		}
	}
	res := make([]LaunchType, 0, len(types))
	for _, t := range types {
		lt := LaunchType{InstanceType: t, VCPUs: vcpus[t]}
		if r.ClassOf != nil {
			lt.QuotaClass = r.ClassOf(t)
		}
		res = append(res, lt)
	}
	return res, nil
}

func (r PreflightReader) readSubnets(ctx context.Context, g astypes.AutoScalingGroup) ([]SubnetSpace, error) {
	var ids []string
	for _, s := range strings.Split(aws.ToString(g.VPCZoneIdentifier), ",") {
		if s = strings.TrimSpace(s); s != "" {
			ids = append(ids, s)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := r.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: ids})
	if err != nil {
		return nil, fmt.Errorf("preflight: describe subnets %v: %w", ids, err)
	}
	res := make([]SubnetSpace, 0, len(out.Subnets))
	for _, s := range out.Subnets {
		res = append(res, SubnetSpace{ID: aws.ToString(s.SubnetId), AZ: aws.ToString(s.AvailabilityZone), Free: int(aws.ToInt32(s.AvailableIpAddressCount))})
	}
	return res, nil
}

// readLaunches reads the newest page (100) of the group's activities and
// keeps the launches.
func (r PreflightReader) readLaunches(ctx context.Context, group string) ([]LaunchActivity, error) {
	out, err := r.ASG.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{
		AutoScalingGroupName: aws.String(group), MaxRecords: aws.Int32(100)})
	if err != nil {
		return nil, fmt.Errorf("preflight: describe scaling activities of %s: %w", group, err)
	}
	var res []LaunchActivity
	for _, a := range out.Activities {
		if !strings.HasPrefix(aws.ToString(a.Description), launchActivityPrefix) {
			continue
		}
		msg := aws.ToString(a.StatusMessage)
		if msg == "" && a.StatusCode == astypes.ScalingActivityStatusCodeFailed {
			msg = aws.ToString(a.Cause)
		}
		res = append(res, LaunchActivity{Start: aws.ToTime(a.StartTime), Status: string(a.StatusCode), Message: msg})
	}
	return res, nil
}

// isNotFound: EC2 says the launch template (version) or image does not
// exist.
func isNotFound(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidLaunchTemplateId.VersionNotFound", "InvalidLaunchTemplateId.NotFound",
		"InvalidLaunchTemplateName.NotFoundException", "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable":
		return true
	}
	return false
}
