package limits

import "github.com/medic-sre/medic/config"

// QuotaDef is one watched quota: where its limit and its usage come from.
type QuotaDef struct {
	ServiceCode string // Service Quotas service code: ec2, vpc, elasticloadbalancing, autoscaling
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
// (docs/limits.md lists them with the same fields).
var Catalogue = []QuotaDef{
	{ServiceCode: "ec2", Code: "L-1216C47A", Name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances (vCPUs)",
		Describe: "ec2_vcpus_standard", Metric: usage("EC2", "vCPU", "Standard/OnDemand")},
	{ServiceCode: "ec2", Code: "L-DB2E81BA", Name: "Running On-Demand G and VT instances (vCPUs)",
		Describe: "ec2_vcpus_g", Metric: usage("EC2", "vCPU", "G/OnDemand")},
	{ServiceCode: "ec2", Code: "L-417A185B", Name: "Running On-Demand P instances (vCPUs)",
		Describe: "ec2_vcpus_p", Metric: usage("EC2", "vCPU", "P/OnDemand")},
	{ServiceCode: "ec2", Code: "L-7295265B", Name: "Running On-Demand X instances (vCPUs)",
		Describe: "ec2_vcpus_x", Metric: usage("EC2", "vCPU", "X/OnDemand")},
	{ServiceCode: "ec2", Code: "L-74FC7D96", Name: "Running On-Demand F instances (vCPUs)",
		Describe: "ec2_vcpus_f", Metric: usage("EC2", "vCPU", "F/OnDemand")},
	{ServiceCode: "ec2", Code: "L-0263D0A3", Name: "EC2-VPC Elastic IPs",
		APILimit: "ec2:vpc-max-elastic-ips", Describe: "ec2_elastic_ips"},
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
	{ServiceCode: "elasticloadbalancing", Code: "L-B6DF7632", Name: "Listeners per Application Load Balancer",
		APILimit: "elbv2:listeners-per-application-load-balancer", Describe: "elbv2_listeners_per_alb", PerResource: true},
	{ServiceCode: "elasticloadbalancing", Code: "L-E9E9831D", Name: "Classic Load Balancers per Region",
		APILimit: "elb:classic-load-balancers", Describe: "elb_classic"},
	{ServiceCode: "elasticloadbalancing", Code: "L-1D2FDFD4", Name: "Registered instances per Classic Load Balancer",
		APILimit: "elb:classic-registered-instances", Describe: "elb_instances_per_classic", PerResource: true},
	{ServiceCode: "vpc", Code: "L-F678F1CE", Name: "VPCs per Region", Describe: "vpc_vpcs"},
	{ServiceCode: "vpc", Code: "L-407747CB", Name: "Subnets per VPC", Describe: "vpc_subnets_per_vpc", PerResource: true},
	{ServiceCode: "vpc", Code: "L-E79EC296", Name: "VPC security groups per Region", Describe: "vpc_security_groups"},
	{ServiceCode: "vpc", Code: "L-DF5E4CA3", Name: "Network interfaces per Region", Describe: "vpc_network_interfaces"},
	{ServiceCode: "vpc", Code: "L-A4707A72", Name: "Internet gateways per Region", Describe: "vpc_internet_gateways"},
}

// quotaKeyForClass is the vCPU quota a class (VCPUClass) draws on.
var quotaKeyForClass = map[string]string{
	"standard": "ec2/L-1216C47A", "g": "ec2/L-DB2E81BA", "p": "ec2/L-417A185B",
	"x": "ec2/L-7295265B", "f": "ec2/L-74FC7D96",
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

var perResourceSource = map[string]bool{
	"elbv2_targets_per_alb": true, "elbv2_targets_per_nlb": true, "elbv2_listeners_per_alb": true,
	"elb_instances_per_classic": true, "vpc_subnets_per_vpc": true,
}
