package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// API limits that shape the batches of one refresh.
const (
	// MaxGroupNamesPerCall: DescribeAutoScalingGroups takes up to 100 names
	// when MaxRecords is 100 (50 by default).
	MaxGroupNamesPerCall = 100
	// MaxInstanceIDsPerCall bounds the InstanceIds of one DescribeInstances.
	MaxInstanceIDsPerCall = 1000
	// MaxFilterValues: EC2 refuses more than 200 filter values per call
	// (FilterLimitExceeded).
	MaxFilterValues = 200
)

// AutoScalingAPI is the Auto Scaling calls discovery makes: the groups at
// every refresh, their scaling activities once per service at start.
// *autoscaling.Client is one.
type AutoScalingAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, params *autoscaling.DescribeAutoScalingGroupsInput,
		optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeScalingActivities(ctx context.Context, params *autoscaling.DescribeScalingActivitiesInput,
		optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeScalingActivitiesOutput, error)
}

// DescribeInstancesAPI is the one EC2 call discovery makes.
type DescribeInstancesAPI interface {
	DescribeInstances(ctx context.Context, params *ec2.DescribeInstancesInput,
		optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// DescribeTargetHealthAPI is the one Elastic Load Balancing (v2) call
// discovery makes: each target group's view of its targets.
// *elasticloadbalancingv2.Client is one.
type DescribeTargetHealthAPI interface {
	DescribeTargetHealth(ctx context.Context, params *elbv2.DescribeTargetHealthInput,
		optFns ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error)
}

// ErrGroupNotFound: a service names an Auto Scaling group that AWS does not
// report (deleted, misspelt, or in another region or account).
var ErrGroupNotFound = errors.New("auto scaling group not found")

// ServiceError is why one service got no snapshot in a refresh.
type ServiceError struct {
	Service string
	Group   string
	Err     error
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("service %s: group %s: %v", e.Service, e.Group, e.Err)
}

func (e *ServiceError) Unwrap() error { return e.Err }

// Options configure a Discoverer.
type Options struct {
	ASG AutoScalingAPI
	EC2 DescribeInstancesAPI
	// ELB reads the target groups' view of the instances (Instance.LBHealth);
	// nil: not read, LBHealth stays empty.
	ELB DescribeTargetHealthAPI
	// Logger: nil means no logging.
	Logger log.Logger
	// Registerer receives the discovery metrics; nil: unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// InstanceRefreshEvery is how often, at most, a group with no
	// instance refresh in progress is asked for one (one
	// DescribeInstanceRefreshes per group); a group with one in progress is
	// asked at every refresh. 0 means DefaultInstanceRefreshEvery.
	InstanceRefreshEvery time.Duration
	// AllowedNetworks, when not empty, bound the private IPs discovery
	// hands on: an instance whose IP is outside all of them is reported
	// with no IP (so it is never probed) and logged.
	AllowedNetworks []netip.Prefix
}

// Discoverer reads the fleets of services from AWS. Refresh may be called
// from one goroutine at a time; LastSuccess from any.
type Discoverer struct {
	asg     AutoScalingAPI
	ec2     DescribeInstancesAPI
	elb     DescribeTargetHealthAPI
	logger  log.Logger
	now     func() time.Time
	allowed []netip.Prefix
	created time.Time

	mu             sync.Mutex
	lastSuccess    time.Time
	lastSuccessFor map[string]time.Time // by service

	// Remembered between refreshes (Refresh runs one at a time): each
	// instance's last lifecycle state, the groups seen, and each group's
	// instance refresh.
	lifecycle          map[string]seen
	groupsSeen         map[string]bool
	instRefresh        map[string]refreshState
	instRefreshEvery   time.Duration
	refreshUnsupported bool // the endpoint said it lacks DescribeInstanceRefreshes
	refreshFailing     bool // DescribeInstanceRefreshes failed last (logged once)

	refreshes     *prometheus.CounterVec
	lastSuccessTS prometheus.Gauge
	duration      prometheus.Gauge
}

// New returns a Discoverer. Its metrics are registered with o.Registerer.
func New(o Options) *Discoverer {
	d := &Discoverer{
		asg:     o.ASG,
		ec2:     o.EC2,
		elb:     o.ELB,
		logger:  o.Logger,
		now:     o.Now,
		allowed: o.AllowedNetworks,

		lastSuccessFor:   map[string]time.Time{},
		lifecycle:        map[string]seen{},
		groupsSeen:       map[string]bool{},
		instRefresh:      map[string]refreshState{},
		instRefreshEvery: o.InstanceRefreshEvery,
	}
	if d.instRefreshEvery <= 0 {
		d.instRefreshEvery = DefaultInstanceRefreshEvery
	}
	if d.logger == nil {
		d.logger = log.NewNopLogger()
	}
	d.logger = log.With(d.logger, logkeys.Component, "discovery")
	if d.now == nil {
		d.now = time.Now
	}
	d.created = d.now()

	d.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "medic_discovery_refreshes_total",
		Help: "Fleet refreshes by result: success when every service's fleet was read whole, failure otherwise.",
	}, []string{"result"})
	d.refreshes.WithLabelValues("success")
	d.refreshes.WithLabelValues("failure")
	d.lastSuccessTS = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "medic_discovery_last_success_timestamp_seconds",
		Help: "When the fleet was last read whole (Unix seconds; 0 if never).",
	})
	d.duration = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "medic_discovery_duration_seconds",
		Help: "How long the last fleet refresh took.",
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "medic_discovery_age_seconds",
		Help: "DEPRECATED, removed in the next release: use time() - medic_discovery_last_success_timestamp_seconds. Seconds since the fleet was last read whole (since start if never).",
	}, func() float64 {
		since := d.LastSuccess()
		if since.IsZero() {
			since = d.created
		}
		return d.now().Sub(since).Seconds()
	})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{d.refreshes, d.lastSuccessTS, d.duration, age} {
			if err := o.Registerer.Register(c); err != nil {
				level.Error(d.logger).Log(logkeys.Msg, "cannot register discovery metric", logkeys.Err, err)
			}
		}
	}
	return d
}

// LastSuccess is when the last refresh that read every service's fleet
// whole completed; zero if none has.
func (d *Discoverer) LastSuccess() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastSuccess
}

// LastSuccessFor is when a refresh last returned service's snapshot; zero
// if none has. A refresh that fails for another service only (a missing
// group) still counts for this one.
func (d *Discoverer) LastSuccessFor(service string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastSuccessFor[service]
}

// Refresh reads the fleets of services: every group they name in one
// paginated DescribeAutoScalingGroups (batches of 100 names) — which also
// brings each group's own state: suspended processes, tags, launch template,
// warm pool size — then every member's private IP, launch time, instance
// type and image in one DescribeInstances (batches of 1000 ids), then, with
// an ELB client, one DescribeTargetHealth per distinct target group of
// those groups, and one DescribeInstanceRefreshes per group at most every
// InstanceRefreshEvery (every refresh while one is in progress). Below
// those sizes a refresh makes two AWS calls plus one per target group, plus
// on average groups × interval / InstanceRefreshEvery, however large the
// fleet.
//
// Each instance's InServiceSince comes from the lifecycle states the
// refreshes before saw (see trackLifecycle).
//
// Results:
//   - All read: a snapshot for every service, nil error.
//   - Some service names a group AWS does not report: that service gets no
//     snapshot (a fleet with a group missing would mislead every count the
//     healer makes), the others do, and the error joins one *ServiceError
//     (wrapping ErrGroupNotFound) per missing group; FailedServices lists
//     them. The refresh counts as a failure and LastSuccess does not move,
//     but LastSuccessFor does for each service that got its snapshot.
//   - An AWS call fails (after the SDK's retries): nil map and the error;
//     the caller keeps its previous snapshots.
//
// Instances come and go at any time and are never an error: a member EC2
// does not report (yet, or any more) has no IP and no launch time.
//
// The load balancers' view is evidence, not part of the fleet: a
// DescribeTargetHealth that fails is logged and leaves LBHealth without
// that target group, and the refresh goes on (and may still succeed).
func (d *Discoverer) Refresh(ctx context.Context, services []config.Service) (map[string]Snapshot, error) {
	start := d.now()
	snaps, err := d.refresh(ctx, services)
	end := d.now()
	d.duration.Set(end.Sub(start).Seconds())
	if err != nil {
		d.refreshes.WithLabelValues("failure").Inc()
		level.Warn(d.logger).Log(logkeys.Msg, "fleet refresh failed", logkeys.Err, err,
			logkeys.Count, len(snaps), logkeys.Duration, end.Sub(start))
	} else {
		d.refreshes.WithLabelValues("success").Inc()
		d.lastSuccessTS.Set(float64(end.UnixNano()) / 1e9)
		d.mu.Lock()
		d.lastSuccess = end
		d.mu.Unlock()
		level.Debug(d.logger).Log(logkeys.Msg, "fleet refreshed",
			logkeys.Count, len(snaps), logkeys.Duration, end.Sub(start))
	}
	d.mu.Lock()
	for name := range snaps {
		s := snaps[name]
		s.At = end
		snaps[name] = s
		d.lastSuccessFor[name] = end
	}
	d.mu.Unlock()
	return snaps, err
}

func (d *Discoverer) refresh(ctx context.Context, services []config.Service) (map[string]Snapshot, error) {
	var names []string
	seen := map[string]bool{}
	for _, s := range services {
		for _, g := range s.AutoScalingGroups {
			if !seen[g] {
				seen[g] = true
				names = append(names, g)
			}
		}
	}

	groups, err := d.describeGroups(ctx, names)
	if err != nil {
		return nil, err
	}
	readAt := d.now()

	var ids []string
	for _, name := range names {
		if g, ok := groups[name]; ok {
			for _, in := range g.Instances {
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
	}
	details, err := d.describeInstances(ctx, ids)
	if err != nil {
		return nil, err
	}
	lbHealth := d.describeTargetHealth(ctx, names, groups)
	var found []string
	for _, name := range names {
		if _, ok := groups[name]; ok {
			found = append(found, name)
		}
	}
	instRefresh := d.instanceRefreshes(ctx, found, readAt)
	states := d.trackGroups(groups, details, readAt)

	snaps := make(map[string]Snapshot, len(services))
	var errs []error
	refused := 0
	for _, s := range services {
		snap := Snapshot{Service: s.Name, Groups: []Group{}, Instances: []Instance{}}
		complete := true
		for _, name := range s.AutoScalingGroups {
			g, ok := groups[name]
			if !ok {
				complete = false
				errs = append(errs, &ServiceError{Service: s.Name, Group: name, Err: ErrGroupNotFound})
				level.Warn(d.logger).Log(logkeys.Msg, "auto scaling group not found",
					logkeys.Service, s.Name, logkeys.Group, name)
				continue
			}
			grp := Group{
				Name:            name,
				GracePeriod:     time.Duration(aws.ToInt32(g.HealthCheckGracePeriod)) * time.Second,
				Min:             int(aws.ToInt32(g.MinSize)),
				Max:             int(aws.ToInt32(g.MaxSize)),
				Desired:         int(aws.ToInt32(g.DesiredCapacity)),
				InstanceRefresh: instRefresh[name],
			}
			groupState(g, &grp)
			snap.Groups = append(snap.Groups, grp)
			for _, in := range g.Instances {
				inst := states[aws.ToString(in.InstanceId)]
				for _, arn := range g.TargetGroupARNs {
					inst.LBHealth = append(inst.LBHealth, lbHealth[arn][inst.ID]...)
				}
				if det, ok := details[inst.ID]; ok {
					if d.allowedIP(det.ip) {
						inst.PrivateIP = det.ip
					} else {
						refused++
						level.Warn(d.logger).Log(logkeys.Msg, "instance IP outside allowed_networks, not probed",
							logkeys.Service, s.Name, logkeys.Group, name, logkeys.InstanceID, inst.ID,
							logkeys.Target, det.ip)
					}
				}
				snap.Instances = append(snap.Instances, inst)
			}
		}
		if !complete {
			continue
		}
		slices.SortFunc(snap.Instances, func(a, b Instance) int {
			return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.AZ, b.AZ), cmp.Compare(a.ID, b.ID))
		})
		snaps[s.Name] = snap
	}
	return snaps, errors.Join(errs...)
}

func (d *Discoverer) allowedIP(ip netip.Addr) bool {
	if len(d.allowed) == 0 || !ip.IsValid() {
		return true
	}
	for _, p := range d.allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// describeGroups returns the groups AWS reports among names, by name.
func (d *Discoverer) describeGroups(ctx context.Context, names []string) (map[string]astypes.AutoScalingGroup, error) {
	groups := make(map[string]astypes.AutoScalingGroup, len(names))
	for batch := range slices.Chunk(names, MaxGroupNamesPerCall) {
		p := autoscaling.NewDescribeAutoScalingGroupsPaginator(d.asg, &autoscaling.DescribeAutoScalingGroupsInput{
			AutoScalingGroupNames: batch,
			MaxRecords:            aws.Int32(MaxGroupNamesPerCall),
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe auto scaling groups: %w", err)
			}
			for _, g := range out.AutoScalingGroups {
				groups[aws.ToString(g.AutoScalingGroupName)] = g
			}
		}
	}
	return groups, nil
}

// describeTargetHealth reads, in one DescribeTargetHealth each, the
// registered targets of every distinct target group of the groups among
// names that AWS reported, and returns their views by target group ARN,
// then by target id. A target group whose call fails is logged and left
// out: its instances show no view of it. Nil without an ELB client.
func (d *Discoverer) describeTargetHealth(ctx context.Context, names []string,
	groups map[string]astypes.AutoScalingGroup) map[string]map[string][]TargetHealth {
	if d.elb == nil {
		return nil
	}
	var arns []string
	seen := map[string]bool{}
	for _, name := range names {
		for _, arn := range groups[name].TargetGroupARNs {
			if !seen[arn] {
				seen[arn] = true
				arns = append(arns, arn)
			}
		}
	}
	out := make(map[string]map[string][]TargetHealth, len(arns))
	for i, arn := range arns {
		if err := ctx.Err(); err != nil {
			level.Warn(d.logger).Log(logkeys.Msg, "target health not read: refresh cancelled",
				logkeys.Count, len(arns)-i, logkeys.Err, err)
			break
		}
		tg := TargetGroupName(arn)
		res, err := d.elb.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn)})
		if err != nil {
			level.Warn(d.logger).Log(logkeys.Msg, "cannot read target health; its instances show no load balancer view",
				logkeys.TargetGroup, tg, logkeys.Err, err)
			continue
		}
		byID := make(map[string][]TargetHealth, len(res.TargetHealthDescriptions))
		for _, desc := range res.TargetHealthDescriptions {
			if desc.Target == nil || desc.TargetHealth == nil {
				continue
			}
			id := aws.ToString(desc.Target.Id)
			byID[id] = append(byID[id], TargetHealth{
				TargetGroup: tg,
				State:       string(desc.TargetHealth.State),
				Reason:      string(desc.TargetHealth.Reason),
			})
		}
		out[arn] = byID
	}
	return out
}

// TargetGroupName is the name in a target group's ARN
// (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID); the
// ARN itself when it has no such part.
func TargetGroupName(arn string) string {
	_, rest, ok := strings.Cut(arn, ":targetgroup/")
	if !ok {
		return arn
	}
	name, _, _ := strings.Cut(rest, "/")
	if name == "" {
		return arn
	}
	return name
}

type instanceDetail struct {
	ip           netip.Addr
	launch       time.Time
	instanceType string
	imageID      string
}

// trackGroups builds every member of groups from the group's record and
// EC2's details, with InServiceSince from the states remembered (see
// trackLifecycle), and replaces that memory with what this refresh saw:
// instances and groups no longer reported are forgotten. readAt is when
// the groups were read. By instance id.
func (d *Discoverer) trackGroups(groups map[string]astypes.AutoScalingGroup, details map[string]instanceDetail,
	readAt time.Time) map[string]Instance {
	out := map[string]Instance{}
	lifecycle := make(map[string]seen, len(d.lifecycle))
	for name, g := range groups {
		for _, in := range g.Instances {
			inst := Instance{
				ID:             aws.ToString(in.InstanceId),
				Group:          name,
				AZ:             aws.ToString(in.AvailabilityZone),
				LifecycleState: string(in.LifecycleState),
				HealthStatus:   aws.ToString(in.HealthStatus),
				InstanceType:   aws.ToString(in.InstanceType),
			}
			inst.LaunchTemplate, inst.LaunchTemplateVersion = templateOf(in.LaunchTemplate)
			if det, ok := details[inst.ID]; ok {
				inst.LaunchTime, inst.ImageID = det.launch, det.imageID
				if det.instanceType != "" {
					inst.InstanceType = det.instanceType
				}
			}
			lifecycle[inst.ID] = trackLifecycle(d.lifecycle, &inst, d.groupsSeen[name], readAt)
			out[inst.ID] = inst
		}
	}
	d.lifecycle = lifecycle
	d.groupsSeen = make(map[string]bool, len(groups))
	for name := range groups {
		d.groupsSeen[name] = true
	}
	return out
}

// describeInstances returns what EC2 reports of ids. By InstanceIds, in
// batches of 1000; EC2 refuses a whole batch when one id is unknown to it
// (InvalidInstanceID.NotFound: an instance just launched, not yet
// consistent, or long gone), and then that batch is asked again with the
// instance-id filter, which skips unknown ids (200 values per call).
func (d *Discoverer) describeInstances(ctx context.Context, ids []string) (map[string]instanceDetail, error) {
	details := make(map[string]instanceDetail, len(ids))
	for batch := range slices.Chunk(ids, MaxInstanceIDsPerCall) {
		err := d.describeInstancePages(ctx, &ec2.DescribeInstancesInput{InstanceIds: batch}, details)
		if err == nil {
			continue
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidInstanceID.NotFound" {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		level.Debug(d.logger).Log(logkeys.Msg, "some instances unknown to EC2, asking by filter",
			logkeys.Count, len(batch), logkeys.Err, err)
		for sub := range slices.Chunk(batch, MaxFilterValues) {
			in := &ec2.DescribeInstancesInput{
				Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: sub}},
			}
			if err := d.describeInstancePages(ctx, in, details); err != nil {
				return nil, fmt.Errorf("describe instances: %w", err)
			}
		}
	}
	return details, nil
}

func (d *Discoverer) describeInstancePages(ctx context.Context, in *ec2.DescribeInstancesInput, into map[string]instanceDetail) error {
	p := ec2.NewDescribeInstancesPaginator(d.ec2, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, r := range out.Reservations {
			for _, inst := range r.Instances {
				det := instanceDetail{launch: aws.ToTime(inst.LaunchTime),
					instanceType: string(inst.InstanceType), imageID: aws.ToString(inst.ImageId)}
				if ip, err := netip.ParseAddr(aws.ToString(inst.PrivateIpAddress)); err == nil {
					det.ip = ip
				}
				into[aws.ToString(inst.InstanceId)] = det
			}
		}
	}
	return nil
}
