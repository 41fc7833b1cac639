package discovery_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
)

// Causes as AWS writes them on a group's scaling activities.
const (
	causeUser  = "At 2026-11-21T12:00:05Z an instance was taken out of service in response to a user health-check."
	causeEC2   = "At 2026-11-21T12:00:05Z an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped."
	causeELB   = "At 2026-11-21T12:00:05Z an instance was taken out of service in response to an ELB system health check failure."
	causeScale = "At 2026-11-21T12:00:05Z a user request update of AutoScalingGroup constraints to min: 1, max: 6, desired: 2 changing the desired capacity from 3 to 2. " +
		"At 2026-11-21T12:00:10Z an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from 3 to 2."
	causeLaunch = "At 2026-11-21T12:00:06Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 2 to 3."
)

var errPage = errors.New("injected: connection reset")

// activitiesFake is a stateful in-memory DescribeScalingActivities: moto
// 5.2.1 records no scaling activities (it answers an empty list), so the
// parsing, filtering and paging are tested against this. Activities are
// held per group in the order AWS gives them (in progress first, then
// newest first); pages are pageSize long (MaxRecords if smaller) and the
// NextToken is the index of the next activity.
type activitiesFake struct {
	discovery.AutoScalingAPI // DescribeAutoScalingGroups: not used here

	pageSize int
	groups   map[string][]astypes.Activity
	failPage map[string]int // group → 1-based page that fails

	mu    sync.Mutex
	pages map[string]int // group → pages asked
	max   []int32        // MaxRecords of every call
}

func (f *activitiesFake) DescribeScalingActivities(_ context.Context, in *autoscaling.DescribeScalingActivitiesInput, _ ...func(*autoscaling.Options)) (*autoscaling.DescribeScalingActivitiesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := aws.ToString(in.AutoScalingGroupName)
	if f.pages == nil {
		f.pages = map[string]int{}
	}
	f.pages[g]++
	f.max = append(f.max, aws.ToInt32(in.MaxRecords))
	if f.failPage[g] == f.pages[g] {
		return nil, errPage
	}
	from := 0
	if in.NextToken != nil {
		from, _ = strconv.Atoi(*in.NextToken)
	}
	size := min(f.pageSize, int(aws.ToInt32(in.MaxRecords)))
	acts := f.groups[g]
	to := min(from+size, len(acts))
	out := &autoscaling.DescribeScalingActivitiesOutput{Activities: acts[from:to]}
	if to < len(acts) {
		out.NextToken = aws.String(strconv.Itoa(to))
	}
	return out, nil
}

var actNow = time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)

// act is a finished activity of cause that started ago before actNow.
func act(ago time.Duration, cause string) astypes.Activity {
	return actStatus(ago, cause, astypes.ScalingActivityStatusCodeSuccessful)
}

func actStatus(ago time.Duration, cause string, status astypes.ScalingActivityStatusCode) astypes.Activity {
	return astypes.Activity{
		ActivityId: aws.String("a-" + ago.String()),
		Cause:      aws.String(cause),
		StartTime:  aws.Time(actNow.Add(-ago)),
		StatusCode: status,
	}
}

// agos turns times back into how long before actNow they were.
func agos(ts []time.Time) []time.Duration {
	out := []time.Duration{}
	for _, t := range ts {
		out = append(out, actNow.Sub(t))
	}
	return out
}

func TestRecentHealthCheckReplacements(t *testing.T) {
	// 500 user marks 15 s apart, newest 15 s ago: the 239 newest are inside
	// the hour, the 240th is exactly an hour old.
	var many []astypes.Activity
	for i := range 500 {
		many = append(many, act(time.Duration(i+1)*15*time.Second, causeUser))
	}
	type want struct {
		marks map[string]int // service → count
		agos  map[string][]time.Duration
		pages map[string]int // group → pages asked
		err   string         // substring; empty: no error
	}
	tests := []struct {
		desc     string
		services []config.Service
		groups   map[string][]astypes.Activity
		pageSize int
		failPage map[string]int
		want     want
	}{
		{
			desc:     "only user health checks count",
			services: []config.Service{{Name: "web", AutoScalingGroups: []string{"web-asg"}}},
			groups: map[string][]astypes.Activity{"web-asg": {
				act(time.Minute, causeLaunch),
				act(2*time.Minute, causeUser),
				act(3*time.Minute, causeEC2),
				act(4*time.Minute, causeELB),
				act(5*time.Minute, causeScale),
				act(6*time.Minute, strings.ToUpper(causeUser)),
				act(7*time.Minute, "At 2026-11-21T12:00:05Z an instance was taken out of service in response to a EC2 health check."),
				actStatus(8*time.Minute, causeUser, astypes.ScalingActivityStatusCodeFailed),
			}},
			want: want{
				agos:  map[string][]time.Duration{"web": {2 * time.Minute, 6 * time.Minute, 8 * time.Minute}},
				pages: map[string]int{"web-asg": 1},
			},
		},
		{
			desc:     "window edge: exactly an hour old does not count",
			services: []config.Service{{Name: "web", AutoScalingGroups: []string{"web-asg"}}},
			groups: map[string][]astypes.Activity{"web-asg": {
				act(59*time.Minute+59*time.Second, causeUser),
				act(time.Hour, causeUser),
				act(time.Hour+time.Second, causeUser),
			}},
			want: want{
				agos:  map[string][]time.Duration{"web": {59*time.Minute + 59*time.Second}},
				pages: map[string]int{"web-asg": 1},
			},
		},
		{
			desc:     "pages of 100 until the window's edge, not beyond",
			services: []config.Service{{Name: "web", AutoScalingGroups: []string{"web-asg"}}},
			groups:   map[string][]astypes.Activity{"web-asg": many},
			want: want{
				marks: map[string]int{"web": 239},
				pages: map[string]int{"web-asg": 3}, // of 5
			},
		},
		{
			desc:     "an old activity still in progress does not stop paging",
			services: []config.Service{{Name: "web", AutoScalingGroups: []string{"web-asg"}}},
			pageSize: 2,
			groups: map[string][]astypes.Activity{"web-asg": {
				actStatus(2*time.Hour, causeLaunch, astypes.ScalingActivityStatusCodeWaitingForELBConnectionDraining),
				act(10*time.Minute, causeUser),
				act(20*time.Minute, causeUser), act(70*time.Minute, causeUser),
				act(80*time.Minute, causeUser), act(90*time.Minute, causeUser),
			}},
			want: want{
				agos:  map[string][]time.Duration{"web": {10 * time.Minute, 20 * time.Minute}},
				pages: map[string]int{"web-asg": 2},
			},
		},
		{
			desc:     "an error mid-paging keeps what was read and names the group",
			services: []config.Service{{Name: "web", AutoScalingGroups: []string{"web-asg"}}},
			pageSize: 2,
			failPage: map[string]int{"web-asg": 2},
			groups: map[string][]astypes.Activity{"web-asg": {
				act(time.Minute, causeUser), act(2*time.Minute, causeUser),
				act(3*time.Minute, causeUser), act(4*time.Minute, causeUser),
			}},
			want: want{
				agos:  map[string][]time.Duration{"web": {time.Minute, 2 * time.Minute}},
				pages: map[string]int{"web-asg": 2},
				err:   "describe scaling activities of web-asg: injected: connection reset",
			},
		},
		{
			desc: "one group failing leaves the others read",
			services: []config.Service{
				{Name: "api", AutoScalingGroups: []string{"api-a", "api-b"}},
				{Name: "web", AutoScalingGroups: []string{"web-asg"}},
			},
			failPage: map[string]int{"api-a": 1},
			groups: map[string][]astypes.Activity{
				"api-a":   {act(time.Minute, causeUser)},
				"api-b":   {act(2*time.Minute, causeUser)},
				"web-asg": {act(3*time.Minute, causeUser)},
			},
			want: want{
				agos:  map[string][]time.Duration{"api": {2 * time.Minute}, "web": {3 * time.Minute}},
				pages: map[string]int{"api-a": 1, "api-b": 1, "web-asg": 1},
				err:   "api-a",
			},
		},
		{
			desc: "a shared group is read once and counts for each service",
			services: []config.Service{
				{Name: "api", AutoScalingGroups: []string{"api-asg", "shared", "shared"}},
				{Name: "web", AutoScalingGroups: []string{"shared"}},
				{Name: "static-only"},
			},
			groups: map[string][]astypes.Activity{
				"api-asg": {act(time.Minute, causeUser)},
				"shared":  {act(2*time.Minute, causeUser)},
			},
			want: want{
				agos: map[string][]time.Duration{
					"api": {time.Minute, 2 * time.Minute}, "web": {2 * time.Minute}, "static-only": {},
				},
				pages: map[string]int{"api-asg": 1, "shared": 1},
			},
		},
		{
			desc:     "no activities at all",
			services: []config.Service{{Name: "web", AutoScalingGroups: []string{"web-asg"}}},
			want: want{
				agos:  map[string][]time.Duration{"web": {}},
				pages: map[string]int{"web-asg": 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := &activitiesFake{pageSize: 100, groups: tc.groups, failPage: tc.failPage}
			if tc.pageSize > 0 {
				f.pageSize = tc.pageSize
			}
			d := discovery.New(discovery.Options{ASG: f})
			got, err := d.RecentHealthCheckReplacements(context.Background(), tc.services, actNow.Add(-time.Hour))

			switch {
			case tc.want.err == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tc.want.err != "" && (err == nil || !strings.Contains(err.Error(), tc.want.err)):
				t.Errorf("err = %v, want one containing %q", err, tc.want.err)
			case tc.want.err != "" && !errors.Is(err, errPage):
				t.Errorf("err = %v does not wrap the call's error", err)
			}
			if len(got) != len(tc.services) {
				t.Errorf("got %d services, want %d: %v", len(got), len(tc.services), got)
			}
			for svc, n := range tc.want.marks {
				if len(got[svc]) != n {
					t.Errorf("%s: %d marks, want %d", svc, len(got[svc]), n)
				}
			}
			for svc, want := range tc.want.agos {
				if g := agos(got[svc]); !equalDurations(g, want) {
					t.Errorf("%s: marks %v ago, want %v", svc, g, want)
				}
			}
			if !equalPages(f.pages, tc.want.pages) {
				t.Errorf("pages asked = %v, want %v", f.pages, tc.want.pages)
			}
			for _, m := range f.max {
				if m != 100 {
					t.Errorf("MaxRecords = %d, want 100", m)
				}
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalPages(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// On the emulator the call path works end to end: moto 5.2.1 keeps no
// scaling activities, so a group where an instance was marked Unhealthy
// still answers an empty list — no seeds, no error, one call per group.
func TestRecentHealthCheckReplacementsOnMoto(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	f := build(t, emulator.FleetSpec{Group: "activities", AZs: []string{"us-east-1a"}, PerAZ: 2})
	insts, err := f.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := autoscaling.NewFromConfig(moto.Config()).SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
		InstanceId: aws.String(insts[0].ID), HealthStatus: aws.String("Unhealthy"),
	}); err != nil {
		t.Fatal(err)
	}
	p, asg, ec := proxied(t)
	d := discovery.New(discovery.Options{ASG: asg, EC2: ec})
	got, err := d.RecentHealthCheckReplacements(ctx,
		[]config.Service{{Name: "svc", AutoScalingGroups: []string{"activities"}}}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if marks, ok := got["svc"]; !ok || len(marks) != 0 {
		t.Errorf("marks = %v, want svc with none", got)
	}
	if n := p.Count("DescribeScalingActivities"); n != 1 {
		t.Errorf("DescribeScalingActivities calls = %d, want 1 (counts: %v)", n, p.Counts())
	}
}
