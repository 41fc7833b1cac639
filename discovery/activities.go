package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/medic-sre/medic/config"
)

// MaxActivitiesPerCall: DescribeScalingActivities returns at most 100
// activities a page.
const MaxActivitiesPerCall = 100

// userHealthCheckCause is what the Cause of a group's scaling activity
// says when the group took an instance out of service because someone
// called SetInstanceHealth Unhealthy on it ("At 2026-11-21T12:00:05Z an
// instance was taken out of service in response to a user health-check.").
// Replacements for EC2 or ELB health checks, scale-in and the like say
// something else.
const userHealthCheckCause = "in response to a user health-check"

// RecentHealthCheckReplacements reads, per service, when its groups began
// replacing an instance marked Unhealthy through SetInstanceHealth after
// since (strictly: an activity that started exactly at since is left out),
// newest first per group. The healer seeds its rate-limit memory with them
// at start, so a restart does not reset max_actions_per_hour.
//
// Marks made by medic and by anyone else (a person, a script) look the
// same and both count: a mark by hand consumes the hour's budget too, which
// errs on the side of replacing less. The times are when the group began
// the replacement, a little after the mark itself, so a seeded mark leaves
// the window a little later than the real one would: conservative again.
//
// One paginated DescribeScalingActivities per distinct group (100 a page).
// Activities come newest first, those still in progress ahead of the rest:
// paging stops at the first page that holds a finished activity started at
// or before since. A group shared by several services counts for each.
//
// Errors do not hide what was read: the map holds every replacement found,
// including those of a group whose paging failed part way, and the error
// joins one error per group that failed, naming it. Reading less than the
// truth only makes the budget larger than it should be; the caller decides
// whether that is worth more than a log line.
func (d *Discoverer) RecentHealthCheckReplacements(ctx context.Context, services []config.Service, since time.Time) (map[string][]time.Time, error) {
	byGroup := map[string][]time.Time{}
	var errs []error
	for _, s := range services {
		for _, g := range s.AutoScalingGroups {
			if _, done := byGroup[g]; done {
				continue
			}
			marks, err := d.groupReplacements(ctx, g, since)
			byGroup[g] = marks
			if err != nil {
				errs = append(errs, fmt.Errorf("describe scaling activities of %s: %w", g, err))
				if ctx.Err() != nil {
					return collect(services, byGroup), errors.Join(errs...)
				}
			}
		}
	}
	return collect(services, byGroup), errors.Join(errs...)
}

// collect gives each service the replacements of its groups (each group
// once), empty for a service with none.
func collect(services []config.Service, byGroup map[string][]time.Time) map[string][]time.Time {
	out := make(map[string][]time.Time, len(services))
	for _, s := range services {
		marks := []time.Time{}
		seen := map[string]bool{}
		for _, g := range s.AutoScalingGroups {
			if seen[g] {
				continue
			}
			seen[g] = true
			marks = append(marks, byGroup[g]...)
		}
		out[s.Name] = marks
	}
	return out
}

// groupReplacements pages through one group's activities, newest first,
// and returns the start times of those caused by a user health check after
// since. On error it returns what it found so far.
func (d *Discoverer) groupReplacements(ctx context.Context, group string, since time.Time) ([]time.Time, error) {
	marks := []time.Time{}
	p := autoscaling.NewDescribeScalingActivitiesPaginator(d.asg, &autoscaling.DescribeScalingActivitiesInput{
		AutoScalingGroupName: aws.String(group),
		MaxRecords:           aws.Int32(MaxActivitiesPerCall),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return marks, err
		}
		past := false
		for _, a := range out.Activities {
			if a.StartTime == nil {
				continue
			}
			start := *a.StartTime
			if !start.After(since) {
				past = past || finished(a.StatusCode)
				continue
			}
			if strings.Contains(strings.ToLower(aws.ToString(a.Cause)), userHealthCheckCause) {
				marks = append(marks, start)
			}
		}
		if past {
			break
		}
	}
	return marks, nil
}

// finished: the activity is over (AWS lists those still running first,
// whatever their start time).
func finished(s astypes.ScalingActivityStatusCode) bool {
	return slices.Contains([]astypes.ScalingActivityStatusCode{
		astypes.ScalingActivityStatusCodeSuccessful,
		astypes.ScalingActivityStatusCodeFailed,
		astypes.ScalingActivityStatusCodeCancelled,
	}, s)
}
