package limits

import "github.com/medic-sre/medic/config"

// QuotaDef is one watched quota: where its limit and its usage come from.
type QuotaDef struct {
	ServiceCode string // Service Quotas service code: ec2, ebs, vpc, elasticloadbalancing, autoscaling
	Code        string // Service Quotas quota code
	Name        string
	// APILimit names the limit in the service's own API:
	// "autoscaling:<field>", "elbv2:<name>", "elb:<name>", "ec2:<attribute>";
	// "" when the service has no such API for it.
	APILimit string
	// Describe names the describe-call usage source ("" for none).
	Describe string
	// Metric is the AWS/Usage metric, when AWS publishes one.
	Metric *config.UsageMetric
	// PerResource is true for per-VPC / per-load-balancer quotas: usage is
	// the largest over the resources.
	PerResource bool
	// Added is true for quotas from config rather than the catalogue.
	Added bool
}

// Key identifies a quota: service_code/code.
func (q QuotaDef) Key() string { return q.ServiceCode + "/" + q.Code }

func usage(service, resource, class string) *config.UsageMetric {
	return &config.UsageMetric{Service: service, Type: "Resource", Resource: resource, Class: class}
}

// Catalogue is the built-in list of quotas that break scaling and deploys
// (docs/limits.md lists them with the same fields and their sources).
var Catalogue = append(vcpuQuotas(), []QuotaDef{
	{ServiceCode: "ec2", Code: "L-0263D0A3", Name: "EC2-VPC Elastic IPs",
		APILimit: "ec2:vpc-max-elastic-ips", Describe: "ec2_elastic_ips"},
	{ServiceCode: "ebs", Code: "L-D18FCD1D", Name: "Storage for General Purpose SSD (gp2) volumes, in TiB", Describe: "ebs_storage_gp2"},
	{ServiceCode: "ebs", Code: "L-7A658B76", Name: "Storage for General Purpose SSD (gp3) volumes, in TiB", Describe: "ebs_storage_gp3"},
	{ServiceCode: "ebs", Code: "L-FD252861", Name: "Storage for Provisioned IOPS SSD (io1) volumes, in TiB", Describe: "ebs_storage_io1"},
	{ServiceCode: "ebs", Code: "L-09BD8365", Name: "Storage for Provisioned IOPS SSD (io2) volumes, in TiB", Describe: "ebs_storage_io2"},
	{ServiceCode: "ebs", Code: "L-82ACEF56", Name: "Storage for Throughput Optimized HDD (st1) volumes, in TiB", Describe: "ebs_storage_st1"},
	{ServiceCode: "ebs", Code: "L-17AF77E8", Name: "Storage for Cold HDD (sc1) volumes, in TiB", Describe: "ebs_storage_sc1"},
	{ServiceCode: "ebs", Code: "L-9CF3C2EB", Name: "Storage for Magnetic (standard) volumes, in TiB", Describe: "ebs_storage_standard"},
	{ServiceCode: "ebs", Code: "L-309BACF6", Name: "Snapshots per Region", Describe: "ebs_snapshots"},
	{ServiceCode: "autoscaling", Code: "L-CDE20ADC", Name: "Auto Scaling groups per region",
		APILimit: "autoscaling:MaxNumberOfAutoScalingGroups", Describe: "asg_groups"},
	{ServiceCode: "autoscaling", Code: "L-6B80B8FA", Name: "Launch configurations per region",
		APILimit: "autoscaling:MaxNumberOfLaunchConfigurations", Describe: "asg_launch_configurations"},
	{ServiceCode: "elasticloadbalancing", Code: "L-53DA6B97", Name: "Application Load Balancers per Region",
		APILimit: "elbv2:application-load-balancers", Describe: "elbv2_albs"},
	{ServiceCode: "elasticloadbalancing", Code: "L-69A177A2", Name: "Network Load Balancers per Region",
		APILimit: "elbv2:network-load-balancers", Describe: "elbv2_nlbs"},
	{ServiceCode: "elasticloadbalancing", Code: "L-B22855CB", Name: "Target Groups per Region",
		APILimit: "elbv2:target-groups", Describe: "elbv2_target_groups"},
	{ServiceCode: "elasticloadbalancing", Code: "L-7E6692B2", Name: "Targets per Application Load Balancer",
		APILimit: "elbv2:targets-per-application-load-balancer", Describe: "elbv2_targets_per_alb", PerResource: true},
	{ServiceCode: "elasticloadbalancing", Code: "L-EEF1AD04", Name: "Targets per Network Load Balancer",
		APILimit: "elbv2:targets-per-network-load-balancer", Describe: "elbv2_targets_per_nlb", PerResource: true},
	{ServiceCode: "elasticloadbalancing", Code: "L-B211E961", Name: "Targets per Availability Zone per Network Load Balancer",
		APILimit: "elbv2:targets-per-availability-zone-per-network-load-balancer", Describe: "elbv2_targets_per_az_per_nlb", PerResource: true},
	{ServiceCode: "elasticloadbalancing", Code: "L-A0D0B863", Name: "Targets per Target Group per Region",
		APILimit: "elbv2:targets-per-target-group", Describe: "elbv2_targets_per_target_group", PerResource: true},
	{ServiceCode: "elasticloadbalancing", Code: "L-B6DF7632", Name: "Listeners per Application Load Balancer",
		APILimit: "elbv2:listeners-per-application-load-balancer", Describe: "elbv2_listeners_per_alb", PerResource: true},
	{ServiceCode: "elasticloadbalancing", Code: "L-7EED9B64", Name: "Rules per Application Load Balancer",
		APILimit: "elbv2:rules-per-application-load-balancer", Describe: "elbv2_rules_per_alb", PerResource: true},
	{ServiceCode: "elasticloadbalancing", Code: "L-E9E9831D", Name: "Classic Load Balancers per Region",
		APILimit: "elb:classic-load-balancers", Describe: "elb_classic"},
	{ServiceCode: "elasticloadbalancing", Code: "L-CE3125E5", Name: "Registered instances per Classic Load Balancer",
		APILimit: "elb:classic-registered-instances", Describe: "elb_instances_per_classic", PerResource: true},
	{ServiceCode: "vpc", Code: "L-F678F1CE", Name: "VPCs per Region", Describe: "vpc_vpcs"},
	{ServiceCode: "vpc", Code: "L-407747CB", Name: "Subnets per VPC", Describe: "vpc_subnets_per_vpc", PerResource: true},
	{ServiceCode: "vpc", Code: "L-E79EC296", Name: "VPC security groups per Region", Describe: "vpc_security_groups"},
	{ServiceCode: "vpc", Code: "L-2AFB9258", Name: "Security groups per network interface", Describe: "vpc_security_groups_per_eni", PerResource: true},
	{ServiceCode: "vpc", Code: "L-0EA8095F", Name: "Inbound or outbound rules per security group", Describe: "vpc_rules_per_security_group", PerResource: true},
	{ServiceCode: "vpc", Code: "L-DF5E4CA3", Name: "Network interfaces per Region", Describe: "vpc_network_interfaces"},
	{ServiceCode: "vpc", Code: "L-A4707A72", Name: "Internet gateways per Region", Describe: "vpc_internet_gateways"},
	{ServiceCode: "vpc", Code: "L-FE5A380F", Name: "NAT gateways per Availability Zone", Describe: "vpc_nat_gateways_per_az", PerResource: true},
}...)

// vcpuQuotas is one On-Demand and one Spot quota per vCPU family (P and
// P5 share the On-Demand one).
func vcpuQuotas() []QuotaDef {
	var out []QuotaDef
	seen := map[string]bool{}
	for _, f := range VCPUFamilies {
		if !seen[f.OnDemand] {
			seen[f.OnDemand] = true
			d := QuotaDef{ServiceCode: "ec2", Code: f.OnDemand, Name: f.OnDemandName + " (vCPUs)", Describe: vcpuSource(f, OnDemand)}
			if f.OnDemandClass != "" {
				d.Metric = usage("EC2", "vCPU", f.OnDemandClass)
			}
			out = append(out, d)
		}
		if f.Spot != "" && !seen[f.Spot] {
			seen[f.Spot] = true
			out = append(out, QuotaDef{ServiceCode: "ec2", Code: f.Spot, Name: f.SpotName + " (vCPUs)", Describe: vcpuSource(f, Spot)})
		}
	}
	return out
}

// vcpuSource names the describe source of a family's vCPUs in a market:
// ec2_vcpus_<family> On-Demand (P5 counted with P), ec2_spot_vcpus_<family>.
func vcpuSource(f VCPUFamily, m Market) string {
	if m == Spot {
		return "ec2_spot_vcpus_" + f.Name
	}
	if f.Name == "p5" {
		return "ec2_vcpus_p"
	}
	return "ec2_vcpus_" + f.Name
}

// watched merges the catalogue with the config's quotas: an entry with a
// catalogue key overrides fields; any other is added.
func watched(cfg config.Limits) ([]QuotaDef, map[string]config.Quota) {
	over := map[string]config.Quota{}
	out := append([]QuotaDef(nil), Catalogue...)
	idx := map[string]int{}
	for i, q := range out {
		idx[q.Key()] = i
	}
	for _, q := range cfg.Quotas {
		key := q.ServiceCode + "/" + q.Code
		over[key] = q
		i, ok := idx[key]
		if !ok {
			d := QuotaDef{ServiceCode: q.ServiceCode, Code: q.Code, Name: q.Name, Added: true}
			if d.Name == "" {
				d.Name = key
			}
			out = append(out, d)
			i = len(out) - 1
			idx[key] = i
		}
		if q.Name != "" {
			out[i].Name = q.Name
		}
		if q.Usage.Describe != "" {
			out[i].Describe = q.Usage.Describe
			out[i].PerResource = perResourceSource[q.Usage.Describe]
		}
		if q.Usage.CloudWatch != nil {
			m := *q.Usage.CloudWatch
			out[i].Metric = &m
			if out[i].Added {
				out[i].Describe = ""
			}
		}
	}
	return out, over
}

var perResourceSource = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range Catalogue {
		if d.PerResource {
			m[d.Describe] = true
		}
	}
	return m
}()
