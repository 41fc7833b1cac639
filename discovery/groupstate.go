package discovery

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/awsapi"
	"github.com/medic-sre/medic/internal/logkeys"
)

// InstanceRefreshesAPI is the optional Auto Scaling call that reads a
// group's instance refreshes. When Options.ASG also has it (as
// *autoscaling.Client does), discovery reads Group.InstanceRefresh.
type InstanceRefreshesAPI interface {
	DescribeInstanceRefreshes(ctx context.Context, params *autoscaling.DescribeInstanceRefreshesInput,
		optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeInstanceRefreshesOutput, error)
}

// DefaultInstanceRefreshEvery is how often, at most, discovery asks a group
// with no instance refresh in progress whether one started
// (Options.InstanceRefreshEvery).
const DefaultInstanceRefreshEvery = time.Minute

// inProgressRefresh is the set of instance refresh statuses during which
// the group is replacing instances on its own.
var inProgressRefresh = map[astypes.InstanceRefreshStatus]bool{
	astypes.InstanceRefreshStatusPending:            true,
	astypes.InstanceRefreshStatusInProgress:         true,
	astypes.InstanceRefreshStatusCancelling:         true,
	astypes.InstanceRefreshStatusRollbackInProgress: true,
	astypes.InstanceRefreshStatusBaking:             true,
}

// refreshState is what discovery remembers of one group's instance
// refresh between fleet refreshes.
type refreshState struct {
	status string    // in-progress status, "" for none
	asked  time.Time // when last read successfully
}

// instanceRefreshes returns the in-progress instance refresh status of each
// group in names ("" for none), making at most one DescribeInstanceRefreshes
// per group, and only for a group last asked more than InstanceRefreshEvery
// ago or whose last answer showed one in progress (so its end is seen at
// the next fleet refresh). Between reads the last answer stands.
//
// The call is evidence the guard honours, never a reason for the refresh to
// fail. A failed call keeps the last answer ("" if none: unknown is taken
// as none), is not retried before InstanceRefreshEvery, and is logged once
// until a call succeeds again. The emulator (moto 5) does not implement the
// call and answers HTTP 500 with an HTML page: that is this case. An
// endpoint that says outright it does not implement it (awsapi.
// IsUnsupported) is not asked again.
func (d *Discoverer) instanceRefreshes(ctx context.Context, names []string, now time.Time) map[string]string {
	out := make(map[string]string, len(names))
	api, ok := d.asg.(InstanceRefreshesAPI)
	for _, name := range names {
		st := d.instRefresh[name]
		out[name] = st.status
		if !ok || d.refreshUnsupported || ctx.Err() != nil {
			continue
		}
		if st.status == "" && !st.asked.IsZero() && now.Sub(st.asked) < d.instRefreshEvery {
			continue
		}
		res, err := api.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{
			AutoScalingGroupName: aws.String(name), MaxRecords: aws.Int32(5),
		})
		if err != nil {
			d.instRefresh[name] = refreshState{status: st.status, asked: now}
			d.refreshUnsupported = awsapi.IsUnsupported(err)
			if !d.refreshFailing {
				d.refreshFailing = true
				level.Warn(d.logger).Log(logkeys.Msg, "cannot read instance refreshes: taken as none until a read succeeds (logged once)",
					logkeys.Group, name, logkeys.Err, err)
			}
			continue
		}
		if d.refreshFailing {
			d.refreshFailing = false
			level.Info(d.logger).Log(logkeys.Msg, "instance refreshes read again", logkeys.Group, name)
		}
		st = refreshState{asked: now}
		// Newest first; at most one is in progress at a time.
		for _, r := range res.InstanceRefreshes {
			if inProgressRefresh[r.Status] {
				st.status = string(r.Status)
				break
			}
		}
		d.instRefresh[name] = st
		out[name] = st.status
	}
	return out
}

// groupState fills the group's own state from its DescribeAutoScalingGroups
// record: suspended processes, tags, launch template (or the mixed
// instances policy's) and warm pool size. No extra call.
func groupState(g astypes.AutoScalingGroup, into *Group) {
	for _, p := range g.SuspendedProcesses {
		into.SuspendedProcesses = append(into.SuspendedProcesses, aws.ToString(p.ProcessName))
	}
	if len(g.Tags) > 0 {
		into.Tags = make(map[string]string, len(g.Tags))
		for _, t := range g.Tags {
			into.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	lt := g.LaunchTemplate
	if lt == nil && g.MixedInstancesPolicy != nil && g.MixedInstancesPolicy.LaunchTemplate != nil {
		lt = g.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification
	}
	into.LaunchTemplate, into.LaunchTemplateVersion = templateOf(lt)
	into.LaunchConfiguration = aws.ToString(g.LaunchConfigurationName)
	into.WarmPoolSize = int(aws.ToInt32(g.WarmPoolSize))
	into.HasWarmPool = g.WarmPoolConfiguration != nil
}

// templateOf is a launch template's name (its id when it has no name) and
// version as configured.
func templateOf(lt *astypes.LaunchTemplateSpecification) (name, version string) {
	if lt == nil {
		return "", ""
	}
	name = aws.ToString(lt.LaunchTemplateName)
	if name == "" {
		name = aws.ToString(lt.LaunchTemplateId)
	}
	return name, aws.ToString(lt.Version)
}

// seen is what discovery remembers of one instance between refreshes.
type seen struct {
	lifecycle      string
	inServiceSince time.Time
}

// trackLifecycle sets InServiceSince on inst (of a group seen before when
// groupKnown) from what the previous refreshes saw, and remembers its state.
// readAt is when this refresh read the groups. The rules, in order:
//
//   - Not InService now: zero (no grace runs).
//   - InService and seen InService at the last look: unchanged.
//   - InService, seen in another state at the last look (Pending, Standby,
//     ...): readAt. The true moment lies between the last look and readAt,
//     so grace may start up to one refresh interval late, never early.
//   - InService at first sight, in a group seen before (attached, or its
//     Pending phase fell between two refreshes): readAt, as above.
//   - InService at first sight in a group seen for the first time (medic
//     just started, or the group was just added): its LaunchTime — it may
//     have returned from Standby since, which medic cannot know; readAt if
//     EC2 gave no launch time.
func trackLifecycle(prev map[string]seen, inst *Instance, groupKnown bool, readAt time.Time) seen {
	if !inst.InService() {
		return seen{lifecycle: inst.LifecycleState}
	}
	p, known := prev[inst.ID]
	switch {
	case known && p.lifecycle == LifecycleInService && !p.inServiceSince.IsZero():
		inst.InServiceSince = p.inServiceSince
	case known || groupKnown || inst.LaunchTime.IsZero():
		inst.InServiceSince = readAt
	default:
		inst.InServiceSince = inst.LaunchTime
	}
	return seen{lifecycle: inst.LifecycleState, inServiceSince: inst.InServiceSince}
}

// FailedServices is the services a Refresh error names, each with why it
// got no snapshot (the *ServiceErrors joined in err, several for one
// service joined again). Nil when err holds no *ServiceError: then either
// err is nil, or the whole refresh failed (Refresh returned a nil map) and
// every service keeps its previous snapshot.
func FailedServices(err error) map[string]error {
	var out map[string]error
	var walk func(error)
	walk = func(e error) {
		var se *ServiceError
		switch x := e.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range x.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(e, &se) {
				if out == nil {
					out = map[string]error{}
				}
				out[se.Service] = errors.Join(out[se.Service], se)
			}
		}
	}
	walk(err)
	for svc, e := range out {
		if j, ok := e.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) == 1 {
			out[svc] = j.Unwrap()[0]
		}
	}
	return out
}
